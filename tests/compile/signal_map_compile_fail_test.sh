#!/usr/bin/env bash
# Proves that wrong signal maps and pools are rejected at compile time with the library's own
# message, with g++ and with clang++. Each case in signal_map_cases.cpp, compiled on its own with
# -DEXPECT_REJECTED, must fail with a diagnostic containing the case's phrase; the positive twins
# (each one token different from its case), compiled together, must compile warning-free.
# shellcheck source-path=SCRIPTDIR source=compile_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compile_lib.sh"

# Each phrase is the start of a static_assert message, or a part the message cannot do without,
# so that rewording the rest (listing a new action, say) does not break the test.
readonly TWICE="a signal_map maps the same signal twice"
readonly UNCATCHABLE="SIGKILL and SIGSTOP cannot be caught"
readonly FAULT="report a fault of the running thread"
readonly CHILD="SIGCHLD belongs to the pool"
readonly RANGE="signal numbers must be between 1 and 64"
readonly ACTION="supervise: the action of an on<> row must be"
readonly NO_STOP="the master's signal_map must map SIGTERM to terminate or graceful_stop"

# "case|phrase of its static_assert message"
readonly CASES=(
    "same_signal_twice|${TWICE}"
    "same_signal_twice_far_apart|${TWICE}"
    "sigkill|${UNCATCHABLE}"
    "sigstop|${UNCATCHABLE}"
    "sigsegv|${FAULT}"
    "sigbus|${FAULT}"
    "sigfpe|${FAULT}"
    "sigill|${FAULT}"
    "sigchld|${CHILD}"
    "signal_zero|${RANGE}"
    "signal_negative|${RANGE}"
    "signal_65|${RANGE}"
    "action_not_a_type_of_the_library|${ACTION}"
    "action_int|${ACTION}"
    "action_struct|${ACTION}"
    "master_signals_not_a_map|MasterSignals must be a supervise::signal_map"
    "master_map_empty|${NO_STOP}"
    "master_without_sigterm|${NO_STOP}"
    "master_sigterm_ignored|${NO_STOP}"
    "worker_signals_not_a_map|WorkerSignals must be a supervise::signal_map"
    "strategy|supervise: the strategy must be"
    "system|System must be posix_system or derive from it"
    "worker_taking_int|the worker must be callable as worker(worker_context&)"
    "worker_taking_nothing|the worker must be callable as worker(worker_context&)"
    "worker_not_callable|the worker must be callable as worker(worker_context&)"
)

# One compilation: "rejected" compiles one case with EXPECT_REJECTED, "twins" compiles every
# positive twin at once. Writes the exit status and the output to files named after the id.
compile_cases() {
    local cxx=$1 variant=$2 id=$3 defines=(-DALL_TWINS)
    [[ ${variant} == twins ]] || defines=("-DCASE_${variant}" -DEXPECT_REJECTED)
    local rc=0
    compile_logged "${WORK}/${id}.log" "${cxx}" -std=c++17 -fsyntax-only "${WARNINGS[@]}" \
        -I "${INCLUDE_DIR}" "${defines[@]}" "${SNIPPETS}/signal_map_cases.cpp" || rc=$?
    echo "${rc}" >"${WORK}/${id}.rc"
}

failures=0
checks=0

# Every case of the snippet file has a row above, and every row a case in the file.
listed=$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f1 | sort)
in_file=$(sed -n 's/^#if defined(CASE_\([a-z0-9_]*\)) || defined(ALL_TWINS)$/\1/p' \
    "${SNIPPETS}/signal_map_cases.cpp" | sort)
checks=$((checks + 1))
if [[ ${listed} != "${in_file}" ]]; then
    echo "FAIL: the cases listed here and those in signal_map_cases.cpp differ:"
    diff <(echo "${listed}") <(echo "${in_file}") || true
    failures=$((failures + 1))
fi

for cxx in "${COMPILERS[@]}"; do
    spawn compile_cases "${cxx}" twins "$(compiler_name "${cxx}")-twins"
    for entry in "${CASES[@]}"; do
        name=${entry%%|*}
        spawn compile_cases "${cxx}" "${name}" "$(compiler_name "${cxx}")-${name}"
    done
done
wait

for cxx in "${COMPILERS[@]}"; do
    cc=$(compiler_name "${cxx}")
    checks=$((checks + 1))
    if [[ $(cat -- "${WORK}/${cc}-twins.rc" 2>/dev/null) == 0 ]]; then
        echo "PASS: all ${#CASES[@]} positive twins compile together (${cc})"
    else
        report_failure "the positive twins must compile (${cc})" "${WORK}/${cc}-twins.log"
        failures=$((failures + 1))
    fi
done

for entry in "${CASES[@]}"; do
    name=${entry%%|*} phrase=${entry#*|}
    for cxx in "${COMPILERS[@]}"; do
        cc=$(compiler_name "${cxx}")
        checks=$((checks + 1))
        bad="${WORK}/${cc}-${name}"
        if [[ $(cat -- "${bad}.rc" 2>/dev/null) == 0 ]]; then
            report_failure "${name} (${cc}): compiled, but must be rejected" "${bad}.log"
            failures=$((failures + 1))
        elif ! grep -qF -- "${phrase}" "${bad}.log"; then
            report_failure "${name} (${cc}): rejected, but without the message '${phrase}'" \
                "${bad}.log"
            failures=$((failures + 1))
        else
            echo "PASS: ${name} (${cc}): rejected with '${phrase}'"
        fi
    done
done

if ((failures)); then
    echo "${failures} of ${checks} checks failed"
    exit 1
fi
echo "all ${checks} checks passed (${#CASES[@]} cases and their twins, ${#COMPILERS[@]} compilers)"
