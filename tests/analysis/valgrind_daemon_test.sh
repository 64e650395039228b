#!/usr/bin/env bash
# valgrind memcheck over the example daemon's whole life, twice. With the seed's
# signals: 3 workers (one_for_one, --chaos), requests (good, unknown,
# malformed), SIGUSR1's statistics, a worker crash (GET /crash: abort()) and its
# replacement, more requests, SIGTERM. With nginx's: 2 workers, a rolling reload
# (SIGHUP), a worker added (SIGTTIN), statistics (SIGUSR2), a graceful stop
# (SIGQUIT). valgrind follows every process (the workers are forks of the
# master) and writes one log per process; the test fails unless every log ends
# with a summary of 0 errors, counting "definitely lost" leaks as errors, and
# the master exits 0 after a clean stop.
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
    for log in "$logs"/*/*.log; do
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

# Starts the daemon under memcheck with the arguments given, its processes'
# logs in $logs/$phase. --child-silent-after-fork=no and %p: each forked
# worker reports in a log of its own. Leaks other than "definitely lost" are
# not errors: a worker leaves with _exit() while the master's objects are still
# reachable from its stack.
start_daemon() {
    mkdir -p "$logs/$phase"
    : >"$err"
    valgrind --tool=memcheck --trace-children=yes --child-silent-after-fork=no \
        --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --error-exitcode=99 --num-callers=40 --log-file="$logs/$phase/vg.%p.log" \
        "$daemon" --listen 127.0.0.1:0 --shutdown-timeout 30000 "$@" 2>"$err" &
    master=$!
}

# Waits for the master to exit after a stop, and checks it stopped cleanly.
stopped_cleanly() {
    local status=0
    wait "$master" || status=$?
    master=""
    grep -q "stopped ($1 received); exit status 0" "$err" || fail "no clean stop in the log"
    ((status == 0)) || fail "the master exited with status $status (99: valgrind found errors in it)"
}

# Every log of the phase ends with a summary of 0 errors; $1 logs expected.
check_logs() {
    shopt -s nullglob
    local logs_of_phase=("$logs/$phase"/vg.*.log) log summary n errors=0 lost
    shopt -u nullglob
    ((${#logs_of_phase[@]} == $1)) ||
        fail "$phase: expected $1 valgrind logs ($2), got ${#logs_of_phase[@]}"
    for log in "${logs_of_phase[@]}"; do
        summary=$(grep "ERROR SUMMARY:" "$log" || true)
        [[ -n $summary ]] || fail "$log has no summary: the process did not end under valgrind"
        n=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9,]*\) errors.*/\1/p' <<<"$summary" | tr -d ,)
        errors=$((errors + n))
    done
    ((errors == 0)) || fail "$phase: $errors valgrind errors"
    lost=$(grep -h "definitely lost:" "${logs_of_phase[@]}" | grep -vc "definitely lost: 0 bytes" || true)
    ((lost == 0)) || fail "$phase: memory definitely lost in $lost processes"
    processes=$((processes + ${#logs_of_phase[@]}))
    echo "valgrind_daemon_test: $phase: ${#logs_of_phase[@]} processes ($2), 0 errors"
}
processes=0

# Phase 1, the seed's signals: requests, statistics, a crash and its
# replacement, SIGTERM.
phase=seed
start_daemon --workers 3 --strategy one_for_one --chaos
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
stopped_cleanly SIGTERM
check_logs 5 "master, 3 workers, 1 replacement"

# Phase 2, nginx's signals: a rolling reload (each worker replaced by a new
# fork), a worker added, a graceful stop.
phase=nginx
start_daemon --workers 2 --preset nginx --strategy one_for_one
wait_for_line "ready: 2 workers"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -n 1)
for _ in 1 2 3 4; do expect 200 'GET / HTTP/1.1\r\n\r\n'; done
kill -HUP "$master"
wait_for_line "rolling reload done"
for _ in 1 2 3 4; do expect 200 'GET / HTTP/1.1\r\n\r\n'; done
kill -TTIN "$master"
wait_for_line "adding worker 2"
kill -USR2 "$master"
wait_for_line "^statistics: master pid $master"
for _ in 1 2 3 4; do expect 200 'GET / HTTP/1.1\r\n\r\n'; done
kill -QUIT "$master"
stopped_cleanly SIGQUIT
check_logs 6 "master, 2 workers, 2 successors, 1 added"

echo "valgrind_daemon_test: $processes processes under memcheck, 0 errors, nothing definitely lost"
