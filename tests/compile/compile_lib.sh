# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# Shared by the sh_tests in tests/compile (sourced, not run).
#
# Finds the header and the snippet files, in Bazel's runfiles under `bazel test` or in the source
# tree when a script is run by hand, and provides a bounded job pool and loud failure reporting.
#
# Environment a developer may set when running a script by hand:
#   SUPERVISE_INCLUDE_DIR  directory holding the supervise.hpp to test (default: the repository's
#                          include/). Point it at a modified copy to watch a test fail.
#   SUPERVISE_TEST_JOBS    compiler processes run at once (default: number of CPUs).

set -euo pipefail

if [[ -n ${TEST_SRCDIR:-} ]]; then
    # Under `bazel test`: the header and the snippets are data dependencies of the test.
    readonly SUPERVISE_ROOT="${TEST_SRCDIR}/${TEST_WORKSPACE:-supervise}"
else
    SUPERVISE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    readonly SUPERVISE_ROOT
fi
readonly SNIPPETS="${SUPERVISE_ROOT}/tests/compile"
readonly INCLUDE_DIR="${SUPERVISE_INCLUDE_DIR:-${SUPERVISE_ROOT}/include}"

if [[ ! -f ${INCLUDE_DIR}/supervise.hpp ]]; then
    echo "FAIL: supervise.hpp not found in ${INCLUDE_DIR}" >&2
    exit 1
fi

# The two compilers every promise is checked with (Debian packages g++ and clang).
readonly GXX=/usr/bin/g++
readonly CLANGXX=/usr/bin/clang++
readonly COMPILERS=("${GXX}" "${CLANGXX}")
readonly WARNINGS=(-Wall -Wextra -Wpedantic -Werror)

# Scratch space: Bazel gives each test a private TEST_TMPDIR; by hand, a directory removed on exit.
if [[ -n ${TEST_TMPDIR:-} ]]; then
    WORK="$(mktemp -d "${TEST_TMPDIR}/work.XXXXXX")"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/supervise-compile.XXXXXX")"
    trap 'rm -rf -- "${WORK}"' EXIT
fi
readonly WORK

JOBS="${SUPERVISE_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}"
readonly JOBS

for tool in "${COMPILERS[@]}"; do
    if [[ ! -x ${tool} ]]; then
        echo "FAIL: ${tool} is not installed (Debian packages g++ and clang)" >&2
        exit 1
    fi
done

echo "header: ${INCLUDE_DIR}/supervise.hpp"

# Runs "$@" in the background, keeping at most JOBS jobs running. Jobs report through files in
# WORK (never through their exit status), and the caller collects them after `wait`.
spawn() {
    while (($(jobs -rp | wc -l) >= JOBS)); do
        wait -n || true
    done
    "$@" &
}

# Runs a compiler command with its output in LOG; returns the compiler's exit status. A compiler
# that crashes (a signal, an internal compiler error) says nothing about the code, and a loaded
# machine has been seen to crash clang once: such a run is retried once, with a NOTE saying so.
# Usage: compile_logged LOG COMMAND...
readonly COMPILER_CRASHED='internal compiler error|frontend command failed due to signal'
compile_logged() {
    local log=$1 rc=0
    shift
    "$@" >"${log}" 2>&1 || rc=$?
    if ((rc != 0)) && grep -qE "${COMPILER_CRASHED}" "${log}"; then
        mv -- "${log}" "${log}.crash"
        echo "NOTE: $(basename -- "$1") crashed, run again: $(grep -m1 -E "${COMPILER_CRASHED}" \
            "${log}.crash")"
        rc=0
        "$@" >"${log}" 2>&1 || rc=$?
    fi
    return "${rc}"
}

# Prints a failure with the compiler output that explains it. Callers count failures and exit
# non-zero at the end, so one run reports every broken case rather than the first.
report_failure() {
    local what=$1 log=$2
    echo "FAIL: ${what}"
    if [[ -s ${log} ]]; then
        echo "----- output -----"
        cat -- "${log}"
        echo "------------------"
    fi
}

# Short name of a compiler for messages and file names: g++ or clang++.
compiler_name() {
    basename -- "$1"
}
