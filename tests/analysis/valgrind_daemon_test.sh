#!/usr/bin/env bash
# valgrind memcheck over the example daemon's whole life: start with 3 workers
# (one_for_one, --chaos), requests (good, unknown, malformed), SIGUSR1's
# statistics, a worker crash (GET /crash: abort()) and its replacement, more
# requests, SIGTERM. valgrind follows every process (the workers are forks of
# the master) and writes one log per process; the test fails unless every log
# ends with a summary of 0 errors, counting "definitely lost" leaks as errors,
# and the master exits 0.
#
# By hand, from the workspace root, with any build of the daemon:
#   DAEMON_BINARY=bazel-bin/examples/daemon/daemon tests/analysis/valgrind_daemon_test.sh
set -euo pipefail

daemon=${DAEMON_BINARY:?DAEMON_BINARY names the daemon to run}
work=${TEST_TMPDIR:-$(mktemp -d "${TMPDIR:-/tmp}/valgrind_daemon_test.XXXXXX")}/valgrind
# The logs are kept with the test's outputs, to read after a failure.
logs=${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/valgrind-logs
rm -rf "$work" "$logs"
mkdir -p "$work" "$logs"
err=$work/daemon.stderr
# Everything below waits for something; nothing waits longer than this (s).
patience=${VALGRIND_PATIENCE:-120}

fail() {
    echo "valgrind_daemon_test: FAILED: $*" >&2
    echo "--- the daemon's stderr:" >&2
    cat "$err" >&2 || true
    for log in "$logs"/*.log; do
        [[ -e $log ]] || continue
        if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
            echo "--- $log:" >&2
            cat "$log" >&2
        fi
    done
    exit 1
}

master=""
cleanup() {
    # The workers get SIGKILL from the kernel when the master dies (the
    # library's parent-death signal), so killing the master is enough.
    if [[ -n $master ]] && kill -0 "$master" 2>/dev/null; then kill -KILL "$master" || true; fi
}
trap cleanup EXIT

# Waits until the daemon's stderr holds a line matching $1.
wait_for_line() {
    local deadline=$((SECONDS + patience))
    until grep -q -- "$1" "$err"; do
        ((SECONDS < deadline)) || fail "no line matching '$1' within ${patience} s"
        kill -0 "$master" 2>/dev/null || fail "the daemon exited while waiting for '$1'"
        sleep 0.1
    done
}

# Sends $1 (a request head) and prints the status code of the reply, or
# nothing if the connection closed without one.
exchange() {
    local fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf '%b' "$1" >&"$fd"
    reply=$(timeout "$patience" cat <&"$fd" || true)
    exec {fd}<&-
    reply=${reply%%$'\r'*}
    [[ $reply =~ ^HTTP/1\.1\ ([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}"
    return 0
}

expect() {
    local got
    got=$(exchange "$2") || fail "cannot connect to 127.0.0.1:$port"
    [[ $got == "$1" ]] || fail "expected status $1 for '$2', got '${got:-no reply}'"
}

# --child-silent-after-fork=no and %p: each forked worker reports in a log of
# its own. Leaks other than "definitely lost" are not errors: a worker leaves
# with _exit() while the master's objects are still reachable from its stack.
valgrind --tool=memcheck --trace-children=yes --child-silent-after-fork=no \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --error-exitcode=99 --num-callers=40 --log-file="$logs/vg.%p.log" \
    "$daemon" --listen 127.0.0.1:0 --workers 3 --strategy one_for_one --chaos \
    --shutdown-timeout 30000 2>"$err" &
master=$!

wait_for_line "ready: 3 workers"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -n 1)
[[ -n $port ]] || fail "no port in the daemon's log"

for _ in 1 2 3 4 5 6; do expect 200 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'; done
expect 200 'GET /?q=1 HTTP/1.0\r\n\r\n'
expect 404 'GET /nowhere HTTP/1.1\r\n\r\n'
expect 405 'POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n'
expect 400 'garbage\r\n\r\n'
expect 400 'GET / HTTP/1.1\r\n Folded: x\r\n\r\n'

kill -USR1 "$master"
wait_for_line "^statistics: master pid $master"

# The worker that takes it aborts; one_for_one starts a replacement (a new
# fork of the master, under valgrind as well).
[[ -z $(exchange 'GET /crash HTTP/1.1\r\n\r\n') ]] || fail "GET /crash got a reply"
wait_for_line "is back, generation 1"
for _ in 1 2 3 4 5 6; do expect 200 'GET / HTTP/1.1\r\n\r\n'; done

kill -TERM "$master"
status=0
wait "$master" || status=$?
master=""
grep -q "stopped (SIGTERM received); exit status 0" "$err" || fail "no clean stop in the log"
((status == 0)) || fail "the master exited with status $status (99: valgrind found errors in it)"

# One log per process: the master, 3 workers, the replacement.
shopt -s nullglob
all=("$logs"/vg.*.log)
((${#all[@]} == 5)) || fail "expected 5 valgrind logs (master, 3 workers, 1 replacement), got ${#all[@]}"
errors=0
for log in "${all[@]}"; do
    summary=$(grep "ERROR SUMMARY:" "$log" || true)
    [[ -n $summary ]] || fail "$log has no summary: the process did not end under valgrind"
    n=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9,]*\) errors.*/\1/p' <<<"$summary" | tr -d ,)
    errors=$((errors + n))
done
((errors == 0)) || fail "$errors valgrind errors"
lost=$(grep -h "definitely lost:" "${all[@]}" | grep -vc "definitely lost: 0 bytes" || true)
((lost == 0)) || fail "memory definitely lost in $lost processes"
echo "valgrind_daemon_test: ${#all[@]} processes under memcheck, 0 errors, nothing definitely lost"
