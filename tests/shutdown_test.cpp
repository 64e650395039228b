// Termination: the timeout and its escalation, orphans, and bad input.
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace harness;
using supervise::on;
using supervise::signal_map;

namespace {

// Workers that ignore SIGTERM, as a hung or careless worker would.
using deaf_workers = signal_map<on<SIGTERM, supervise::ignore>, on<SIGINT, supervise::ignore>>;

// What a master of two deaf workers runs.
auto deaf_pool(milliseconds shutdown_timeout) {
    return [shutdown_timeout](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.shutdown_timeout = shutdown_timeout;
        auto pool = supervise::make_pool<supervise::seed_master_signals, deaf_workers>(
            reporting_worker(report_fd), opts);
        return pool.run().exit_status;
    };
}

}  // namespace

TEST_CASE("a worker that ignores SIGTERM is SIGKILLed after the shutdown timeout") {
    master_process master(deaf_pool(300ms));
    REQUIRE(master.reports.wait_for("up ", 2));
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("workers still running after 300 ms; sending SIGKILL") == 1);
    CHECK(master.logs.occurrences("killed by signal 9 (SIGKILL)") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a second terminate signal during shutdown escalates to SIGKILL at once") {
    master_process master(deaf_pool(std::chrono::hours(24)));
    REQUIRE(master.reports.wait_for("up ", 2));
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    REQUIRE(master.logs.wait_for("stopping: SIGTERM received"));
    REQUIRE(::kill(master.pid(), SIGINT) == 0);
    // Well inside the hour the timeout would take.
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("SIGINT received again; sending SIGKILL") == 1);
    CHECK(master.logs.occurrences("killed by signal 9 (SIGKILL)") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("the master killed with SIGKILL leaves no worker behind") {
    master_process master([](int log_fd, int report_fd) {
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(4, log_fd));
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 4));
    REQUIRE(::kill(master.pid(), SIGKILL) == 0);
    const auto status = master.wait();
    REQUIRE(status);
    CHECK(WIFSIGNALED(*status));
    // We are a subreaper: the orphaned workers are now our children. Each
    // must end by itself (PR_SET_PDEATHSIG), without anyone signalling it.
    for (int i = 0; i < 4; ++i) {
        const pid_t worker = worker_pid(master.reports, i);
        CAPTURE(worker);
        const auto worker_status = wait_exit(worker);
        CHECK_MESSAGE(worker_status.has_value(), "worker still running after the master died");
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("invalid options are refused before anything starts") {
    struct bad_case {
        const char* what;
        void (*apply)(supervise::options&);
        const char* message;
    };
    const bad_case cases[] = {
        {"no workers", [](supervise::options& o) { o.workers = 0; },
         "workers must be between 1 and 4096 (got 0)"},
        {"negative workers", [](supervise::options& o) { o.workers = -3; }, "(got -3)"},
        {"too many workers", [](supervise::options& o) { o.workers = 5000; }, "(got 5000)"},
        {"no_fork with a pool",
         [](supervise::options& o) {
             o.no_fork = true;
             o.workers = 4;
         },
         "no_fork runs exactly one worker inline (got workers = 4)"},
        {"zero shutdown timeout", [](supervise::options& o) { o.shutdown_timeout = 0ms; },
         "shutdown_timeout must be between 1 ms and 24 h (got 0 ms)"},
        {"day-long shutdown timeout",
         [](supervise::options& o) { o.shutdown_timeout = std::chrono::hours(25); },
         "shutdown_timeout must be between 1 ms and 24 h (got 90000000 ms)"},
        {"negative destroy timeout", [](supervise::options& o) { o.destroy_timeout = -5ms; },
         "destroy_timeout must be between 1 ms and 24 h (got -5 ms)"},
        {"closed log fd", [](supervise::options& o) { o.log_fd = 987; },
         "log_fd 987 is not an open"},
        {"closed stats fd", [](supervise::options& o) { o.stats_fd = 988; },
         "stats_fd 988 is not an open"},
        {"no_fork with a user to become",
         [](supervise::options& o) {
             o.no_fork = true;
             o.workers = 1;
             o.user = "nobody";
         },
         "no_fork runs the worker in the master itself: user, heartbeat_timeout, notify_fd and "
         "subreaper need forked workers"},
        {"bad death signal", [](supervise::options& o) { o.parent_death_signal = 99; },
         "parent_death_signal must be 0 (off) or a signal number (got 99)"},
        {"new privileges allowed to workers that drop none",
         [](supervise::options& o) { o.allow_new_privileges = true; },
         "allow_new_privileges applies to workers that drop privileges: it needs user"},
    };
    for (const bad_case& c : cases) {
        CAPTURE(c.what);
        supervise::options opts;
        c.apply(opts);
        const std::string message = construction_error(opts);
        CHECK(message.find(c.message) != std::string::npos);
        CHECK(message.rfind("supervise: ", 0) == 0);
    }
    int status = 0;
    CHECK((::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD));
}

TEST_CASE("workers above RLIMIT_NPROC are refused for an unprivileged user") {
    reporting_process process([&](int report_fd) {
        // Root is exempt from RLIMIT_NPROC (fork(2)), so the check is for other
        // users: become nobody if we can. Some sandboxes forbid it; then the
        // root side of the rule is what gets checked.
        const bool unprivileged = ::geteuid() != 0 || ::setuid(65534) == 0;
        struct rlimit limit {
            8, 8
        };
        ::setrlimit(RLIMIT_NPROC, &limit);
        supervise::options opts;
        opts.workers = 64;
        say(report_fd, (unprivileged ? "unprivileged: " : "root: ") + construction_error(opts));
        return 0;
    });
    CHECK(exited_with(process.finish(), 0));
    INFO(process.reports.text());
    if (process.reports.occurrences("root: ") == 1) {
        CHECK(process.reports.occurrences("root: accepted") == 1);
    } else {
        CHECK(process.reports.occurrences(
                  "unprivileged: supervise: workers (64) does not fit under RLIMIT_NPROC (8)") ==
              1);
    }
}

TEST_CASE("only one pool supervises at a time in a process") {
    reporting_process process([&](int report_fd) {
        auto first = supervise::make_pool(
            [](supervise::worker_context& ctx) { ctx.sleep_for(-1ms); }, test_options(1, -1));
        first.on_ready([&] {
            auto second =
                supervise::make_pool([](supervise::worker_context&) {}, test_options(1, -1));
            try {
                second.run();
                say(report_fd, "second ran");
            } catch (const std::logic_error& e) {
                say(report_fd, e.what());
            }
            ::raise(SIGTERM);
        });
        return first.run().exit_status;
    });
    CHECK(exited_with(process.finish(), 0));
    CHECK(process.reports.occurrences("another pool is already running in this process") == 1);
    CHECK(reap_leftovers() == 0);
}

namespace {

// Says "destroyed <index>" when the worker's code unwinds: proof that it
// returned through its own code rather than leaving in the handler.
struct says_when_destroyed {
    int fd;
    int index;
    ~says_when_destroyed() { say(fd, "destroyed " + std::to_string(index)); }
};

// A master of two nginx-preset workers that park in wait_readable(-1) with
// `wake`; before parking each does `before(ctx)`.
template <class Before>
auto parked_pool(supervise::wake_on wake, Before before, bool no_fork = false, int workers = 2) {
    return [wake, before, no_fork, workers](int log_fd, int report_fd) {
        auto opts = test_options(no_fork ? 1 : workers, log_fd);
        opts.no_fork = no_fork;
        auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                         supervise::nginx_worker_signals>(
            [fd = report_fd, wake, before](supervise::worker_context& ctx) {
                const says_when_destroyed guard{fd, ctx.index()};
                say_up(fd, ctx);
                before(ctx, fd);
                while (ctx.wait_readable(-1, -1ms, wake) != supervise::wait_status::stop_requested) {
                }
                say(fd, "returned " + std::to_string(ctx.index()));
                return 0;
            },
            opts);
        pool.on_destroy("note", [fd = report_fd] { say(fd, "hook ran"); });
        return pool.run().exit_status;
    };
}

void nothing_before(supervise::worker_context&, int) {}

}  // namespace

TEST_CASE("wake_on::stop_exits: a fast stop while parked ends the worker in the handler, status 0") {
    master_process master(parked_pool(supervise::wake_on::stop_exits, nothing_before));
    REQUIRE(master.reports.wait_for("up ", 2));
    // "up" is said before the wait: the stop must come once both are in it.
    for (int i = 0; i < 2; ++i) {
        const std::string call = syscall_once_in_ppoll(worker_pid(master.reports, i));
        REQUIRE(std::strtol(call.c_str(), nullptr, 10) == SYS_ppoll);
    }
    ::kill(master.pid(), SIGTERM);
    CHECK(exited_with(master.finish(), 0));
    master.reports.wait_eof();
    INFO(master.logs.text());
    INFO(master.reports.text());
    // No return to the worker's code: nothing unwound, nothing said.
    CHECK(master.reports.occurrences("destroyed ") == 0);
    CHECK(master.reports.occurrences("returned ") == 0);
    CHECK(master.logs.occurrences("exited with status 0") == 2);
    CHECK(master.reports.occurrences("hook ran") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("wake_on::any_stop, the twin: the same stop returns through the worker's code") {
    master_process master(parked_pool(supervise::wake_on::any_stop, nothing_before));
    REQUIRE(master.reports.wait_for("up ", 2));
    ::kill(master.pid(), SIGTERM);
    CHECK(exited_with(master.finish(), 0));
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("returned ") == 2);
    CHECK(master.reports.occurrences("destroyed ") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("wake_on::stop_exits: a graceful stop returns through the worker's code") {
    master_process master(parked_pool(supervise::wake_on::stop_exits, nothing_before));
    REQUIRE(master.reports.wait_for("up ", 2));
    ::kill(master.pid(), SIGQUIT);
    CHECK(exited_with(master.finish(), 0));
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("returned ") == 2);
    CHECK(master.reports.occurrences("destroyed ") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("wake_on::stop_exits: only while blocked in the wait, never before or after it") {
    // One worker each, since a worker that returns stops a shutdown_all pool.
    pipe_pair go;
    bool before_the_wait = false;
    SUBCASE("a stop that came before the wait") { before_the_wait = true; }
    SUBCASE("a stop that comes after the wait returned") { before_the_wait = false; }
    master_process master([&](int log_fd, int report_fd) {
        return parked_pool(supervise::wake_on::stop_exits,
                           [&](supervise::worker_context& ctx, int fd) {
                               if (before_the_wait) {
                                   ::raise(SIGTERM);
                                   return;
                               }
                               // Woken by the test's byte, then stopped after the wait returned.
                               while (ctx.wait_readable(go.read_fd, -1ms,
                                                        supervise::wake_on::stop_exits) !=
                                      supervise::wait_status::ready) {
                               }
                               say(fd, "woken");
                               ::raise(SIGTERM);
                               if (!ctx.stop_requested()) std::_Exit(3);
                           },
                           false, 1)(log_fd, report_fd);
    });
    REQUIRE(master.reports.wait_for("up 0"));
    if (!before_the_wait) {
        say(go.write_fd, "go");
        REQUIRE(master.reports.wait_for("woken"));
    }
    (void)master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    INFO(master.reports.text());
    CHECK(master.reports.occurrences("returned 0") == 1);
    CHECK(master.reports.occurrences("destroyed 0") == 1);
    CHECK(master.logs.occurrences("exited with status 3") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("wake_on::stop_exits in no_fork mode: the master is not ended, its hooks run") {
    master_process master(parked_pool(supervise::wake_on::stop_exits, nothing_before, true));
    REQUIRE(master.reports.wait_for("up 0"));
    // The worker's wait is the master process's own ppoll here.
    const std::string call = syscall_once_in_ppoll(master.pid());
    REQUIRE(std::strtol(call.c_str(), nullptr, 10) == SYS_ppoll);
    ::kill(master.pid(), SIGTERM);
    CHECK(exited_with(master.finish(), 0));
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("returned 0") == 1);
    CHECK(master.reports.occurrences("hook ran") == 1);
    CHECK(reap_leftovers() == 0);
}
