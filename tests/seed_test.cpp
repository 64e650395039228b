// The seed document, row by row and paragraph by paragraph
// (shared/seed/server-shutdown.xml; docs/design.md maps each to the code).
// Every test runs a real master with real workers and sends real signals.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>

#include "harness.hpp"

using namespace harness;
using supervise::on;
using supervise::signal_map;

namespace {

// A master under test: the pool runs in a child process; its log, the
// workers' reports and the statistics come back on pipes.
struct seed_server {
    pipe_pair log, report, stats;
    reader log_text{log.read_fd}, reports{report.read_fd}, stats_text{stats.read_fd};
    // Not a std::optional: GCC 12 -O2 takes optional::emplace's reset of the
    // empty optional for a use of an uninitialized child (-Wmaybe-uninitialized).
    std::unique_ptr<child> master;
    int workers = 0;

    template <class MakePool>
    void start(int n, MakePool make_pool) {
        workers = n;
        master = std::make_unique<child>([&] {
            auto pool = make_pool(test_options(n, log.write_fd, stats.write_fd));
            pool.on_destroy("report", [fd = report.write_fd] { say(fd, "hook ran"); });
            return pool.run().exit_status;
        });
        log.close_write();
        report.close_write();
        stats.close_write();
    }

    void start(int n) {
        start(n, [&](supervise::options opts) {
            return supervise::make_pool(reporting_worker(report.write_fd), opts);
        });
    }

    bool all_up() { return reports.wait_for("up ", workers); }

