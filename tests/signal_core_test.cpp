// The signal core: one bit per signal, a race-free wait, the embedding
// program's signal state left as it was found, the threads contract, and
// start-up under signals and failures (through the system-call seam).
#include <doctest/doctest.h>
#include <fcntl.h>

#include <atomic>
#include <thread>

#include "harness.hpp"

using namespace harness;

namespace {

// Raises signals at the worst moment: after the loop has looked at the
// pending set and just before it waits. A wait that is not atomic with the
// unblocking (the seed's pause()) would sleep through them.
struct raise_before_wait : supervise::posix_system {
    static inline std::vector<int> signals_to_raise;
    static inline bool armed = false;
    static int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                     const sigset_t* mask) noexcept {
        if (armed && timeout == nullptr) {
            armed = false;
            for (int sig : signals_to_raise) ::kill(::getpid(), sig);
        }
        return supervise::posix_system::ppoll(fds, n, timeout, mask);
    }
};

template <class System>
auto make_test_pool(int report_fd, supervise::options opts) {
    return supervise::make_pool<supervise::seed_master_signals, supervise::seed_worker_signals,
                                supervise::shutdown_all, System>(reporting_worker(report_fd), opts);
}

// A master of two workers that gets `signals` raised just before its loop
// first waits; its statistics go to `stats_fd`.
master_process raising_master(std::vector<int> signals, int stats_fd = -1) {
    return master_process([&](int log_fd, int report_fd) {
        raise_before_wait::signals_to_raise = signals;
        auto pool = make_test_pool<raise_before_wait>(report_fd, test_options(2, log_fd, stats_fd));
        pool.on_ready([] { raise_before_wait::armed = true; });
        return pool.run().exit_status;
    });
}

}  // namespace

