// Restarting strategies (OTP's one_for_one, one_for_all, rest_for_one), the
// restart intensity limit, back-off, restart types and the fatal exit code.
#include <doctest/doctest.h>

#include <map>

#include "harness.hpp"

using namespace harness;

namespace {

// Reports "up <index> <pid> <pgid> <generation>", then waits for a stop, or
// leaves with `exit_code` right away when told to crash in generation
// `crash_until` or earlier (-1: never).
struct scripted_worker {
    int report_fd;
    int crash_index = -1;
    int crash_exit_code = 1;
    unsigned crash_until_generation = 0;
    int operator()(supervise::worker_context& ctx) const {
        say_up(report_fd, ctx);
        if (ctx.index() == crash_index && ctx.generation() <= crash_until_generation) {
            return crash_exit_code;
        }
        while (ctx.sleep_for(-1ms)) {
        }
        return 0;
    }
};

supervise::options quick_options() {
    supervise::options opts;
    opts.shutdown_timeout = 2s;
    opts.restart_delay = 10ms;
    opts.restart_delay_max = 40ms;
    return opts;
}

struct pool_under_test {
    pipe_pair log, report;
    reader logs{log.read_fd}, reports{report.read_fd};
    std::optional<child> master;

    template <class Strategy>
    void start(int workers, scripted_worker worker, supervise::options opts) {
        opts.workers = workers;
        opts.log_fd = log.write_fd;
        opts.stats_fd = -1;
        master.emplace([&] {
            auto pool =
                supervise::make_pool<supervise::seed_master_signals, supervise::seed_worker_signals,
                                     Strategy>(worker, opts);
            return pool.run().exit_status;
        });
        log.close_write();
        report.close_write();
    }

    // Starts `workers` workers that only report and wait, with quick_options();
    // true once every one has reported.
    template <class Strategy>
    bool start_all_up(int workers) {
        start<Strategy>(workers, {report.write_fd}, quick_options());
        return reports.wait_for("up ", workers);
    }

    // A worker for start() whose slot `index` leaves at once with `exit_code`
    // in every generation up to `until_generation`.
    scripted_worker crashing(int index, int exit_code, unsigned until_generation = 0) const {
        scripted_worker worker{report.write_fd};
        worker.crash_index = index;
        worker.crash_exit_code = exit_code;
        worker.crash_until_generation = until_generation;
        return worker;
    }

    // pid of (index, generation) from the "up" lines, or -1.
    pid_t pid_of(int index, unsigned generation) const {
        for (const std::string& line : reports.lines_starting("up ")) {
            int i = -1;
            long pid = 0, pgid = 0;
            unsigned g = 0;
            if (std::sscanf(line.c_str(), "up %d %ld %ld %u", &i, &pid, &pgid, &g) == 4 &&
                i == index && g == generation) {
                return static_cast<pid_t>(pid);
            }
        }
        return -1;
    }

    // Indices of one generation in the order they were forked. Workers report
    // in whatever order the scheduler runs them, but the kernel hands out
    // pids in increasing order (no wrap-around in a test's short life), so
    // sorting by pid gives the fork order.
    std::vector<int> start_order(unsigned generation) const {
        std::map<long, int> by_pid;
        for (const std::string& line : reports.lines_starting("up ")) {
            int i = -1;
            long pid = 0, pgid = 0;
            unsigned g = 0;
            if (std::sscanf(line.c_str(), "up %d %ld %ld %u", &i, &pid, &pgid, &g) == 4 &&
                g == generation) {
                by_pid[pid] = i;
            }
        }
        std::vector<int> order;
        for (const auto& entry : by_pid) order.push_back(entry.second);
        return order;
    }

    // The master's status once it has exited and its log was read to the end.
    std::optional<int> finish() {
        auto status = master->wait();
        logs.wait_eof();
        return status;
    }

    std::optional<int> terminate() {
        ::kill(master->pid(), SIGTERM);
        return finish();
    }
};

}  // namespace

