#!/usr/bin/env python3
"""Breaks supervise.hpp on purpose, one way at a time, and checks that the tests notice.

Each mutant is a small textual change to a copy of the header that removes one promised
behaviour. The test binaries are rebuilt against the copy (g++ directly, no Bazel: faster)
and run with a time bound; a mutant that every test survives means a test is missing.
Run from the repository root:  tools/mutants.py [--tests=NAME,...] [WORDS]   (needs g++ and
doctest-dev; a few minutes per ten mutants on two cores). With WORDS, only the mutants whose
description contains one of them run; with --tests, only those test binaries are built and run.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "include" / "supervise.hpp"
TESTS = ["seed_test", "signal_core_test", "shutdown_test", "strategy_test", "actions_test",
         "watchdog_test", "hygiene_test", "fault_injection_test", "chaos_test", "security_test"]
# Test cases chosen from a binary whose other cases need the example daemon (built by Bazel
# only) or run for a minute: the ones that use the library directly and are quick.
TEST_CASES = {
    "chaos_test": "subreaper mode*",
    "security_test": "a worker holds only*,a process in the master*,dispositions and mask*",
}
ISOLATE = (["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
           if os.geteuid() == 0 and shutil.which("unshare") else [])

# (what breaks, text to find, replacement)
MUTANTS = [
    ("one flag for all signals (Kamailio's sig_flag)",
     "process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);",
     "process_signals.pending.store(signal_bit(sig), std::memory_order_release);"),
    ("signals stay blocked during the wait",
     "pfds.size(), timeout_ms < 0 ? nullptr : &limit, &wait_mask);",
     "pfds.size(), timeout_ms < 0 ? nullptr : &limit, nullptr);"),
    ("no self-pipe wake-up (signals taken by another thread are lost)",
     "if (::write(fd, &byte, 1) < 0) {",
     "if (fd < -1 && ::write(fd, &byte, 1) < 0) {"),
    ("kill(0) instead of one kill per worker",
     "s.pidfd >= 0 ? System::pidfd_send_signal(s.pidfd, sig) : System::kill(s.pid, sig);",
     "System::kill(0, sig);"),
    ("previous dispositions not restored",
     "System::sigaction(it->number, &it->action, nullptr);",
     "(void)it;"),
    ("no parent-death signal in workers",
     "if (System::set_parent_death_signal(opts_.parent_death_signal) != 0) {",
     "if (false) {"),
    ("destroy hooks in registration order",
     "for (auto it = hooks_.rbegin(); it != hooks_.rend(); ++it) {",
     "for (auto it = hooks_.begin(); it != hooks_.end(); ++it) {"),
    ("a throwing hook stops the others",
     "            ++hooks_failed_;\n            log(\"destroy hook '\" + it->name + \"' failed: \" + e.what());",
     "            ++hooks_failed_;\n            log(\"destroy hook '\" + it->name + \"' failed: \" + e.what());\n            break;"),
    ("no SIGKILL after the shutdown timeout",
     "            } else if (it->phase == stop_phase::fast) {",
     "            } else if (false) {"),
    ("a worker failure exits 0 (Kamailio's status)",
     "        reason_ == stop_reason::requested || (reason_ == stop_reason::completed && all_clean)",
     "        reason_ != stop_reason::startup_failed"),
    ("signals not checked between forks at start-up",
     "        if (stopping_) return false;\n        if (!spawn(index)) return false;",
     "        if (!spawn(index)) return false;"),
    ("the master waits with a timer (wakes when idle)",
     "    if (earliest < 0) return -1;",
     "    if (earliest < 0) return 1000;"),
    ("no thread check",
     "        if (threads > 1) {",
     "        if (threads > 1000) {"),
    ("no destroy-hook deadline",
     "    System::setitimer(ITIMER_REAL, &limit, &previous_timer);",
     "    (void)limit;"),
    ("pending kernel signals not discarded before restoring dispositions",
     "    while (detail::retry_on_eintr([&] { return System::sigtimedwait(&handled, &now); }) > 0) {",
     "    while (false) {"),
    ("one_for_all restarts only the dead worker",
     "            first = 0;\n            last = slots_.size() - 1;",
     "            (void)0;"),
    ("no restart intensity limit",
     "        if (static_cast<int>(restart_times_.size()) >= opts_.max_restarts) {",
     "        if (false) {"),
    ("no back-off",
     "        if (failures > 1) {",
     "        if (false) {"),
    ("transient workers restarted after a clean exit",
     "            (opts_.restart == restart_type::transient && clean)) {",
     "            false) {"),
    ("the watchdog never fires",
     "        if (age < opts_.heartbeat_timeout.count()) continue;",
     "        continue;"),
    ("rolling reload retires the predecessor before its successor is ready",
     "            retirees_.back().awaiting_successor = true;",
     "            request_stop(retirees_.back(), true);"),
    ("graceful stop sends SIGTERM at once",
     "    if (graceful && graceful_signal() != SIGTERM) {",
     "    if (false) {"),
    ("retirees not waited for at the end",
     "           std::none_of(retirees_.begin(), retirees_.end(), alive);",
     "           true;"),
    ("privileges dropped in the wrong order (user before groups)",
     "    if (System::setgroups(c.groups.size(), c.groups.data()) != 0) {",
     "    if (System::setuid(c.uid) != 0 || System::setgroups(c.groups.size(), c.groups.data()) != 0) {"),
    ("worker exits reaped before pending stop signals are read",
     "        service();\n        reap();\n        check_heartbeats();",
     "        reap();\n        service();\n        check_heartbeats();"),
    ("the master's own SIGPIPE left pending",
     "            retry_on_eintr([&] { return calls.sigtimedwait(&pipe_only, &now); });\n            return;",
     "            return;"),
    ("no READY=1 for systemd",
     "    systemd_.send<System>(\"READY=1\\nMAINPID=\"",
     "    systemd_.send<System>(\"NOT_READY=1\\nMAINPID=\""),
    # fault_injection_test: the seam and what failures through it must end in.
    ("EINTR on a notify_fd read closes the pipe (the worker is never ready)",
     "        if (n < 0 && errno == EINTR) continue;\n        if (n < 0 && errno == EAGAIN) return;",
     "        if (n < 0 && errno == EAGAIN) return;"),
    ("EINTR ends the discard of pending signals",
     "    while (detail::retry_on_eintr([&] { return System::sigtimedwait(&handled, &now); }) > 0) {",
     "    while (System::sigtimedwait(&handled, &now) > 0) {"),
    ("a failed set-up clobbers the program's child-subreaper setting",
     "    if (subreaper_changed_) System::set_child_subreaper(",
     "    if (opts_.subreaper && !opts_.no_fork) System::set_child_subreaper("),
    ("a start-up record that finds the pipe full is dropped",
     "        if (n >= 0 || errno != EAGAIN) return;",
     "        return;"),
    ("a failed parent-death signal is ignored (the worker runs anyway)",
     "            worker_setup_failed(index, \"prctl(PR_SET_PDEATHSIG)\");",
     "            (void)0;"),
    ("a worker's failed sigaction is ignored",
     "        if (System::sigaction(previous.number, &previous.action, nullptr) != 0) {",
     "        if (System::sigaction(previous.number, &previous.action, nullptr) != 0 && false) {"),
    ("a worker's failed signal mask is ignored",
     "        worker_setup_failed(index, \"pthread_sigmask\");",
     "        (void)0;"),
    ("sendto to systemd not retried on EINTR",
     "        retry_on_eintr([&] {\n            return System::sendto(",
     "        [](auto call) { return call(); }([&] {\n            return System::sendto("),
    ("dup2 of notify_fd not retried on EINTR",
     "            if (detail::retry_on_eintr(\n                    [&] { return System::dup2(notify_write, opts_.notify_fd); }) < 0) {",
     "            if (System::dup2(notify_write, opts_.notify_fd) < 0) {"),
    ("the worker's side bypasses the seam (posix_system hard-coded)",
     "    static constexpr worker_calls table{&System::write, &System::thread_sigmask, &System::ppoll,",
     "    static constexpr worker_calls table{&posix_system::write, &System::thread_sigmask, &System::ppoll,"),
    ("a kill that reports ESRCH is taken as proof the worker is gone",
     "    if (sig == SIGKILL) {\n        s.phase = stop_phase::killed;",
     "    if (rc != 0 && errno == ESRCH) s.pid = 0;\n    if (sig == SIGKILL) {\n        s.phase = stop_phase::killed;"),
    ("no fallback to plain pids when pidfd_open fails",
     "        s.pidfd >= 0 ? System::pidfd_send_signal(s.pidfd, sig) : System::kill(s.pid, sig);",
     "        System::pidfd_send_signal(s.pidfd, sig);"),
    ("a rolling reload leaves the predecessor's descriptors in its slot too",
     "            s.pidfd = -1;\n            s.notify_read = -1;\n        }",
     "        }"),
    ("a failed close_range leaves the siblings' descriptors open in a worker",
     "        System::close_range(static_cast<unsigned>(lowest), static_cast<unsigned>(highest)) == 0) {\n        return;\n    }",
     "        System::close_range(static_cast<unsigned>(lowest), static_cast<unsigned>(highest)) == 0) {\n        return;\n    }\n    return;"),
    ("the siblings' descriptors are never closed with close_range",
     "    if (static_cast<std::size_t>(highest - lowest) + 1 == count &&",
     "    if (false &&"),
    ("a failed mmap of the heartbeat table goes unnoticed",
     "        if (table == MAP_FAILED) {",
     "        if (false) {"),
    ("a failed pipe2 leaves the signal mask changed",
     "            System::thread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);\n            throw std::system_error(err, std::generic_category(), \"supervise: pipe2\");",
     "            throw std::system_error(err, std::generic_category(), \"supervise: pipe2\");"),
    ("a failed mmap leaves the pool's signal handling installed",
     "            restore_signals();\n            throw std::system_error(err, std::generic_category(), \"supervise: mmap (heartbeats)\");",
     "            throw std::system_error(err, std::generic_category(), \"supervise: mmap (heartbeats)\");"),
    ("orphans left running when run() returns in subreaper mode",
     "    stop_orphans();\n    run_destroy_hooks();",
     "    run_destroy_hooks();"),
    ("orphans that ignore SIGTERM never get SIGKILL",
     "System::kill(orphan, killing ? SIGKILL : SIGTERM);",
     "System::kill(orphan, SIGTERM);"),
    ("the program's own children stopped as orphans",
     "    if (adopting_) program_children_ = detail::main_thread_children<System>();",
     "    (void)0;"),
    ("workers keep the master's $NOTIFY_SOCKET socket",
     "    systemd_.close<System>();\n    // Siblings' pidfds",
     "    // Siblings' pidfds"),
    ("a failed socket for systemd goes unlogged",
     "        log(std::string(\"systemd notifications off: socket: \") + std::strerror(err));",
     "        (void)err;"),
    ("fork's errno not reported",
     "\"cannot start worker \" + std::to_string(index) + \": fork: \" + std::strerror(err));",
     "\"cannot start worker \" + std::to_string(index) + \": fork failed\");"),
]


def build(include_dir, out_dir):
    objs = []
    main_obj = out_dir / "test_main.o"
    subprocess.run(["g++", "-std=c++17", "-c", str(ROOT / "tests/test_main.cpp"), "-o", str(main_obj)],
                   check=True)
    procs = []
    for name in tests_to_run():
        exe = out_dir / name
        procs.append(subprocess.Popen(
            ["g++", "-std=c++17", "-O1", "-I", str(include_dir), "-I", str(ROOT / "tests"),
             str(ROOT / "tests" / f"{name}.cpp"), str(main_obj), "-o", str(exe), "-pthread",
             "-Wl,--wrap=kill"],  # test_main.cpp's kill(-1)/kill(0) guard
            stderr=subprocess.PIPE))
        objs.append(exe)
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(err.decode())
    return objs


def tests_to_run():
    for arg in sys.argv[1:]:
        if arg.startswith("--tests="):
            return [name for name in arg[len("--tests="):].split(",") if name]
    return TESTS


def run_all(exes):
    failed = []
    for exe in exes:
        try:
            # The first failed check is enough to call a mutant caught. A PID namespace of its
            # own (root only) makes sure a hung run leaves no process behind when it is killed.
            cases = ([f"--test-case={TEST_CASES[exe.name]}"] if exe.name in TEST_CASES else [])
            rc = subprocess.run(ISOLATE + [str(exe), "--abort-after=1"] + cases,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=120,
                                start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        if rc != 0:
            failed.append(f"{exe.name} ({rc})")
    return failed


def main():
    sys.stdout.reconfigure(line_buffering=True)
    text = HEADER.read_text()
    survivors = 0
    chosen = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        inc = tmp / "include"
        inc.mkdir()
        (inc / "supervise.hpp").write_text(text)
        baseline = run_all(build(inc, tmp))
        if baseline:
            print("baseline fails, fix that first:", ", ".join(baseline))
            return 1
        print("baseline: all tests pass")
        words = [w for w in sys.argv[1:] if not w.startswith("--tests=")]
        chosen = [m for m in MUTANTS if not words or any(w in m[0] for w in words)]
        for what, old, new in chosen:
            if text.count(old) != 1:
                print(f"STALE   {what}: the text to mutate is not found exactly once")
                survivors += 1
                continue
            (inc / "supervise.hpp").write_text(text.replace(old, new))
            failed = run_all(build(inc, tmp))
            if failed:
                print(f"caught  {what}: {', '.join(failed)}")
            else:
                print(f"SURVIVED {what}")
                survivors += 1
    print(f"{len(chosen) - survivors} caught, {survivors} survived")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
