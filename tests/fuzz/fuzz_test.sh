#!/usr/bin/env bash
# Builds each libFuzzer target of tests/fuzz with clang++ (-fsanitize=fuzzer,address,undefined)
# and fuzzes it for FUZZ_SECONDS seconds (default 10) from a copy of its checked-in corpus.
# Fails on any crash, sanitizer report, broken invariant, leak or timeout; libFuzzer keeps the
# input that did it in the test's undeclared outputs (bazel-testlogs/.../test.outputs).
#
# Also runs by hand from the workspace root, for longer runs or to grow the corpora:
#   FUZZ_SECONDS=600 FUZZ_TARGETS=http_request tests/fuzz/fuzz_test.sh
#   FUZZ_MERGE=1 tests/fuzz/fuzz_test.sh   # adds the inputs that found new coverage to
#                                          # tests/fuzz/corpus/<target>/
set -euo pipefail

seconds=${FUZZ_SECONDS:-10}
read -r -a targets <<<"${FUZZ_TARGETS:-http_request daemon_options exec_options sd_notify listen_address}"
root=$PWD # the workspace root, or its runfiles tree under bazel test
work=${TEST_TMPDIR:-$(mktemp -d "${TMPDIR:-/tmp}/fuzz_test.XXXXXX")}
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-$work}
mkdir -p "$work" "$artifacts"

flags=(-std=c++17 -g -O1 -Wall -Wextra -Wpedantic -Werror
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
    -I "$root/include" -I "$root")

# Two builds at a time: the machines this runs on have two cores.
build() {
    clang++ "${flags[@]}" "$root/tests/fuzz/$1_fuzz.cpp" -o "$work/$1" 2>"$work/$1.build.log"
}
pids=()
for t in "${targets[@]}"; do
    build "$t" &
    pids+=($!)
    if ((${#pids[@]} == 2)); then
        wait "${pids[0]}" || { cat "$work"/*.build.log >&2; exit 1; }
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid" || { cat "$work"/*.build.log >&2; exit 1; }
done

status=0
for t in "${targets[@]}"; do
    seeds=$root/tests/fuzz/corpus/$t
    corpus=$work/corpus_$t
    rm -rf "$corpus"
    mkdir -p "$corpus"
    cp "$seeds"/* "$corpus"/
    before=$(find "$corpus" -type f | wc -l)
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a parser that grows without
    # bound is a finding too. detect_leaks is on by default with ASan.
    if ! "$work/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$corpus" \
        >"$work/$t.log" 2>&1; then
        echo "fuzz_test: $t FAILED; its log:" >&2
        tail -n 60 "$work/$t.log" >&2
        status=1
        continue
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$t.log")
    after=$(find "$corpus" -type f | wc -l)
    echo "fuzz_test: $t: $execs executions in ${took:-?} s, corpus $before -> $after inputs, no finding"
    if [[ ${FUZZ_MERGE:-0} == 1 ]]; then
        "$work/$t" -merge=1 "$seeds" "$corpus" >>"$work/$t.log" 2>&1
        echo "fuzz_test: $t: corpus now $(find "$seeds" -type f | wc -l) inputs in $seeds"
    fi
done
exit "$status"