TEST_CASE("one_for_one restarts only the worker that died") {
    pool_under_test pool;
    REQUIRE(pool.start_all_up<supervise::one_for_one>(3));
    const pid_t victim = pool.pid_of(1, 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    REQUIRE(pool.reports.wait_for("up ", 4));
    REQUIRE(pool.logs.wait_for("is back, generation 1"));
    CHECK(pool.pid_of(1, 1) > 0);
    CHECK(pool.pid_of(1, 1) != victim);
    CHECK(pool.pid_of(0, 1) == -1);  // untouched
    CHECK(pool.pid_of(2, 1) == -1);
    const auto status = pool.terminate();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.logs.occurrences("killed by signal 9 (SIGKILL); restarting worker 1") == 1);
    // The survivors of generation 0 and the new worker 1 all stop cleanly.
    CHECK(pool.logs.occurrences("exited with status 0") == 3);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("one_for_all stops every other worker and restarts all of them in index order") {
    pool_under_test pool;
    REQUIRE(pool.start_all_up<supervise::one_for_all>(3));
    REQUIRE(::kill(pool.pid_of(1, 0), SIGKILL) == 0);
    REQUIRE(pool.reports.wait_for("up ", 6));
    CHECK(pool.start_order(1) == std::vector<int>{0, 1, 2});
    const auto status = pool.terminate();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.logs.occurrences("restarting workers 0-2") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("rest_for_one restarts the worker that died and those started after it") {
    pool_under_test pool;
    REQUIRE(pool.start_all_up<supervise::rest_for_one>(4));
    const pid_t first = pool.pid_of(0, 0);
    REQUIRE(::kill(pool.pid_of(1, 0), SIGKILL) == 0);
    REQUIRE(pool.reports.wait_for("up ", 7));
    CHECK(pool.start_order(1) == std::vector<int>{1, 2, 3});
    CHECK(pool.pid_of(0, 1) == -1);
    const auto status = pool.terminate();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.logs.occurrences("restarting workers 1-3") == 1);
    CHECK(pool.logs.occurrences("worker 0 (pid " + std::to_string(first) +
                                ") exited with status 0") == 1);
    CHECK(reap_leftovers() == 0);
}

namespace {

// Worker 0 crashes at once in every generation, under one_for_one with a
// restart period too long to reset anything; returns the master's status.
std::optional<int> run_crash_loop(pool_under_test& pool, int workers, int max_restarts) {
    auto opts = quick_options();
    opts.max_restarts = max_restarts;
    opts.restart_period = std::chrono::hours(1);
    pool.start<supervise::one_for_one>(workers, pool.crashing(0, 1, 1000), opts);
    return pool.finish();
}

}  // namespace

TEST_CASE("a worker that crashes at once forever trips the restart intensity limit") {
    pool_under_test pool;
    const auto status = run_crash_loop(pool, 2, 3);
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(pool.logs.occurrences("; restarting worker 0") == 3);
    CHECK(pool.logs.occurrences("more than 3 restarts within 3600000 ms, giving up") >= 1);
    // Back-off between consecutive failures: immediate, then 10, 20 ms.
    CHECK(pool.logs.occurrences("restarting worker 0\n") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 10 ms") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 20 ms") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("back-off doubles up to restart_delay_max") {
    pool_under_test pool;
    const auto status = run_crash_loop(pool, 1, 6);
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(pool.logs.occurrences("restarting worker 0 in 10 ms") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 20 ms") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 40 ms") == 3);
    CHECK(pool.logs.occurrences("restarting worker 0 in 80 ms") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("min_uptime: a worker that was ready and lived that long restarts at once, every time") {
    pool_under_test pool;
    auto opts = quick_options();
    opts.max_restarts = 4;
    opts.restart_period = std::chrono::hours(1);
    opts.min_uptime = 0ms;  // ready is enough: each crash comes after the worker was ready
    pool.start<supervise::one_for_one>(1, pool.crashing(0, 1, 1000), opts);
    const auto status = pool.finish();
    INFO(pool.logs.text());
    // The intensity limit still counts every one of these restarts.
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(pool.logs.occurrences("restarting worker 0\n") == 4);
    CHECK(pool.logs.occurrences("restarting worker 0 in ") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("min_uptime: a worker that dies before it is ready backs off all the same") {
    pool_under_test pool;
    auto opts = quick_options();
    opts.max_restarts = 3;
    opts.restart_period = std::chrono::hours(1);
    opts.min_uptime = 0ms;
    opts.wait_for_ready = true;  // and the scripted worker never calls ctx.ready()
    pool.start<supervise::one_for_one>(1, pool.crashing(0, 1, 1000), opts);
    const auto status = pool.finish();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(pool.logs.occurrences("restarting worker 0\n") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 10 ms") == 1);
    CHECK(pool.logs.occurrences("restarting worker 0 in 20 ms") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a worker that recovers keeps the pool running") {
    pool_under_test pool;
    auto opts = quick_options();
    opts.max_restarts = 3;
    // Generations 0 and 1 crash, 2 stays.
    pool.start<supervise::one_for_one>(2, pool.crashing(1, 1, 1), opts);
    REQUIRE(pool.logs.wait_for("is back, generation 2"));
    REQUIRE(pool.reports.wait_for("up ", 4));
    const auto status = pool.terminate();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("the fatal exit code stops the pool instead of a restart") {
    pool_under_test pool;
    pool.start<supervise::one_for_one>(2, pool.crashing(0, 125), quick_options());
    const auto status = pool.finish();
    INFO(pool.logs.text());
    CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
    CHECK(pool.logs.occurrences("exited with status 125 (fatal: not restarted)") >= 1);
    CHECK(pool.logs.occurrences("restarting") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("restart types: transient restarts only abnormal exits, temporary none") {
    SUBCASE("transient, clean exit: not restarted; the pool completes when all have ended") {
        pool_under_test pool;
        auto opts = quick_options();
        opts.restart = supervise::restart_type::transient;
        pool.start<supervise::one_for_one>(2, pool.crashing(0, 0), opts);
        REQUIRE(pool.logs.wait_for("not restarted (transient)"));
        REQUIRE(pool.reports.wait_for("up ", 2));
        CHECK(pool.pid_of(0, 1) == -1);
        const auto status = pool.terminate();
        CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    }
    SUBCASE("transient, failure: restarted") {
        pool_under_test pool;
        auto opts = quick_options();
        opts.restart = supervise::restart_type::transient;
        pool.start<supervise::one_for_one>(2, pool.crashing(0, 3), opts);
        REQUIRE(pool.logs.wait_for("is back, generation 1"));
        const auto status = pool.terminate();
        CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    }
    SUBCASE("temporary, failure: not restarted; once every worker ended the pool stops") {
        pool_under_test pool;
        auto opts = quick_options();
        opts.restart = supervise::restart_type::temporary;
        pool.start<supervise::one_for_one>(1, pool.crashing(0, 3), opts);
        const auto status = pool.finish();
        INFO(pool.logs.text());
        // Completed, but with a failed worker: non-zero.
        CHECK_MESSAGE(exited_with(status, 1), describe_status(status));
        CHECK(pool.logs.occurrences("not restarted (temporary)") == 1);
        CHECK(pool.logs.occurrences("stopping: every worker has ended") == 1);
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("workers start in index order") {
    pool_under_test pool;
    REQUIRE(pool.start_all_up<supervise::one_for_one>(4));
    const auto status = pool.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.start_order(0) == std::vector<int>{0, 1, 2, 3});
    CHECK(pool.logs.occurrences("restarting") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("restart options are checked before anything starts") {
    auto message_for = [](auto apply) {
        supervise::options opts;
        apply(opts);
        return construction_error<supervise::one_for_one>(opts);
    };
    CHECK(message_for([](supervise::options& o) { o.max_restarts = -1; }) ==
          "supervise: max_restarts must be 0 or more (got -1)");
    CHECK(message_for([](supervise::options& o) {
              o.restart_period = 0ms;
          }).find("restart_period must be between 1 ms and 24 h") != std::string::npos);
    CHECK(message_for([](supervise::options& o) {
              o.restart_delay = 2s;
              o.restart_delay_max = 1s;
          }).find("restart_delay must be between 0 and restart_delay_max") != std::string::npos);
    CHECK(message_for([](supervise::options& o) { o.min_uptime = -1ms; }) ==
          "supervise: min_uptime must be between 0 and 24 h (got -1 ms)");
    CHECK(message_for([](supervise::options& o) {
              o.fatal_exit_code = 300;
          }).find("fatal_exit_code must be -1 (off) or an exit status 0..255") !=
          std::string::npos);
    CHECK(message_for([](supervise::options& o) {
              o.no_fork = true;
              o.workers = 1;
          }).find("no_fork runs the worker in the master itself") != std::string::npos);
    CHECK(message_for([](supervise::options&) {}) == "accepted");
}

namespace {

// Records the targets of SIGTERM. Without pidfds every signal goes through
// kill(2), where the pid is visible.
struct recording_kill : supervise::posix_system {
    static inline std::vector<pid_t> sigterm_targets;
    static int pidfd_open(pid_t) noexcept {
        errno = ENOSYS;
        return -1;
    }
    static int kill(pid_t pid, int sig) noexcept {
        if (sig == SIGTERM) sigterm_targets.push_back(pid);
        return supervise::posix_system::kill(pid, sig);
    }
};

}  // namespace

TEST_CASE("workers stop in reverse order of their start") {
    master_process master([&](int log_fd, int report_fd) {
        supervise::options opts = test_options(4, log_fd);
        auto pool =
            supervise::make_pool<supervise::seed_master_signals, supervise::seed_worker_signals,
                                 supervise::shutdown_all, recording_kill>(
                reporting_worker(report_fd), opts);
        pool.on_destroy("order", [fd = report_fd] {
            std::string line = "sigterm";
            for (pid_t pid : recording_kill::sigterm_targets) line += " " + std::to_string(pid);
            say(fd, line);
        });
        pool.on_ready([] { ::raise(SIGTERM); });
        return pool.run().exit_status;
    });
    CHECK(exited_with(master.wait(), 0));
    master.reports.wait_eof();
    std::string expected = "sigterm";
    for (int i = 3; i >= 0; --i) expected += " " + std::to_string(worker_pid(master.reports, i));
    CHECK(master.reports.lines_starting("sigterm") == std::vector<std::string>{expected});
    CHECK(reap_leftovers() == 0);
}
