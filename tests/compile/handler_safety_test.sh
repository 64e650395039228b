#!/usr/bin/env bash
# Proves, from the machine code, that the library's signal handlers only call async-signal-safe
# functions (signal-safety(7)):
#   supervise::detail::on_signal            may call write, _exit (a worker parked in
#                                           wait_readable(wake_on::stop_exits)), and
#                                           __errno_location (how errno is reached for saving
#                                           and restoring it);
#   supervise::detail::on_destroy_deadline  may call write and _exit.
# handler_safety_probe.cpp takes both handlers' addresses, is compiled and linked with each build
# below, disassembled with objdump, and call_graph.awk follows every call and jump out of each
# handler, into the program's own helpers too (at -O0 the std::atomic and <atomic> helpers are
# real calls), until it reaches external functions, which must be on the handler's list.
#
# The checker is itself checked in every build: handler_safety_negative.cpp holds copies of the
# handler with one mistake each (printf, malloc one call down, a std::string, a call through a
# pointer, exit instead of _exit), which must all be rejected, and one faithful copy, which must
# be accepted.
# shellcheck source-path=SCRIPTDIR source=compile_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compile_lib.sh"

# call_graph.awk reads x86-64 instructions; elsewhere it would find no calls and fail anyway,
# but with a message that would not say why.
if [[ $(uname -m) != x86_64 ]]; then
    echo "FAIL: this check reads x86-64 disassembly; this machine is $(uname -m)"
    exit 1
fi

# The builds checked: "label|compiler|flags". -fno-jump-tables in all of them: a switch (clang
# -O0 lowers the runtime memory order of std::atomic calls into one) becomes compares and direct
# jumps the checker can follow, instead of an indirect jump through a table, which it would have
# to refuse. It changes how branches inside a function are encoded, not what the function calls.
# The hardened builds use the flags distributions build packages with; -fno-plt turns calls
# into indirect calls through the GOT, which the checker follows by the slot's symbol.
readonly HARDENED="-fstack-protector-strong -D_FORTIFY_SOURCE=2 -fno-plt -fcf-protection"
readonly BUILDS=(
    "g++ -O0|${GXX}|-O0"
    "g++ -O2|${GXX}|-O2"
    "clang++ -O0|${CLANGXX}|-O0"
    "clang++ -O2|${CLANGXX}|-O2"
    "g++ -O2 hardened|${GXX}|-O2 ${HARDENED}"
    "clang++ -O2 hardened|${CLANGXX}|-O2 ${HARDENED}"
)

# signal-safety(7), as much of it as each handler needs.
readonly ON_SIGNAL_ALLOWED="write _exit __errno_location"
readonly DEADLINE_ALLOWED="write _exit"
# clang's terminate trampoline for noexcept functions: see call_graph.awk.
readonly LANDING_PADS="__clang_call_terminate"

# Each negative control: "function|what its rejection must name" (a FORBIDDEN line of the tree).
readonly NEGATIVE_CONTROLS=(
    "logs_with_printf|printf"
    "allocates_in_a_helper|malloc"
    "names_the_signal|_M_create"
    "calls_through_a_pointer|target unknown"
    "exits_with_exit|-> exit "
)

# Compiles, links and disassembles one program. Returns non-zero (with the log) on failure.
build_and_dump() {
    local cxx=$1 flags=$2 source=$3 out=$4
    # shellcheck disable=SC2086 # flags is a list of words
    compile_logged "${out}.log" "${cxx}" -std=c++17 -fno-jump-tables ${flags} "${WARNINGS[@]}" \
        -I "${INCLUDE_DIR}" "${SNIPPETS}/${source}" -o "${out}" &&
        objdump -d --no-show-raw-insn -C "${out}" >"${out}.dis" 2>>"${out}.log"
}

# Runs the checker; prints its tree. Usage: check ROOT_ERE ALLOWED REQUIRED DUMP
check() {
    awk -v root="$1" -v allow="$2" -v require="$3" -v pads="${LANDING_PADS}" \
        -f "${SNIPPETS}/call_graph.awk" "$4"
}

