#!/usr/bin/env bash
# clang-tidy with the workspace's .clang-tidy over the files given as arguments (paths from
# the workspace root), two at a time. supervise.hpp is checked through the programs that
# include it: the examples instantiate every preset and strategy. Fails on any finding
# (WarningsAsErrors: '*'); prints how many files and checks ran.
#
# By hand, from the workspace root:
#   tests/analysis/clang_tidy_test.sh examples/daemon/daemon.cpp
set -euo pipefail

(($# > 0)) || {
    echo "clang_tidy_test: no files given" >&2
    exit 1
}
work=${TEST_TMPDIR:-$(mktemp -d "${TMPDIR:-/tmp}/clang_tidy_test.XXXXXX")}/clang-tidy
rm -rf "$work"
mkdir -p "$work/src"
# A copy of the sources (the runfiles tree links to the working tree): clang-tidy reads some
# files more than once, and one edited in between crashes it instead of failing cleanly.
for part in .clang-tidy include examples tests/fuzz "$@"; do
    [[ -e $part ]] || continue
    mkdir -p "$work/src/$(dirname "$part")"
    cp -RL "$part" "$work/src/$(dirname "$part")/"
done
root=$work/src
config=$root/.clang-tidy
[[ -f $config ]] || {
    echo "clang_tidy_test: no .clang-tidy in $PWD" >&2
    exit 1
}
export TIDY_CONFIG=$config TIDY_ROOT=$root TIDY_WORK=$work

checks=$(clang-tidy --config-file="$config" --list-checks "$root/$1" -- -std=c++17 </dev/null |
    grep -c '^    ' || true)

# One file: its findings go to a log of its own (parallel runs must not interleave), and a
# .ok file marks a clean run.
tidy_one() {
    local name log
    name=$(printf '%s' "$1" | tr / _)
    log=$TIDY_WORK/$name.log
    if clang-tidy --quiet --config-file="$TIDY_CONFIG" "$TIDY_ROOT/$1" -- \
        -std=c++17 -I"$TIDY_ROOT/include" -I"$TIDY_ROOT" </dev/null >"$log" 2>&1; then
        : >"$TIDY_WORK/$name.ok"
    fi
}
export -f tidy_one

# Two at a time: the machines this runs on have two cores.
printf '%s\n' "$@" | xargs -P 2 -I{} bash -c 'tidy_one "$1"' _ {}

status=0
for file in "$@"; do
    name=$(printf '%s' "$file" | tr / _)
    if [[ ! -e $work/$name.ok ]]; then
        echo "clang_tidy_test: findings in $file:" >&2
        cat "$work/$name.log" >&2
        status=1
    fi
done
if ((status == 0)); then
    echo "clang_tidy_test: $# files, $checks checks, no findings, ${SECONDS} s"
fi
exit "$status"