    // Sends SIGTERM, which must reach the master; its status once it exited.
    std::optional<int> terminate() {
        REQUIRE_MESSAGE(::kill(master->pid(), SIGTERM) == 0, "SIGTERM could not be sent");
        return master->wait();
    }
};

// Asks for statistics tables until one shows every needle, bounded. Signals
// already sent are delivered before or with the next SIGUSR1 on Linux, but
// ThreadSanitizer defers asynchronous signals to its own safe points, so one
// table is not always enough.
bool tables_show(seed_server& server, const std::vector<std::string>& needles) {
    for (int round = 1; round <= 20; ++round) {
        if (::kill(server.master->pid(), SIGUSR1) != 0) return false;
        if (!server.stats_text.wait_for("SIGUSR1", round)) return false;
        const std::string& text = server.stats_text.text();
        const std::string last = text.substr(text.rfind("statistics:"));
        if (std::all_of(needles.begin(), needles.end(), [&](const std::string& needle) {
                return last.find(needle) != std::string::npos;
            })) {
            return true;
        }
    }
    return false;
}

void check_terminates_cleanly(int sig) {
    seed_server server;
    server.start(3);
    REQUIRE(server.all_up());
    REQUIRE(::kill(server.master->pid(), sig) == 0);
    const auto status = server.master->wait();
    INFO(server.log_text.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    server.log_text.wait_eof();
    CHECK(server.log_text.occurrences("stopping: " + supervise::signal_name(sig) + " received") ==
          1);
    CHECK(server.log_text.occurrences(") exited with status 0") == 3);
    server.reports.wait_eof();
    CHECK(server.reports.occurrences("hook ran") == 1);
    CHECK(reap_leftovers() == 0);
}

}  // namespace

TEST_CASE("seed row: SIGTERM terminates the server and its workers, exit status 0") {
    check_terminates_cleanly(SIGTERM);
}

TEST_CASE("seed row: SIGINT terminates the server and its workers, exit status 0") {
    check_terminates_cleanly(SIGINT);
}

TEST_CASE("seed row: SIGPIPE terminates the server and its workers, exit status 0") {
    check_terminates_cleanly(SIGPIPE);
}

TEST_CASE("seed row: SIGCHLD - a worker that exits during normal operation shuts the server down") {
    pipe_pair go;
    seed_server server;
    server.start(3, [&](supervise::options opts) {
        return supervise::make_pool(
            [fd = server.report.write_fd, go = go.read_fd](supervise::worker_context& ctx) {
                say(fd,
                    "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()) + " 0");
                // Worker 1 leaves on its own, cleanly, once every worker is up.
                const int watched = ctx.index() == 1 ? go : -1;
                while (ctx.wait_readable(watched) == supervise::wait_status::timed_out) {
                }
                return 0;
            },
            opts);
    });
    REQUIRE(server.all_up());
    say(go.write_fd, "go");
    const auto status = server.master->wait();
    server.log_text.wait_eof();
    INFO(server.log_text.text());
    // Kamailio exits 0 here; a worker's unrequested exit is a failure.
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    const pid_t dead = worker_pid(server.reports, 1);
    CHECK(server.log_text.occurrences("stopping: worker 1 (pid " + std::to_string(dead) +
                                      ") exited with status 0") == 1);
    server.reports.wait_eof();
    CHECK(server.reports.occurrences("hook ran") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGCHLD - a worker exiting with status 255 makes the master exit non-zero") {
    seed_server server;
    server.start(2, [&](supervise::options opts) {
        return supervise::make_pool(
            [fd = server.report.write_fd](supervise::worker_context& ctx) {
                say(fd,
                    "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()) + " 0");
                if (ctx.index() == 0) return 255;
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
    });
    const auto status = server.master->wait();
    server.log_text.wait_eof();
    INFO(server.log_text.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(server.log_text.occurrences("stopping: worker 0 (pid") == 1);
    CHECK(server.log_text.occurrences("exited with status 255") == 2);  // stopping + stopped
    CHECK(server.log_text.occurrences("sending SIGKILL") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGCHLD - a worker killed by a signal is named with the signal") {
    seed_server server;
    server.start(3);
    REQUIRE(server.all_up());
    const pid_t victim = worker_pid(server.reports, 2);
    REQUIRE(victim > 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    const auto status = server.master->wait();
    server.log_text.wait_eof();
    INFO(server.log_text.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(server.log_text.occurrences("stopping: worker 2 (pid " + std::to_string(victim) +
                                      ") killed by signal 9 (SIGKILL)") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGCHLD - a SIGCHLD with no dead worker reaps nothing and stops nothing") {
    seed_server server;
    server.start(2);
    REQUIRE(server.all_up());
    REQUIRE(::kill(server.master->pid(), SIGCHLD) == 0);
    CHECK(tables_show(server, {"SIGCHLD 1"}));
    CHECK(server.stats_text.occurrences("exited") == 0);
    CHECK(server.log_text.occurrences("stopping") == 0);
    CHECK(exited_with(server.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGUSR1 prints statistics and the server continues") {
    seed_server server;
    server.start(3);
    REQUIRE(server.all_up());
    REQUIRE(::kill(server.master->pid(), SIGUSR1) == 0);
    REQUIRE(server.stats_text.wait_for("last exit"));
    REQUIRE(server.stats_text.wait_for("running", 3));
    for (int i = 0; i < 3; ++i) {
        CHECK(server.stats_text.occurrences(" " + std::to_string(worker_pid(server.reports, i)) +
                                            " ") == 1);
    }
    CHECK(server.stats_text.occurrences("SIGUSR1 1") == 1);
    // Still running: a second request is answered, then TERM stops it cleanly.
    REQUIRE(::kill(server.master->pid(), SIGUSR1) == 0);
    REQUIRE(server.stats_text.wait_for("SIGUSR1 2"));
    const auto status = server.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGHUP and SIGUSR2 are ignored") {
    seed_server server;
    server.start(2);
    REQUIRE(server.all_up());
    REQUIRE(::kill(server.master->pid(), SIGHUP) == 0);
    REQUIRE(::kill(server.master->pid(), SIGUSR2) == 0);
    // Counted, nothing else: both workers still running, no stop.
    CHECK(tables_show(server, {"SIGHUP 1", "SIGUSR2 1"}));
    CHECK(server.stats_text.occurrences("exited") == 0);
    CHECK(server.log_text.occurrences("stopping") == 0);
    const auto status = server.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: one common signal handler serves every signal of the master") {
    seed_server server;
    server.start(1, [&](supervise::options opts) {
        auto pool = supervise::make_pool(reporting_worker(server.report.write_fd), opts);
        pool.on_ready([fd = server.report.write_fd] {
            int common = 0;
            int other = 0;
            for (int sig : {SIGINT, SIGPIPE, SIGTERM, SIGCHLD, SIGUSR1, SIGHUP, SIGUSR2}) {
                struct sigaction current {};
                ::sigaction(sig, nullptr, &current);
                (current.sa_handler == &supervise::detail::on_signal ? common : other) += 1;
            }
            say(fd,
                "handlers common=" + std::to_string(common) + " other=" + std::to_string(other));
            ::raise(SIGTERM);
        });
        return pool;
    });
    const auto status = server.master->wait();
    server.reports.wait_eof();
    CHECK(server.reports.occurrences("handlers common=7 other=0") == 1);
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: the main process does no request work and waits for signals without a timer") {
    seed_server server;
    server.start(2);
    REQUIRE(server.all_up());
    const pid_t master = server.master->pid();
    CHECK(worker_pid(server.reports, 0) != master);
    CHECK(worker_pid(server.reports, 1) != master);
    // The idle master sits in ppoll(2) with a NULL timeout: it never wakes
    // until a signal comes. /proc/PID/syscall shows the call and arguments.
    const std::string syscall_line = syscall_once_in_ppoll(master);
    INFO("/proc/" << master << "/syscall: " << syscall_line);
    REQUIRE(std::strtol(syscall_line.c_str(), nullptr, 10) == SYS_ppoll);
    std::istringstream fields(syscall_line);
    std::string nr, fds, nfds, timeout;
    fields >> nr >> fds >> nfds >> timeout;
    CHECK(timeout == "0x0");
    REQUIRE(::kill(master, SIGTERM) == 0);
    CHECK(exited_with(server.master->wait(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: children print their statistics on SIGUSR1 and ignore SIGHUP") {
    seed_server server;
    server.start(2);
    REQUIRE(server.all_up());
    const pid_t worker = worker_pid(server.reports, 1);
    REQUIRE(::kill(worker, SIGHUP) == 0);
    REQUIRE(::kill(worker, SIGUSR1) == 0);
    REQUIRE(server.stats_text.wait_for("worker 1 pid " + std::to_string(worker) + " generation 0"));
    // SIGHUP was ignored (SIG_IGN, never even counted), USR1 counted once.
    CHECK(server.stats_text.occurrences(" signals 1\n") == 1);
    CHECK(server.log_text.occurrences("stopping") == 0);
    CHECK(exited_with(server.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: the main process sends SIGTERM to its children when it shuts down") {
    seed_server server;
    // Workers with no signal map keep the default action for SIGTERM, so the
    // signal the master sends is visible in how they died.
    server.start(2, [&](supervise::options opts) {
        return supervise::make_pool<supervise::seed_master_signals, signal_map<>>(
            reporting_worker(server.report.write_fd), opts);
    });
    REQUIRE(server.all_up());
    CHECK(exited_with(server.terminate(), 0));
    server.log_text.wait_eof();
    INFO(server.log_text.text());
    CHECK(server.log_text.occurrences("killed by signal 15 (SIGTERM)") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: no kill(0) - a process sharing the launcher's group survives the shutdown") {
    pipe_pair hold, started;
    reader sibling_started(started.read_fd);
    seed_server server;
    server.start(2);
    REQUIRE(server.all_up());
    // A sibling in the master's own process group, as a launching shell is.
    // It says when it runs, so moving it cannot race with its own setpgid.
    child sibling([&] {
        hold.close_write();
        say(started.write_fd, "sibling");
        char byte;
        while (::read(hold.read_fd, &byte, 1) < 0 && errno == EINTR) {
        }
        return 7;
    });
    started.close_write();
    REQUIRE(sibling_started.wait_for("sibling"));
    REQUIRE(::setpgid(sibling.pid(), server.master->pid()) == 0);
    // Workers live in the pool's own group, not the launcher's.
    CHECK(worker_pgid(server.reports, 0) != server.master->pid());
    CHECK(worker_pgid(server.reports, 0) == worker_pgid(server.reports, 1));
    CHECK(exited_with(server.terminate(), 0));
    CHECK_MESSAGE(!sibling.wait(0ms), "the sibling was signalled by the shutdown");
    hold.close_write();
    CHECK(exited_with(sibling.wait(), 7));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed: dont_fork runs one worker in the main process; hooks run after it returns") {
    master_process master([&](int log_fd, int report_fd) {
        supervise::options opts = test_options(1, log_fd);
        opts.no_fork = true;
        auto pool = supervise::make_pool(
            [fd = report_fd](supervise::worker_context& ctx) {
                say(fd, "up 0 " + std::to_string(::getpid()) + " 0");
                while (ctx.sleep_for(-1ms)) {
                }
                say(fd, "worker returned after " + supervise::signal_name(ctx.stop_signal()));
            },
            opts);
        pool.on_destroy("report", [fd = report_fd] { say(fd, "hook ran"); });
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up "));
    CHECK(worker_pid(master.reports, 0) == master.pid());
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    CHECK(exited_with(master.wait(), 0));
    master.reports.wait_eof();
    const std::string& text = master.reports.text();
    const auto returned = text.find("worker returned after SIGTERM");
    const auto hook = text.find("hook ran");
    REQUIRE(returned != std::string::npos);
    REQUIRE(hook != std::string::npos);
    CHECK(returned < hook);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE(
    "seed: destroy hooks run once, newest first, and a failing hook does not stop the others") {
    // The three ways a pool stops: requested, a worker failed, start-up failed.
    struct failing_fork : supervise::posix_system {
        static pid_t fork() noexcept {
            errno = EAGAIN;
            return -1;
        }
    };
    for (const char* path : {"requested", "worker failed", "startup failed"}) {
        CAPTURE(path);
        const std::string which = path;
        master_process master([&](int log_fd, int report_fd) {
            auto opts = test_options(2, log_fd);
            auto add_hooks = [&](auto& pool) {
                for (const char* name : {"first", "second", "third"}) {
                    pool.on_destroy(name, [fd = report_fd, name] {
                        say(fd, std::string("hook ") + name);
                        if (std::string(name) == "second") throw std::runtime_error("disk full");
                    });
                }
            };
            if (which == "startup failed") {
                auto pool =
                    supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::shutdown_all,
                                         failing_fork>(reporting_worker(report_fd), opts);
                add_hooks(pool);
                return pool.run().exit_status;
            }
            auto pool = supervise::make_pool(
                [&](supervise::worker_context& ctx) {
                    if (which == "worker failed") return 3;
                    return reporting_worker(report_fd)(ctx);
                },
                opts);
            pool.on_ready([&] {
                if (which == "requested") ::raise(SIGTERM);
            });
            add_hooks(pool);
            return pool.run().exit_status;
        });
        const auto status = master.wait();
        CHECK_MESSAGE(exited_with(status, which == "requested" ? 0 : 1), describe_status(status));
        master.reports.wait_eof();
        master.logs.wait_eof();
        INFO(master.logs.text());
        CHECK(master.reports.lines_starting("hook ") ==
              std::vector<std::string>{"hook third", "hook second", "hook first"});
        CHECK(master.logs.occurrences("destroy hook 'second' failed: disk full") == 1);
        if (which == "startup failed") {
            CHECK(master.logs.occurrences(
                      "stopping: cannot start worker 0: fork: Resource temporarily unavailable") ==
                  1);
        }
        CHECK(reap_leftovers() == 0);
    }
}

TEST_CASE("seed: destroy hooks together are bounded by destroy_timeout") {
    pipe_pair never;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.destroy_timeout = 200ms;
        auto pool = supervise::make_pool(reporting_worker(report_fd), opts);
        pool.on_destroy("after", [fd = report_fd] { say(fd, "never printed"); });
        pool.on_destroy("hangs", [fd = never.read_fd] {
            char byte;
            while (::read(fd, &byte, 1) != 0) {
            }
        });
        pool.on_ready([] { ::raise(SIGTERM); });
        return pool.run().exit_status;
    });
    const auto status = master.wait();
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    master.logs.wait_eof();
    CHECK(master.logs.occurrences("destroy hooks exceeded destroy_timeout") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("seed row: SIGPIPE - the master's own writes to a log nobody reads never stop it") {
    pipe_pair log, report;
    log.close_read();  // nobody will ever read the log or the statistics
    reader reports(report.read_fd);
    child master([&] {
        auto pool = supervise::make_pool(reporting_worker(report.write_fd),
                                         test_options(2, log.write_fd, log.write_fd));
        pool.on_destroy("report", [fd = report.write_fd] { say(fd, "hook ran"); });
        const auto result = pool.run();
        say(report.write_fd, "stopped by " + supervise::signal_name(result.signal));
        return result.exit_status;
    });
    log.close_write();
    report.close_write();
    REQUIRE(reports.wait_for("up ", 2));
    // Each of these makes the master write to the dead pipe.
    REQUIRE(::kill(master.pid(), SIGUSR1) == 0);
    REQUIRE(::kill(master.pid(), SIGHUP) == 0);
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    const auto status = master.wait();
    reports.wait_eof();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reports.occurrences("stopped by SIGTERM") == 1);
    CHECK(reports.occurrences("hook ran") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE(
    "seed: a stop signal that reaches the master with its workers' exits is a requested stop") {
    master_process master([&](int log_fd, int report_fd) {
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(2, log_fd));
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    // As pkill or systemd's KillMode=control-group do, deterministically: the
    // master is held while its workers end on SIGTERM, so their SIGCHLD and
    // the master's own SIGTERM are pending together when it resumes.
    REQUIRE(::kill(master.pid(), SIGSTOP) == 0);
    for (int i = 0; i < 2; ++i) {
        const pid_t worker = worker_pid(master.reports, i);
        REQUIRE(::kill(worker, SIGTERM) == 0);
        // Not our child: wait for its end through a pidfd.
        const int fd = pidfd_open(worker);
        REQUIRE(fd >= 0);
        struct pollfd pfd {
            fd, POLLIN, 0
        };
        REQUIRE(::poll(&pfd, 1, static_cast<int>(patience.count())) == 1);
        ::close(fd);
    }
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    REQUIRE(::kill(master.pid(), SIGCONT) == 0);
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("stopping: SIGTERM received") == 1);
    CHECK(master.logs.occurrences("SIGKILL") == 0);
    CHECK(reap_leftovers() == 0);
}
