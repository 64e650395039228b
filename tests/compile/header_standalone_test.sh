#!/usr/bin/env bash
# Proves supervise.hpp compiles on its own, warning-free, with g++ and clang++ in C++17 and C++20:
#   header_standalone.cpp   includes nothing but the header (a missing #include fails here);
#   header_instantiate.cpp  instantiates every pool member with the default and custom maps, so
#                           the template bodies are compiled too;
#   header_empty_map.cpp    a pool with the smallest maps: SIGTERM alone, and signal_map<>.
# Warnings are errors; beyond -Wall -Wextra -Wpedantic the header is held to EXTRA_WARNINGS.
# shellcheck source-path=SCRIPTDIR source=compile_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compile_lib.sh"

# Clean on both compilers today; a header change that trips one of them fails this test.
readonly EXTRA_WARNINGS=(
    -Wshadow
    -Wconversion
    -Wsign-conversion
    -Wold-style-cast
    -Wcast-qual
    -Wcast-align
    -Wextra-semi
    -Wzero-as-null-pointer-constant
    -Wnon-virtual-dtor
    -Woverloaded-virtual
    -Wundef
    -Wformat=2
    -Wimplicit-fallthrough
    -Wnull-dereference
    -Wdouble-promotion
)
readonly STANDARDS=(c++17 c++20)
readonly SNIPPET_FILES=(header_standalone.cpp header_instantiate.cpp header_empty_map.cpp)

# Known header defects, as "compiler|snippet|phrase". Such a run must fail, and every error and
# warning it prints must contain the phrase; once it compiles, this test fails until its line is
# removed, so a fix cannot go unnoticed and a known defect cannot hide a new one.
readonly KNOWN_FAILURES=()

# Prints the phrase a run is expected to fail with, or nothing when it must compile.
known_failure_phrase() {
    local cxx_name=$1 snippet=$2 entry
    for entry in "${KNOWN_FAILURES[@]}"; do
        IFS='|' read -r k_cxx k_snippet k_phrase <<<"${entry}"
        if [[ ${k_cxx} == "${cxx_name}" && ${k_snippet} == "${snippet}" ]]; then
            echo "${k_phrase}"
        fi
    done
}

# One compilation; writes "pass" or "fail" next to its log.
compile_one() {
    local cxx=$1 std=$2 snippet=$3 id=$4
    # -O2 so the warnings that need the optimiser's analysis (-Wnull-dereference,
    # -Wmaybe-uninitialized) see the code too.
    if compile_logged "${WORK}/${id}.log" "${cxx}" "-std=${std}" -O2 "${WARNINGS[@]}" \
        "${EXTRA_WARNINGS[@]}" -I "${INCLUDE_DIR}" -c "${SNIPPETS}/${snippet}" -o "${WORK}/${id}.o"; then
        echo pass >"${WORK}/${id}.verdict"
    else
        echo fail >"${WORK}/${id}.verdict"
    fi
}

runs=()
for cxx in "${COMPILERS[@]}"; do
    for std in "${STANDARDS[@]}"; do
        for snippet in "${SNIPPET_FILES[@]}"; do
            id="$(compiler_name "${cxx}")-${std}-${snippet%.cpp}"
            runs+=("${cxx}|${std}|${snippet}|${id}")
            spawn compile_one "${cxx}" "${std}" "${snippet}" "${id}"
        done
    done
done
wait

failures=0
known_failures=0
for run in "${runs[@]}"; do
    IFS='|' read -r cxx std snippet id <<<"${run}"
    what="${snippet} with $(compiler_name "${cxx}") -std=${std}"
    verdict="$(cat -- "${WORK}/${id}.verdict" 2>/dev/null || echo fail)"
    known="$(known_failure_phrase "$(compiler_name "${cxx}")" "${snippet}")"
    if [[ -n ${known} ]]; then
        if [[ ${verdict} == pass ]]; then
            echo "FAIL: ${what} compiles now: remove it from KNOWN_FAILURES in $(basename -- "$0")"
            failures=$((failures + 1))
        elif grep -qF -- "${known}" "${WORK}/${id}.log" &&
            ! grep -E 'error:|warning:' "${WORK}/${id}.log" | grep -qvF -- "${known}"; then
            echo "KNOWN FAILURE: ${what}: $(grep -m1 -F -- "${known}" "${WORK}/${id}.log")"
            known_failures=$((known_failures + 1))
        else
            report_failure "${what}: expected the known failure '${known}' and nothing else" \
                "${WORK}/${id}.log"
            failures=$((failures + 1))
        fi
    elif [[ ${verdict} == pass ]]; then
        echo "PASS: ${what}"
    else
        report_failure "${what}: ${cxx} -std=${std} -O2 ${WARNINGS[*]} ${EXTRA_WARNINGS[*]}" \
            "${WORK}/${id}.log"
        failures=$((failures + 1))
    fi
done

if ((failures)); then
    echo "${failures} of ${#runs[@]} compilations failed"
    exit 1
fi
echo "all ${#runs[@]} compilations as expected: $((${#runs[@]} - known_failures)) passed," \
    "${known_failures} known failures"