TEST_CASE("a signal arriving between the check and the wait is not lost") {
    master_process master = raising_master({SIGTERM});
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("two different signals arriving together are both acted on") {
    pipe_pair stats;
    reader tables(stats.read_fd);
    // Kamailio keeps one int for all signals: the second overwrites the
    // first. Here USR1 and TERM are pending at once.
    master_process master = raising_master({SIGUSR1, SIGTERM}, stats.write_fd);
    stats.close_write();
    const auto status = master.finish();
    tables.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(tables.occurrences("statistics: master pid") == 1);
    CHECK(master.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("10,000 SIGUSR1 followed by one SIGTERM: the TERM is honoured") {
    master_process master([](int log_fd, int report_fd) {
        const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        auto pool =
            supervise::make_pool(reporting_worker(report_fd), test_options(2, log_fd, null_fd));
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    int failed_kills = 0;
    for (int i = 0; i < 10000; ++i) failed_kills += ::kill(master.pid(), SIGUSR1) != 0;
    REQUIRE(failed_kills == 0);
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(master.logs.occurrences("exited with status 0") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("nothing is installed before run(); dispositions and mask are restored after it") {
    reporting_process process([&](int report_fd) {
        static std::atomic<int> custom_calls{0};
        struct sigaction custom {};
        custom.sa_handler = [](int) { custom_calls.fetch_add(1); };
        sigemptyset(&custom.sa_mask);
        custom.sa_flags = SA_RESTART;
        ::sigaction(SIGUSR1, &custom, nullptr);
        ::sigaction(SIGTERM, &custom, nullptr);
        ::signal(SIGHUP, SIG_IGN);
        sigset_t blocked;
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGUSR2);
        ::sigprocmask(SIG_BLOCK, &blocked, nullptr);

        auto snapshot = [] {
            std::vector<std::string> state;
            for (int sig = 1; sig < NSIG; ++sig) {
                struct sigaction current {};
                if (::sigaction(sig, nullptr, &current) != 0) continue;
                state.push_back(
                    std::to_string(sig) + ":" +
                    std::to_string(reinterpret_cast<std::uintptr_t>(current.sa_handler)) +
                    // 0x04000000 is SA_RESTORER, which libc sets itself.
                    ":" + std::to_string(current.sa_flags & ~0x04000000));
            }
            sigset_t mask;
            ::sigprocmask(SIG_BLOCK, nullptr, &mask);
            std::string bits;
            for (int sig = 1; sig < NSIG; ++sig) bits += sigismember(&mask, sig) ? '1' : '0';
            state.push_back(bits);
            return state;
        };
        const auto before = snapshot();
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(2, -1));
        say(report_fd, snapshot() == before ? "construct: unchanged" : "construct: changed");
        pool.on_ready([] { ::raise(SIGTERM); });
        // Sent after the loop's last look, while the pool still blocks it: it
        // was meant for the pool and must not reach the program's handler once
        // the mask is restored.
        pool.on_destroy("late signal", [] { ::raise(SIGUSR1); });
        const auto result = pool.run();
        say(report_fd, snapshot() == before ? "run: unchanged" : "run: changed");
        say(report_fd, "custom handler calls " + std::to_string(custom_calls.load()));
        return result.exit_status;
    });
    CHECK(exited_with(process.finish(), 0));
    CHECK(process.reports.occurrences("construct: unchanged") == 1);
    CHECK(process.reports.occurrences("run: unchanged") == 1);
    // The signals raised during the run were the pool's, not the program's.
    CHECK(process.reports.occurrences("custom handler calls 0") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("no zombie and no leaked file descriptor after a run, and a pool can run again") {
    reporting_process process([&](int report_fd) {
        const int fds_before = count_open_fds();
        auto pool = supervise::make_pool(
            [](supervise::worker_context& ctx) {
                while (!ctx.stop_requested()) ctx.sleep_for(-1ms);
            },
            test_options(3, -1));
        pool.on_ready([] { ::raise(SIGTERM); });
        for (int round = 0; round < 2; ++round) {
            const auto result = pool.run();
            int status = 0;
            const bool zombie_free = ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
            say(report_fd, "round " + std::to_string(round) +
                               " status=" + std::to_string(result.exit_status) +
                               " fds=" + std::to_string(count_open_fds() - fds_before) +
                               " zombie_free=" + (zombie_free ? "yes" : "no"));
        }
        return 0;
    });
    CHECK(exited_with(process.finish(), 0));
    INFO(process.reports.text());
    CHECK(process.reports.occurrences("round 0 status=0 fds=0 zombie_free=yes") == 1);
    CHECK(process.reports.occurrences("round 1 status=0 fds=0 zombie_free=yes") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("threads: run() refuses to fork a process that already runs other threads") {
    pipe_pair hold;
    reporting_process process([&](int report_fd) {
        std::thread other([fd = hold.read_fd] {
            char byte;
            while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
            }
        });
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(2, -1));
        try {
            pool.run();
            say(report_fd, "ran");
        } catch (const std::logic_error& e) {
            say(report_fd, std::string("refused: ") + e.what());
        }
        int status = 0;
        const bool no_child = ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
        say(report_fd, no_child ? "no worker started" : "a worker was started");
        hold.close_write();
        other.join();
        return 0;
    });
    hold.close_write();
    CHECK(exited_with(process.finish(), 0));
    INFO(process.reports.text());
    // 2 threads (3 raw under ThreadSanitizer, whose own thread is not counted).
    CHECK(process.reports.occurrences("refused: supervise: the process runs ") == 1);
    CHECK(process.reports.occurrences("allow_threads") == 1);
    CHECK(process.reports.occurrences("no worker started") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("threads: with allow_threads, a signal taken by another thread still wakes the master") {
    pipe_pair hold;
    master_process process([&](int log_fd, int report_fd) {
        // Created before run(), so it keeps every signal unblocked and is a
        // legitimate target for the kernel.
        std::thread other([fd = hold.read_fd, out = report_fd] {
            say(out, "thread " + std::to_string(::syscall(SYS_gettid)));
            char byte;
            while (::read(fd, &byte, 1) != 0) {
            }
        });
        auto opts = test_options(2, log_fd);
        opts.allow_threads = true;
        auto pool = supervise::make_pool(reporting_worker(report_fd), opts);
        pool.on_ready([out = report_fd] { say(out, "ready"); });
        const auto result = pool.run();
        hold.close_write();
        other.join();
        return result.exit_status;
    });
    hold.close_write();
    hold.close_read();
    REQUIRE(process.reports.wait_for("ready"));
    REQUIRE(process.reports.wait_for("thread "));
    const auto line = process.reports.lines_starting("thread ");
    REQUIRE(line.size() == 1);
    const long tid = std::strtol(line[0].c_str() + 7, nullptr, 10);
    // Only once the master waits in ppoll: a signal that came before would be
    // seen by its next look anyway, pipe or not.
    REQUIRE(std::strtol(syscall_once_in_ppoll(process.pid()).c_str(), nullptr, 10) == SYS_ppoll);
    // Aimed at the other thread: the master thread never sees it directly.
    REQUIRE(::syscall(SYS_tgkill, process.pid(), tid, SIGTERM) == 0);
    const auto status = process.finish();
    INFO(process.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(process.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(reap_leftovers() == 0);
}

namespace {

// Counts forks; can raise SIGTERM at one of them or fail one of them.
struct scripted_fork : supervise::posix_system {
    static inline int calls = 0;
    static inline int raise_term_at = 0;
    static inline int fail_at = 0;
    static pid_t fork() noexcept {
        ++calls;
        if (calls == raise_term_at) ::raise(SIGTERM);
        if (calls == fail_at) {
            errno = EAGAIN;
            return -1;
        }
        return supervise::posix_system::fork();
    }
};

}  // namespace

TEST_CASE("SIGTERM during start-up is honoured before the next fork") {
    master_process master([](int log_fd, int report_fd) {
        scripted_fork::raise_term_at = 3;
        auto pool = make_test_pool<scripted_fork>(report_fd, test_options(10, log_fd));
        pool.on_destroy("count", [report_fd] {
            say(report_fd, "forks " + std::to_string(scripted_fork::calls));
        });
        return pool.run().exit_status;
    });
    const auto status = master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.reports.occurrences("forks 3\n") == 1);
    CHECK(master.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(master.logs.occurrences("exited with status 0") == 3);
    CHECK(master.logs.occurrences("started 10 workers") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a fork that fails during start-up stops the started workers and runs the hooks") {
    for (int failing : {1, 3, 4}) {
        CAPTURE(failing);
        master_process master([&](int log_fd, int report_fd) {
            scripted_fork::fail_at = failing;
            auto pool = make_test_pool<scripted_fork>(report_fd, test_options(4, log_fd));
            pool.on_destroy("report", [report_fd] { say(report_fd, "hook ran"); });
            const auto result = pool.run();
            say(report_fd, "reason " + std::to_string(static_cast<int>(result.reason)));
            return result.exit_status;
        });
        const auto status = master.finish();
        master.reports.wait_eof();
        INFO(master.logs.text());
        CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
        CHECK(master.logs.occurrences("stopping: cannot start worker " +
                                      std::to_string(failing - 1) +
                                      ": fork: Resource temporarily unavailable") == 1);
        CHECK(master.logs.occurrences("exited with status 0") == failing - 1);
        CHECK(master.reports.occurrences("hook ran") == 1);
        CHECK(master.reports.occurrences(
                  "reason " +
                  std::to_string(static_cast<int>(supervise::stop_reason::startup_failed))) == 1);
        CHECK(reap_leftovers() == 0);
    }
}

namespace {

// Throws from the master's side of the second fork, as a user's System that
// is not noexcept may: run() then leaves with the exception.
struct throwing_setpgid : supervise::posix_system {
    static inline int calls = 0;
    static int setpgid(pid_t pid, pid_t pgid) {
        if (pid != 0 && ++calls == 2) throw std::runtime_error("setpgid refused");
        return supervise::posix_system::setpgid(pid, pgid);
    }
};

// Throws from the master's fourth pidfd_open: the first three are those of
// the three workers of the start (opened once all are forked), the fourth
// that of a replacement, forked but not yet in the pool's table.
struct throwing_pidfd_open : supervise::posix_system {
    static inline int calls = 0;
    static int pidfd_open(pid_t pid) {
        if (++calls == 4) throw std::runtime_error("pidfd_open refused");
        return supervise::posix_system::pidfd_open(pid);
    }
};

// A master of three one_for_one workers whose System throws from run(): what
// it says about the children it had, "threw <what>, no child" when none is
// left, not even a zombie. With `kill_one`, worker 0 is SIGKILLed once all
// three are up, so that a replacement is forked.
template <class System>
std::string children_after_throw(bool kill_one = false) {
    master_process master([](int log_fd, int report_fd) {
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one,
                                         System>(reporting_worker(report_fd),
                                                 test_options(3, log_fd));
        try {
            pool.run();
            say(report_fd, "returned");
        } catch (const std::runtime_error& e) {
            int status = 0;
            const bool none = ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
            say(report_fd, std::string("threw ") + e.what() + (none ? ", no child" : ", a child left"));
        }
        return 0;
    });
    if (kill_one) {
        REQUIRE(master.reports.wait_for("up ", 3));
        REQUIRE(::kill(worker_pid(master.reports, 0), SIGKILL) == 0);
    }
    const auto status = master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
    return master.reports.text();
}

// No pidfds, and another part of the program that reaps a child behind the
// pool's back (a waitpid(-1) of its own) just before the pool's first look.
struct reaped_elsewhere : supervise::posix_system {
    static inline bool done = false;
    static int pidfd_open(pid_t) noexcept {
        errno = ENOSYS;
        return -1;
    }
    static int waitid(idtype_t type, id_t id, siginfo_t* info, int flags) noexcept {
        if (!done) {
            int status = 0;
            done = ::waitpid(-1, &status, WNOHANG) > 0;
        }
        return supervise::posix_system::waitid(type, id, info, flags);
    }
};

// Counts the master's waitid(2) looks.
struct counting_waitid : supervise::posix_system {
    static inline int calls = 0;
    static int waitid(idtype_t type, id_t id, siginfo_t* info, int flags) noexcept {
        ++calls;
        return supervise::posix_system::waitid(type, id, info, flags);
    }
};

}  // namespace

TEST_CASE("run() that throws after workers started leaves no worker behind, not even a zombie") {
    // After the second worker is in the table, and while it is being put there.
    CHECK(children_after_throw<throwing_setpgid>().find("threw setpgid refused, no child\n") !=
          std::string::npos);
    CHECK(children_after_throw<throwing_pidfd_open>(true).find(
              "threw pidfd_open refused, no child\n") != std::string::npos);
}

TEST_CASE("a signal only the worker map handles reaches the worker; one it ignores is SIG_IGN") {
    using workers = supervise::signal_map<supervise::on<SIGTERM, supervise::terminate>,
                                          supervise::on<SIGWINCH, supervise::deliver>,
                                          supervise::on<SIGHUP, supervise::ignore>>;
    master_process master([](int log_fd, int report_fd) {
        auto pool = supervise::make_pool<supervise::default_master_signals, workers>(
            [report_fd](supervise::worker_context& ctx) {
                say_up(report_fd, ctx);
                for (;;) {
                    const auto why = ctx.wait_readable(-1);
                    if (why == supervise::wait_status::stop_requested) return 0;
                    if (ctx.take_signal(SIGWINCH)) say(report_fd, "delivered SIGWINCH");
                }
            },
            test_options(1, log_fd));
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up 0 "));
    const pid_t worker = worker_pid(master.reports, 0);
    REQUIRE(worker > 0);
    // SIGWINCH is in no master map: the worker's handler is the worker map's.
    CHECK(has_signal(status_field(worker, "SigCgt"), SIGWINCH));
    // SIGHUP is the master's (ignore, counted): a worker that ignores it has SIG_IGN.
    CHECK(has_signal(status_field(worker, "SigIgn"), SIGHUP));
    REQUIRE(::kill(worker, SIGWINCH) == 0);
    CHECK(master.reports.wait_for("delivered SIGWINCH"));
    const auto status = master.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("with pidfds the master finds ended workers without a waitid look") {
    const int probe = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    if (probe < 0) {
        MESSAGE("no pidfds on this kernel: exits are found by waitid, nothing to check");
        return;
    }
    ::close(probe);
    master_process master([](int log_fd, int report_fd) {
        auto pool = make_test_pool<counting_waitid>(report_fd, test_options(4, log_fd));
        pool.on_destroy("count", [report_fd] {
            say(report_fd, "waitid " + std::to_string(counting_waitid::calls));
        });
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 4));
    const auto status = master.terminate();
    master.reports.wait_eof();
    master.logs.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("exited with status 0") == 4);
    CHECK(master.reports.occurrences("waitid 0\n") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a worker reaped behind the pool's back is noticed at the next SIGCHLD") {
    master_process master([](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.shutdown_timeout = std::chrono::milliseconds(100);
        auto pool = supervise::make_pool<supervise::default_master_signals,
                                         supervise::default_worker_signals, supervise::shutdown_all,
                                         reaped_elsewhere>(
            [report_fd](supervise::worker_context& ctx) {
                say_up(report_fd, ctx);
                if (ctx.index() == 0) return 0;  // the one reaped elsewhere
                while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
                }
                return 0;
            },
            opts);
        pool.on_destroy("hidden", [report_fd] {
            say(report_fd, reaped_elsewhere::done ? "reaped elsewhere" : "not reaped elsewhere");
        });
        return pool.run().exit_status;
    });
    // Its exit status is lost, but not its exit: shutdown_all stops the pool
    // as for any worker that ended, and how it ended is "unknown".
    const auto status = master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(master.reports.occurrences("reaped elsewhere\n") == 1);
    CHECK(master.logs.occurrences("stopping: worker 0 (pid ") == 1);
    CHECK(master.logs.occurrences("reaped elsewhere (status unknown)") >= 1);
    CHECK(reap_leftovers() == 0);
}

namespace {

// Raises SIGHUP in the master from its first look at signals, before the
// first fork: nginx's rolling_reload then starts slot 0 itself.
struct reload_before_first_fork : supervise::posix_system {
    static inline bool raised = false;
    static int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                     const sigset_t* mask) noexcept {
        if (!raised && n == 0) {
            raised = true;
            ::kill(::getpid(), SIGHUP);
        }
        return supervise::posix_system::ppoll(fds, n, timeout, mask);
    }
};

}  // namespace

TEST_CASE("a slot a signal started during start-up is not started again") {
    master_process master([](int log_fd, int report_fd) {
        auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                         supervise::nginx_worker_signals, supervise::shutdown_all,
                                         reload_before_first_fork>(reporting_worker(report_fd),
                                                                   test_options(3, log_fd));
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 3));
    REQUIRE(master.logs.wait_for("started 3 workers"));
    const auto status = master.terminate();
    master.logs.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("SIGHUP received; rolling reload of 3 workers") == 1);
    // Slot 0 once (the reload's), then the reload replaced slots 1 and 2.
    CHECK(master.reports.occurrences("up 0 ") == 1);
    CHECK(master.logs.occurrences("rolling reload done") == 1);
    CHECK(reap_leftovers() == 0);
}
