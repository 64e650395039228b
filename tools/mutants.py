#!/usr/bin/env python3
"""Breaks supervise.hpp on purpose, one way at a time, and checks that the tests notice.

Each mutant is a small textual change to a copy of the header (or of supervise-exec's source)
that removes one promised behaviour. The test binaries, and supervise-exec for exec_test, are
rebuilt against the copy (g++ directly, no Bazel: faster) and run with a time bound; a mutant
that every test survives means a test is missing.
Run from the repository root:  tools/mutants.py [--tests=NAME,...] [WORDS]   (needs g++ and
doctest-dev; a few minutes per ten mutants on two cores). With WORDS, only the mutants whose
description contains one of them run; with --tests, only those test binaries are built and run.
  tools/mutants.py --tests=exec_test forward supervise-exec     # signals passed on to copies
  tools/mutants.py --tests=security_test,fault_injection_test no_new_privs bounding
  tools/mutants.py --tests=listeners_test,exec_test listener activation     # listeners
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = "include/supervise.hpp"
EXEC_SOURCE = "examples/exec/supervise_exec.cpp"
DAEMON_SOURCE = "examples/daemon/daemon.cpp"
DAEMON_LOOP = "examples/daemon/http_server.hpp"
DAEMON_HTTP = "examples/daemon/http_request.hpp"
ASIO_SOURCE = "examples/asio/asio_server.cpp"
LIBUV_SOURCE = "examples/libuv/libuv_server.cpp"
HTTP_ANSWERS = "examples/common/http_answers.hpp"
# The files a mutant may change, relative to ROOT; each is copied into the work tree, which
# comes first on the include path.
MUTABLE = [HEADER, EXEC_SOURCE, DAEMON_SOURCE, DAEMON_LOOP, DAEMON_HTTP, ASIO_SOURCE, LIBUV_SOURCE,
           HTTP_ANSWERS]
TESTS = ["restart_policy_test", "seed_test", "signal_core_test", "shutdown_test", "strategy_test",
         "actions_test", "watchdog_test", "event_loop_test", "hygiene_test",
         "fault_injection_test", "chaos_test", "security_test", "exec_test", "listeners_test",
         "daemon_test", "loop_examples_test", "metrics_test"]
# Tests that run programs of the project: the variable that names each to the test, the
# program's name, its source and what it links with. The programs are built from the work tree
# with the tests.
EXEC_PROGRAM = ("SUPERVISE_EXEC", "supervise-exec", EXEC_SOURCE, [])
DAEMON_PROGRAM = ("DAEMON_BINARY", "daemon", DAEMON_SOURCE, [])
PROGRAMS = {"exec_test": [EXEC_PROGRAM], "daemon_test": [DAEMON_PROGRAM],
            "security_test": [DAEMON_PROGRAM],
            "loop_examples_test": [("ASIO_SERVER", "asio_server", ASIO_SOURCE, ["-pthread"]),
                                   ("LIBUV_SERVER", "libuv_server", LIBUV_SOURCE, ["-luv"])]}
# Test cases chosen from a binary whose other cases need the example daemon (built by Bazel
# only) or run for a minute: the ones that use the library directly and are quick.
TEST_CASES = {
    "chaos_test": "subreaper mode*",
    "security_test": "a worker holds only*,a process in the master*,dispositions and mask*,"
                     "privilege drop: a worker cannot regain root*,daemon: *",
}
ISOLATE = (["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
           if os.geteuid() == 0 and shutil.which("unshare") else [])

# (what breaks, text to find, replacement[, file]); the file is the header unless named.
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
     "const int rc = p.pidfd ? System::pidfd_send_signal(p.pidfd.get(), sig)\n                               : System::kill(p.pid, sig);",
     "const int rc = System::kill(0, sig);"),
    ("previous dispositions not restored",
     "System::sigaction(it->number, &it->action, nullptr);",
     "(void)it;"),
    ("no parent-death signal in workers",
     "if (System::set_parent_death_signal(opts.parent_death_signal) != 0) {",
     "if (false) {"),
    ("destroy hooks in registration order",
     "for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) {",
     "for (auto it = hooks.begin(); it != hooks.end(); ++it) {"),
    ("a throwing hook stops the others",
     "                describe_thrown(\" with a non-standard exception\"));\n        }\n    }",
     "                describe_thrown(\" with a non-standard exception\"));\n            break;\n        }\n    }"),
    ("no SIGKILL after the shutdown timeout",
     "            } else if (p.phase == stop_phase::fast) {",
     "            } else if (false) {"),
    ("a worker failure exits 0 (Kamailio's status)",
     "        reason_ == stop_reason::requested || (reason_ == stop_reason::completed && all_clean)",
     "        reason_ != stop_reason::startup_failed"),
    ("signals not checked between forks at start-up",
     "            if (stopping_) return;\n            // A signal may have started this slot",
     "            // A signal may have started this slot"),
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
     "        while (retry_on_eintr([&] { return System::sigtimedwait(&handled, &now); }) > 0) {",
     "        while (false) {"),
    ("one_for_all restarts only the dead worker",
     "            first = 0;\n            last = table_.size() - 1;",
     "            (void)0;"),
    ("no restart intensity limit",
     "        if (static_cast<int>(recent_.size()) >= max_restarts_) {",
     "        if (false) {"),
    ("no back-off",
     "        if (failures <= 1) return 0;",
     "        return 0;"),
    ("transient workers restarted after a clean exit",
     "            (restart_ == restart_type::transient && clean)) {",
     "            false) {"),
    ("the watchdog never fires",
     "        if (age < opts_.heartbeat_timeout.count()) continue;",
     "        continue;"),
    ("rolling reload retires the predecessor before its successor is ready",
     "            retirees_.back().awaiting_successor = true;",
     "            request_stop(retirees_.back(), true);"),
    ("graceful stop sends SIGTERM at once",
     "        if (graceful && graceful_signal_ != SIGTERM) {",
     "    if (false) {"),
    ("retirees not waited for at the end",
     "    bool all_reaped() const noexcept { return live_ == 0; }",
     "    bool all_reaped() const noexcept { return live_ <= retirees_.size(); }"),
    ("privileges dropped in the wrong order (user before groups)",
     "        if (System::setgroups(creds.groups.size(), creds.groups.data()) != 0) {",
     "        if (System::setuid(creds.uid) != 0 || System::setgroups(creds.groups.size(), creds.groups.data()) != 0) {"),
    ("worker exits reaped before pending stop signals are read",
     "            dispatch_signals();\n            reap();\n            check_heartbeats();",
     "            reap();\n            dispatch_signals();\n            check_heartbeats();"),
    ("the master's own SIGPIPE left pending",
     "            retry_on_eintr([&] { return calls.sigtimedwait(&pipe_only, &now); });\n            return;",
     "            return;"),
    ("no READY=1 for systemd",
     "        systemd_.notify(\"READY=1\\nMAINPID=\"",
     "        systemd_.notify(\"NOT_READY=1\\nMAINPID=\""),
    # fault_injection_test: the seam and what failures through it must end in.
    ("EINTR on a notify_fd read closes the pipe (the worker is never ready)",
     "            if (n < 0 && errno == EINTR) continue;\n            if (n < 0 && errno == EAGAIN) return;",
     "            if (n < 0 && errno == EAGAIN) return;"),
    ("EINTR ends the discard of pending signals",
     "        while (retry_on_eintr([&] { return System::sigtimedwait(&handled, &now); }) > 0) {",
     "        while (System::sigtimedwait(&handled, &now) > 0) {"),
    ("the program's child-subreaper setting is put back even where the pool never changed it",
     "        if (changed_) System::set_child_subreaper(previous_ != 0);",
     "        System::set_child_subreaper(previous_ != 0);"),
    ("a start-up record that finds the pipe full is dropped",
     "        if (n >= 0 || errno != EAGAIN) return;",
     "        return;"),
    ("a failed parent-death signal is ignored (the worker runs anyway)",
     "                setup_failed(\"prctl(PR_SET_PDEATHSIG)\");",
     "            (void)0;"),
    ("a worker's failed sigaction is ignored",
     "        if (System::sigaction(previous.number, &previous.action, nullptr) != 0) {",
     "        if (System::sigaction(previous.number, &previous.action, nullptr) != 0 && false) {"),
    ("a worker's failed signal mask is ignored",
     "            setup_failed(\"pthread_sigmask\");",
     "        (void)0;"),
    ("sendto to systemd not retried on EINTR",
     "        retry_on_eintr([&] {\n            return System::sendto(",
     "        [](auto call) { return call(); }([&] {\n            return System::sendto("),
    ("dup2 of notify_fd not retried on EINTR",
     "            if (retry_on_eintr([&] { return System::dup2(notify_write, opts.notify_fd); }) < 0) {",
     "            if (System::dup2(notify_write, opts.notify_fd) < 0) {"),
    ("the worker's side bypasses the seam (posix_system hard-coded)",
     "    static constexpr worker_calls table{\n        &System::write, ",
     "    static constexpr worker_calls table{\n        &posix_system::write, "),
    ("a kill that reports ESRCH is taken as proof the worker is gone",
     "        if (sig == SIGKILL && p.phase != stop_phase::killed) {",
     "        if (rc != 0 && errno == ESRCH) p.pid = 0;\n        if (sig == SIGKILL && p.phase != stop_phase::killed) {"),
    ("no fallback to plain pids when pidfd_open fails",
     "        const int rc = p.pidfd ? System::pidfd_send_signal(p.pidfd.get(), sig)\n                               : System::kill(p.pid, sig);",
     "        const int rc = System::pidfd_send_signal(p.pidfd.get(), sig);"),
    ("a rolling reload leaves the predecessor's descriptors in its slot too",
     "        retirees_.push_back(std::move(p));\n        p = worker_process<System>{};",
     "        retirees_.push_back(worker_process<System>{});\n        retirees_.back().pid = p.pid;\n        retirees_.back().index = p.index;\n        retirees_.back().pidfd.reset(::dup(p.pidfd.get()));\n        retirees_.back().phase = p.phase;\n        p.pid = 0;\n        p.phase = stop_phase::running;"),
    ("a failed close_range leaves the master's descriptors open in a worker",
     "            for (int fd = run.first; fd <= run.last; ++fd) System::close(fd);",
     "            (void)run;"),
    ("the master's descriptors are never closed with close_range",
     "            if (System::close_range(static_cast<unsigned>(run.first),\n                                    static_cast<unsigned>(run.last)) == 0) {",
     "            if (false) {"),
    ("a failed mmap of the heartbeat table goes unnoticed",
     "        if (table == MAP_FAILED) {",
     "        if (false) {"),
    ("a failed pipe2 leaves the signal mask changed",
     "                System::thread_sigmask(SIG_SETMASK, &program_mask_, nullptr);\n                throw std::system_error(err, std::generic_category(), \"supervise: pipe2\");",
     "                throw std::system_error(err, std::generic_category(), \"supervise: pipe2\");"),
    ("a failed mmap leaves the pool's signal handling installed",
     "    ~signal_scope() { restore(); }",
     "    ~signal_scope() { if (std::uncaught_exceptions() == 0) restore(); }"),
    ("orphans left running when run() returns in subreaper mode",
     "        if (adopting_) {\n            stop_orphans<System>(",
     "        if (false) {\n            stop_orphans<System>("),
    ("orphans that ignore SIGTERM never get SIGKILL",
     "System::kill(orphan, killing ? SIGKILL : SIGTERM);",
     "System::kill(orphan, SIGTERM);"),
    ("the program's own children stopped as orphans",
     "          program_children_(adopting_ ? main_thread_children<System>() : std::vector<pid_t>{}),",
     "          program_children_(),"),
    ("workers keep the master's $NOTIFY_SOCKET socket",
     "c_.signals.wake_write(), c_.records_read, c_.systemd_fd}),",
     "c_.signals.wake_write(), c_.records_read, -1}),"),
    ("a failed socket for systemd goes unlogged",
     "        log(std::string(\"systemd notifications off: socket: \") + std::strerror(err));",
     "        (void)err;"),
    ("fork's errno not reported",
     "            return \"cannot start worker \" + std::to_string(index) + \": fork: \" +\n                   std::strerror(err);",
     "            return \"cannot start worker \" + std::to_string(index) + \": fork failed\";"),
    # The parts of the master (restart_policy, process_table, worker_launch, the scopes).
    ("the back-off never starts afresh after a long life",
     "        if (now - started_ms >= period_ms_) failures = 0;",
     "        (void)started_ms;"),
    ("an exit that is not restarted counts against the intensity limit",
     "            return {restart_decision::verdict::not_restarted, 0};",
     "            recent_.push_back(now);\n            return {restart_decision::verdict::not_restarted, 0};"),
    ("a worker skips setting a signal only the worker map handles",
     "            if ((plan.handled & bit) && (master_handled & bit)) continue;",
     "            if (plan.handled & bit) continue;"),
    ("a worker keeps the master's handler for a signal its map ignores",
     "            if (!((plan.handled | plan.ignored) & bit)) continue;\n            if ((plan.handled & bit) && (master_handled & bit)) continue;",
     "            if (!(plan.handled & bit)) continue;\n            if ((plan.handled & bit) && (master_handled & bit)) continue;"),
    ("the process table leaves workers behind (zombies) when run() throws",
     "            int status = 0;\n            retry_on_eintr([&] { return System::waitpid(p.pid, &status, 0); });\n            p.pid = 0;\n        });",
     "            p.pid = 0;\n        });"),
    ("an exit is reaped by asking every pid (O(N) per SIGCHLD)",
     "        bool ask_each = ask_each_pid_;\n        ask_each_pid_ = false;",
     "        bool ask_each = true;\n        ask_each_pid_ = false;"),
    ("a signal during start-up that started a slot gets it started twice",
     "            if (s.process.pid > 0 || s.state != worker_state::idle || s.restart_pending) continue;",
     "            if (s.restart_pending) continue;"),
    ("a worker forked when run() throws is left running (not yet in the table)",
     "            c_.table.started(index, pid, std::move(notify_read), now, defer_pidfd);\n        } catch (...) {\n            System::kill(pid, SIGKILL);",
     "            c_.table.started(index, pid, std::move(notify_read), now, defer_pidfd);\n        } catch (...) {\n            throw;\n            System::kill(pid, SIGKILL);"),
    ("exits are found by a waitid look even where the epoll set over the pidfds names them",
     "        while (!ask_each && (unwatched_ > 0 || adopting)) {",
     "        while (!ask_each) {"),
    ("the epoll set over the pidfds is never read (exits of watched workers go unnoticed)",
     "                const int n = retry_on_eintr(\n                    [&] { return System::epoll_wait(exits_.get(), events, 64, 0); });",
     "                const int n = 0;"),
    ("the workers of the start never get a pidfd (exits found by waitid looks)",
     "        start_workers();\n        table_.watch_deferred();",
     "        start_workers();"),
    ("the handler writes to the self-pipe only without other threads",
     "            if (other_threads) {\n                process_signals.wake_fd.store",
     "            if (!other_threads) {\n                process_signals.wake_fd.store"),
    ("a process reaped behind the pool's back goes unnoticed without pidfds",
     "        if (look && !found_one && child_ended) ask_each = true;",
     "        (void)found_one;"),
    ("the master's wake-up pipe stays open in workers",
     "                {c_.signals.wake_read(), c_.signals.wake_write(), c_.records_read,",
     "                {-1, -1, c_.records_read,"),
    ("events_fd leaves no byte for what arrived before it was made",
     "    if (calls_->write(write_end, &byte, 1) < 0) {",
     "    if (write_end < -1 && calls_->write(write_end, &byte, 1) < 0) {"),
    ("events_fd's pipe is not where the handler writes",
     "    if (inline_wake_read_ < 0) detail::process_signals.wake_fd.store(write_end);",
     "    (void)write_end;"),
    ("events_fd has no timer for the watchdog's beat",
     "    if (heartbeat_ms_ > 0) {\n        // One descriptor for the loop",
     "    if (false) {\n        // One descriptor for the loop"),
    ("stop_exits: the handler never leaves for a parked worker",
     "    if ((process_signals.exit_now.load(std::memory_order_relaxed) & signal_bit(sig)) != 0) {",
     "    if ((process_signals.exit_now.load(std::memory_order_relaxed) & signal_bit(sig)) == 42) {"),
    ("stop_exits: still armed after the wait returned",
     "    if (exits) detail::process_signals.exit_now.store(0, std::memory_order_relaxed);",
     "    (void)exits;"),
    ("stop_exits: armed in no_fork mode too (the master itself would leave)",
     "    const bool exits = wake == wake_on::stop_exits && print_table_ == nullptr;",
     "    const bool exits = wake == wake_on::stop_exits;"),
    ("take_events reports a stop only in the take that found it",
     "    events.stop = stop_signal_ != 0;",
     "    events.stop = stop_signal_ != 0 && events.heartbeat_due;"),
    # Forwarding (forward<SIG>, supervise-exec's tini duty) and what a dropped privilege gives up.
    ("forward<SIG> sends nothing to the workers",
     "                return table_.signal_serving(row.forwarded);",
     "                return;"),
    ("supervise-exec does not forward in the PID 1 role (--pid1, PID 1)",
     "    return cfg.forward_signals || cfg.pid1 || ::getpid() == 1;",
     "    return cfg.forward_signals;",
     EXEC_SOURCE),
    ("supervise-exec's copies start with the forwarded signals ignored (exec keeps SIG_IGN)",
     "    reset_dispositions();\n",
     "",
     EXEC_SOURCE),
    ("privileges dropped without no_new_privs (a setuid-root program gives root back)",
     "        } else if (creds.no_new_privileges && System::set_no_new_privileges() != 0) {",
     "        } else if (false) {"),
    ("privileges dropped with the capability bounding set kept",
     "        } else if (creds.no_new_privileges && !drop_bounding_set(capability)) {",
     "        } else if (false) {"),
    ("a failed no_new_privs is ignored (the worker runs, still root)",
     "            failed = \"prctl(PR_SET_NO_NEW_PRIVS)\";",
     "            (void)0;"),
    # The example daemon's worker loop (examples/daemon/http_server.hpp).
    ("the daemon's loop closes without the half-close and drain (a reset can destroy a 431)",
     "            ::shutdown(c.fd, SHUT_WR);\n            enter(&c, phase::lingering);\n"
     "            return set_interest(&c, EPOLLIN);",
     "            return close(&c);", "examples/daemon/http_server.hpp"),
    ("the daemon's loop waits for the blank line before refusing a bare LF",
     "        if (i == 0 || received[i - 1] != '\\r') {",
     "        if (false) {", "examples/daemon/http_request.hpp"),
    ("the daemon's loop stops accepting at the limit instead of closing the idlest",
     "        if (!oldest) return false;", "        if (oldest || !oldest) return false;",
     "examples/daemon/http_server.hpp"),
    ("the daemon's loop drops connections accepted but not read yet on a graceful stop",
     "        while (connection* c = fifo(phase::keep_alive).front()) {",
     "        while (connection* c = fifo(phase::first_byte).front()) close(c);\n"
     "        while (connection* c = fifo(phase::keep_alive).front()) {",
     "examples/daemon/http_server.hpp"),
    ("the daemon's loop ignores the header timeout (the first-byte one covers it)",
     "timeouts_ = {lim.first_byte_timeout, lim.header_timeout,",
     "timeouts_ = {lim.first_byte_timeout, lim.first_byte_timeout,",
     "examples/daemon/http_server.hpp"),
    ("hostile: the daemon's loop reads on while a client does not take its answers",
     "            return set_interest(&c, EPOLLOUT);",
     "            return set_interest(&c, EPOLLIN | EPOLLOUT);",
     "examples/daemon/http_server.hpp"),
    ("the daemon's loop answers a keep-alive request and closes",
     "const bool close =\n            draining_ || req.has_body",
     "const bool close =\n            true || req.has_body",
     "examples/daemon/http_server.hpp"),
    # Listeners: bound by the constructor, taken from systemd, handed to supervise-exec's copies.
    ("socket activation: LISTEN_PID not checked (another process's sockets are taken)",
     "        if (!systemd_notifier::parse_decimal(pid_text, pid) ||\n            pid != static_cast<std::uint64_t>(self)) {",
     "        if (!systemd_notifier::parse_decimal(pid_text, pid)) {"),
    ("socket activation: LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES left for the workers to see",
     "        if (forget_variables) {\n            ::unsetenv(\"LISTEN_FDS\");",
     "        if (false) {\n            ::unsetenv(\"LISTEN_FDS\");"),
    ("socket activation: a socket that is not listening is taken (SO_ACCEPTCONN not checked)",
     "            if (accepting == 0) fail(which + \" is not listening (no listen(2) on it)\");",
     "            (void)accepting;"),
    ("listeners closed when the stop begins, before the workers have exited",
     "        publish_all(true);\n        table_.stop_all(graceful);",
     "        publish_all(true);\n        listeners_.close_all();\n        table_.stop_all(graceful);"),
    ("a unix socket file left behind when the pool goes",
     "                    System::unlink(file.path.c_str());\n                }",
     "                    (void)0;\n                }"),
    ("a unix socket file removed even when another socket replaced it",
     "S_ISSOCK(now.st_mode) &&\n                    now.st_dev == file.device && now.st_ino == file.inode",
     "S_ISSOCK(now.st_mode)"),
    ("a failed listen forgets the unix socket files bound so far (left behind)",
     "            if (System::listen(fd.get(), spec.backlog) != 0) fail_call(spec, \"listen\");",
     "            if (System::listen(fd.get(), spec.backlog) != 0) {\n                files_.clear();\n                fail_call(spec, \"listen\");\n            }"),
    ("listeners bound without close-on-exec",
     "System::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)",
     "System::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK, 0)"),
    ("a listener's name is not looked at (listener(name) gives the first)",
     "            if (s.name == name) return s.fd;",
     "            return s.fd;"),
    ("supervise-exec: LISTEN_PID names supervise-exec, not the copy",
     "    environment.push_back(variable(\"LISTEN_PID\", static_cast<unsigned>(::getpid())));",
     "    environment.push_back(variable(\"LISTEN_PID\", static_cast<unsigned>(::getppid())));",
     EXEC_SOURCE),
    ("supervise-exec: copies get the listeners in non-blocking mode",
     "        if (flags >= 0) ::fcntl(s.fd, F_SETFL, flags & ~O_NONBLOCK);",
     "        (void)flags;",
     EXEC_SOURCE),
    ("supervise-exec: the listeners are closed in the copies with the master's descriptors",
     "    close_descriptors(3 + static_cast<int>(ctx.listeners().size()), cmd.ready_fd);",
     "    close_descriptors(3, cmd.ready_fd);",
     EXEC_SOURCE),
    # examples/asio and examples/libuv.
    ("the loop examples answer a draining worker's last request without Connection: close",
     "const bool close = draining || req.has_body", "const bool close = req.has_body",
     "examples/common/http_answers.hpp"),
    ("the loop examples: asio's loop takes a graceful stop for a fast one",
     "        if (ev.stop && !ev.graceful) return io_.stop();",
     "        if (ev.stop) return io_.stop();", "examples/asio/asio_server.cpp"),
    ("the loop examples: libuv's loop ignores a graceful stop",
     "    if (ev.stop && !s.draining) drain(s);", "    if (ev.stop && false) drain(s);",
     "examples/libuv/libuv_server.cpp"),
    # Health and metrics: the pool's page, statistics::openmetrics(), readiness (metrics_test),
    # and the daemon's /metrics, /readyz (daemon_test).
    ("pool's page: a restart is not counted",
     "            page_.count_restart(i);", "            (void)i;"),
    ("pool's page: request_done() counts nothing",
     "        if (requests_ != nullptr) requests_->fetch_add(1, std::memory_order_relaxed);",
     "        (void)requests_;"),
    ("pool's page: a new worker's slot is not published when it starts",
     "        publish(index);\n        if (failed.empty()) return true;",
     "        if (failed.empty()) return true;"),
    ("pool's page: a worker's readiness is not published",
     "        s.process.ready = true;\n        publish(index);", "        s.process.ready = true;"),
    ("pool's page: a stop is published after the workers were signalled",
     "        publish_all(true);\n        table_.stop_all(graceful);",
     "        table_.stop_all(graceful);\n        publish_all();"),
    ("pool's page: the master's signal counts are not copied",
     "        page_.publish_signals();\n", ""),
    ("pool's page: the heartbeats are not shared with the workers",
     "            c_.heartbeats.of(0)};", "            nullptr};"),
    ("pool's page: a record's sequence is not odd while the master writes it",
     "    sequence.store(before + 1, std::memory_order_relaxed);\n", ""),
    ("pool's page: a reader takes a record the master is writing",
     "        if ((before & 1) == 0) {\n            read();",
     "        if (true) {\n            read();"),
    ("pool's page: an orphaned worker still finds its master running",
     "stats.master_running = print_table_ != nullptr || calls_->getppid() == master_pid_;",
     "stats.master_running = true;"),
    ("readiness: a graceful stop reads as a fast one",
     "        if (stopping_) return graceful_stop_ ? pool_phase::draining : pool_phase::stopping;",
     "        if (stopping_) return pool_phase::stopping;"),
    ("readiness: a pool that is stopping still reads as ready",
     "    if (!master_running || phase != pool_phase::running) return false;",
     "    if (!master_running) return false;"),
    ("readiness: min_ready_workers ignored (one ready worker is enough)",
     "    return ready_workers() >= wanted;", "    return ready_workers() >= 1;"),
    ("metrics: a backslash in a label value is not escaped",
     "            if (c == '\\\\') {\n                out += \"\\\\\\\\\";",
     "            if (c == '\\\\') {\n                out += \"\\\\\";"),
    ("metrics: bytes that are not UTF-8 are passed through",
     "            out += \"\\xef\\xbf\\xbd\";  // U+FFFD", "            out += text[i];"),
    ("metrics: a counter's samples lose their _total",
     "sample(\"supervise_restarts_total\"", "sample(\"supervise_restarts\""),
    ("metrics: the exposition does not end with # EOF",
     "    out += \"# EOF\\n\";\n", ""),
    ("the daemon's /metrics is served as text/plain",
     "                            openmetrics_type);", "                            \"text/plain\");",
     "examples/daemon/http_server.hpp"),
    ("the daemon's /readyz answers 200 whatever the pool says",
     "append_response(c.out, pool.ready() ? 200 : 503, readiness(pool), connection_field);",
     "append_response(c.out, 200, readiness(pool), connection_field);",
     "examples/daemon/http_server.hpp"),
    ("the daemon's requests are not counted",
     "        ctx_.request_done();\n", "", "examples/daemon/http_server.hpp"),
    # drain_delay: readiness off at once, serving on, then the graceful stop.
    ("graceful: drain_delay ignored (the workers are stopped at once)",
     "opts_.drain_delay.count() > 0 &&", "opts_.drain_delay.count() < 0 &&"),
    ("graceful: the drain delay's end is no deadline of the master (it never ends while idle)",
     "        if (drain_until_ms_ >= 0) consider(drain_until_ms_);\n", ""),
    # min_uptime: a worker that served restarts at once; one that never was ready backs off.
    ("min_uptime: a worker that served still backs off (min_uptime ignored)",
     "if ((was_ready && uptime >= min_uptime_ms_) || uptime >= period_ms_)",
     "if (uptime >= period_ms_)"),
    ("min_uptime: a worker that was never ready counts as one that served",
     "if ((was_ready && uptime >= min_uptime_ms_) || uptime >= period_ms_)",
     "if (uptime >= min_uptime_ms_ || uptime >= period_ms_)"),
    # SIGCONT after each signal that asks a worker to end: a stopped worker acts on it at once.
    ("stopped worker: the watchdog's SIGABRT without SIGCONT (replaced only at the SIGKILL)",
     "        signal_to_end(p, SIGABRT);", "        signal(p, SIGABRT);"),
    ("stopped worker: a fast stop's SIGTERM without SIGCONT (it waits for the SIGKILL)",
     "            signal_to_end(p, SIGTERM);", "            signal(p, SIGTERM);"),
    ("stopped worker: a graceful stop's signal without SIGCONT (it waits for the timeouts)",
     "            signal_to_end(p, graceful_signal_);", "            signal(p, graceful_signal_);"),

]


# Not a mutant here: the self-pipe closed while another thread's handler may still write to it
# (signal_scope::restore's wait for process_signals.writing). That race shows only under
# ThreadSanitizer, and then not in every run: //tests:signal_core_test_tsan is its test.
#
# A mutant is caught as soon as one test fails, so the test most likely to catch it runs first;
# the others are built and run only if it survives there. Keys are words of the description.
FIRST_CATCHER = [
    ("stopped worker", "watchdog_test"),
    ("daemon's /", "daemon_test"), ("daemon's requests", "daemon_test"),
    ("pool's page", "metrics_test"), ("readiness", "metrics_test"), ("metrics", "metrics_test"),
    ("daemon's loop", "daemon_test"), ("hostile", "security_test"),
    ("loop examples", "loop_examples_test"),
    ("events_fd", "event_loop_test"), ("take_events", "event_loop_test"),
    ("stop_exits", "shutdown_test"),
    ("supervise-exec", "exec_test"), ("forward", "exec_test"),
    ("socket activation", "listeners_test"), ("listener", "listeners_test"),
    ("unix socket", "listeners_test"),
    ("back-off", "restart_policy_test"), ("intensity", "restart_policy_test"),
    ("transient", "restart_policy_test"), ("one_for_all", "strategy_test"),
    ("rolling reload", "actions_test"), ("graceful", "actions_test"), ("retirees", "actions_test"),
    ("watchdog", "watchdog_test"), ("EINTR", "fault_injection_test"),
    ("failed", "fault_injection_test"), ("seam", "fault_injection_test"),
    ("ESRCH", "fault_injection_test"), ("fallback", "fault_injection_test"),
    ("close_range", "fault_injection_test"), ("dup2", "fault_injection_test"),
    ("sendto", "fault_injection_test"), ("start-up record", "fault_injection_test"),
    ("errno", "fault_injection_test"), ("orphan", "chaos_test"),
    ("program's own children", "chaos_test"), ("NOTIFY_SOCKET", "security_test"),
    ("subreaper", "fault_injection_test"), ("run() throws", "signal_core_test"),
    ("waitid", "signal_core_test"), ("worker map", "signal_core_test"),
    ("behind the pool", "signal_core_test"), ("during start-up", "signal_core_test"),
    ("wake-up pipe", "security_test"), ("privileges", "security_test"),
    ("hook", "seed_test"), ("SIGKILL", "shutdown_test"), ("thread", "signal_core_test"),
    ("signal", "signal_core_test"),
]


def first_catcher(what):
    for word, test in FIRST_CATCHER:
        if word in what and test in tests_to_run():
            return [test]
    return []


def build(tree, out_dir, only=None):
    """Builds the tests (and the programs they run) from the work tree `tree`."""
    objs = []
    main_obj = out_dir / "test_main.o"
    if not main_obj.exists():
        subprocess.run(["g++", "-std=c++17", "-c", str(ROOT / "tests/test_main.cpp"), "-o",
                        str(main_obj)], check=True)
    procs = []
    programs = set()
    for name in (only if only is not None else tests_to_run()):
        exe = out_dir / name
        procs.append(subprocess.Popen(
            ["g++", "-std=c++17", "-O1", "-I", str(tree / "include"), "-I", str(ROOT / "tests"),
             str(ROOT / "tests" / f"{name}.cpp"), str(main_obj), "-o", str(exe), "-pthread",
             "-Wl,--wrap=kill"],  # test_main.cpp's kill(-1)/kill(0) guard
            stderr=subprocess.PIPE))
        for _, program, source, libraries in PROGRAMS.get(name, []):
            if program in programs:
                continue
            programs.add(program)
            procs.append(subprocess.Popen(
                ["g++", "-std=c++17", "-O1", "-I", str(tree / "include"), "-I", str(tree),
                 "-I", str(ROOT), str(tree / source), "-o", str(out_dir / program)] + libraries,
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
            env = dict(os.environ)
            for variable, program, _, _ in PROGRAMS.get(exe.name, []):
                env[variable] = str(exe.parent / program)
            # metrics_test and daemon_test read OpenMetrics with this script (the tree's copy:
            # it is not mutated).
            env["OPENMETRICS_CHECK"] = str(ROOT / "tests/openmetrics_check.py")
            # A directory of the run's own: in a PID namespace of its own the test's pid, which
            # names its scratch files, is the same in every run.
            with tempfile.TemporaryDirectory() as scratch:
                env["TEST_TMPDIR"] = scratch
                rc = subprocess.run(ISOLATE + [str(exe), "--abort-after=1"] + cases,
                                    stdout=subprocess.DEVNULL, env=env,
                                    stderr=subprocess.DEVNULL, timeout=120,
                                    start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        if rc != 0:
            failed.append(f"{exe.name} ({rc})")
    return failed


def main():
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(__doc__.strip())
        print("\nmutants:\n" + "\n".join(f"  {m[0]}" for m in MUTANTS))
        return 0
    sys.stdout.reconfigure(line_buffering=True)
    texts = {path: (ROOT / path).read_text() for path in MUTABLE}
    survivors = 0
    chosen = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tree = tmp / "tree"
        for path, text in texts.items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text(text)
        baseline = run_all(build(tree, tmp))
        if baseline:
            print("baseline fails, fix that first:", ", ".join(baseline))
            return 1
        print("baseline: all tests pass")
        words = [w for w in sys.argv[1:] if not w.startswith("--tests=")]
        chosen = [m for m in MUTANTS if not words or any(w in m[0] for w in words)]
        for what, old, new, *file in chosen:
            path = file[0] if file else HEADER
            text = texts[path]
            if text.count(old) != 1:
                print(f"STALE   {what}: the text to mutate is not found exactly once")
                survivors += 1
                continue
            (tree / path).write_text(text.replace(old, new))
            first = first_catcher(what)
            failed = run_all(build(tree, tmp, first)) if first else []
            if not failed:
                rest = [t for t in tests_to_run() if t not in first]
                failed = run_all(build(tree, tmp, rest))
            (tree / path).write_text(text)
            if failed:
                print(f"caught  {what}: {', '.join(failed)}")
            else:
                print(f"SURVIVED {what}")
                survivors += 1
    print(f"{len(chosen) - survivors} caught, {survivors} survived")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