# Everything for one build; its report goes to ${WORK}/<n>.report, its verdict to <n>.verdict.
check_build() {
    local n=$1 label=$2 cxx=$3 flags=$4
    local report="${WORK}/${n}.report" failed=0
    {
        echo "=== ${label}: ${cxx} -std=c++17 -fno-jump-tables ${flags}"
        if ! build_and_dump "${cxx}" "${flags}" handler_safety_probe.cpp "${WORK}/${n}-probe"; then
            echo "FAIL: building handler_safety_probe.cpp"
            cat -- "${WORK}/${n}-probe.log"
            failed=1
        else
            local handler allowed required
            for handler in on_signal on_destroy_deadline; do
                if [[ ${handler} == on_signal ]]; then
                    allowed="${ON_SIGNAL_ALLOWED}" required="write"
                else
                    allowed="${DEADLINE_ALLOWED}" required="write _exit"
                fi
                echo "--- ${handler} (allowed: ${allowed})"
                if check "^supervise::(v[0-9_]+::)?detail::${handler}\\(int\\)\$" "${allowed}" \
                    "${required}" "${WORK}/${n}-probe.dis"; then
                    echo "PASS: ${handler}"
                else
                    echo "FAIL: ${handler} calls something that is not async-signal-safe"
                    failed=1
                fi
            done
        fi

        echo "--- negative controls (the checker must tell these apart)"
        if ! build_and_dump "${cxx}" "${flags}" handler_safety_negative.cpp "${WORK}/${n}-neg"; then
            echo "FAIL: building handler_safety_negative.cpp"
            cat -- "${WORK}/${n}-neg.log"
            failed=1
        else
            local tree
            if tree=$(check '^negative::faithful_copy\(int\)$' "${ON_SIGNAL_ALLOWED}" \
                write "${WORK}/${n}-neg.dis"); then
                echo "PASS: faithful_copy accepted"
            else
                echo "FAIL: faithful_copy (the handler's own code) must be accepted"
                echo "${tree}"
                failed=1
            fi
            local entry name phrase rc allowed_here
            for entry in "${NEGATIVE_CONTROLS[@]}"; do
                name=${entry%%|*} phrase=${entry#*|}
                allowed_here="${ON_SIGNAL_ALLOWED}"
                [[ ${name} == exits_with_exit ]] && allowed_here="${DEADLINE_ALLOWED}"
                rc=0
                tree=$(check "^negative::${name}\\(int\\)\$" "${allowed_here}" "" \
                    "${WORK}/${n}-neg.dis") || rc=$?
                if ((rc == 1)) && grep 'FORBIDDEN' <<<"${tree}" | grep -qF -- "${phrase}"; then
                    echo "PASS: ${name} rejected: $(grep 'FORBIDDEN' <<<"${tree}" |
                        grep -F -m1 -- "${phrase}" | sed 's/^ *-> //')"
                else
                    echo "FAIL: ${name} must be rejected for '${phrase}' (checker status ${rc})"
                    echo "${tree}"
                    failed=1
                fi
            done
        fi
    } >"${report}" 2>&1
    echo "${failed}" >"${WORK}/${n}.verdict"
}

n=0
for build in "${BUILDS[@]}"; do
    IFS='|' read -r label cxx flags <<<"${build}"
    n=$((n + 1))
    spawn check_build "${n}" "${label}" "${cxx}" "${flags}"
done
wait

failures=0
for ((i = 1; i <= ${#BUILDS[@]}; i++)); do
    cat -- "${WORK}/${i}.report"
    [[ $(cat -- "${WORK}/${i}.verdict" 2>/dev/null) == 0 ]] || failures=$((failures + 1))
done

echo
if ((failures)); then
    echo "FAIL: ${failures} of ${#BUILDS[@]} builds failed the handler check"
    exit 1
fi
echo "all ${#BUILDS[@]} builds: both handlers call only async-signal-safe functions"
