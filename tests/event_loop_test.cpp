// worker_context::events_fd() and take_events(): a worker that runs its own
// event loop, with real epoll/poll loops, real signals and the real watchdog.
#include <doctest/doctest.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <thread>

#include "harness.hpp"

using namespace harness;

namespace {

using loop_master = supervise::signal_map<supervise::on<SIGTERM, supervise::terminate>,
                                          supervise::on<SIGQUIT, supervise::graceful_stop>,
                                          supervise::on<SIGUSR1, supervise::forward<SIGUSR1>>>;
using loop_worker = supervise::signal_map<supervise::on<SIGTERM, supervise::terminate>,
                                          supervise::on<SIGQUIT, supervise::graceful_stop>,
                                          supervise::on<SIGUSR1, supervise::deliver>>;

// Waits in poll(2) on `fd` alone: true when it is readable within `timeout`.
bool readable(int fd, milliseconds timeout) {
    struct pollfd p {};
    p.fd = fd;
    p.events = POLLIN;
    int rc = 0;
    do {
        rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    return rc == 1 && (p.revents & POLLIN) != 0;
}

// An epoll loop that waits on events_fd() only, says each take on `report`
// and returns once a stop arrives.
int epoll_loop(supervise::worker_context& ctx, int report) {
    const int loop = ::epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event in {};
    in.events = EPOLLIN;
    if (loop < 0 || ::epoll_ctl(loop, EPOLL_CTL_ADD, ctx.events_fd(), &in) != 0) return 90;
    say_up(report, ctx);
    for (;;) {
        struct epoll_event ready {};
        const int n = ::epoll_wait(loop, &ready, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1) return 91;
        const supervise::worker_events events = ctx.take_events();
        if (events.signalled(SIGUSR1)) say(report, "usr1 " + std::to_string(ctx.index()));
        if (events.stop) {
            say(report, std::string(events.graceful ? "graceful " : "fast ") +
                            std::to_string(ctx.index()));
            return 0;
        }
    }
}

}  // namespace

TEST_CASE("an epoll loop on events_fd() gets delivered signals and a graceful stop") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) { return epoll_loop(ctx, fd); },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    ::kill(master.pid(), SIGUSR1);
    REQUIRE(master.reports.wait_for("usr1 ", 2));
    ::kill(master.pid(), SIGQUIT);
    REQUIRE(master.reports.wait_for("graceful ", 2));
    CHECK(exited_with(master.finish(), 0));
    INFO(master.logs.text());
    CHECK(master.reports.occurrences("fast ") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a fast stop reaches an event loop as a stop that is not graceful") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) { return epoll_loop(ctx, fd); },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    ::kill(master.pid(), SIGTERM);
    REQUIRE(master.reports.wait_for("fast ", 2));
    CHECK(exited_with(master.finish(), 0));
    CHECK(master.reports.occurrences("graceful ") == 0);
    CHECK(reap_leftovers() == 0);
}

// The race a loop cannot close by itself: the signal comes after its last
// look at the flags and before it blocks. Here the worker makes it come
// exactly there, by raising it between take_events() and poll().
TEST_CASE("a signal between the loop's look and its wait is not lost") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) {
                const int events = ctx.events_fd();
                for (int round = 0; round < 1000; ++round) {
                    (void)ctx.take_events();
                    ::raise(SIGUSR1);
                    if (!readable(events, patience)) return 10;
                    if (!ctx.take_events().signalled(SIGUSR1)) return 11;
                    // Taken: nothing is left, so the descriptor is quiet.
                    if (readable(events, 0ms)) return 12;
                }
                (void)ctx.take_events();
                ::raise(SIGTERM);
                if (!readable(events, patience)) return 13;
                if (!ctx.take_events().stop) return 14;
                say(fd, "rounds done");
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("rounds done"));
    // The worker's own SIGTERM ended it with status 0, which the seed's
    // shutdown_all takes as a worker that ended: the pool stops.
    const auto status = master.finish();
    INFO(master.logs.text());
    CHECK(master.logs.occurrences("stopping: worker 0 (pid") == 1);
    CHECK(master.logs.occurrences("exited with status 0") == 2);  // the stopping and stopped lines
    (void)status;
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a stop taken before events_fd() was made leaves it readable at once") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) {
                ::raise(SIGTERM);
                if (!ctx.stop_requested()) return 20;
                // The stop was taken above: no byte is owed for it, yet a
                // loop that starts now must see it on its first wait.
                const int events = ctx.events_fd();
                if (!readable(events, 0ms)) return 21;
                const supervise::worker_events taken = ctx.take_events();
                if (!taken.stop || taken.graceful) return 22;
                // The stop stays in every later take.
                if (!ctx.take_events().stop) return 23;
                if (ctx.events_fd() != events) return 24;
                say(fd, "seen");
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("seen"));
    (void)master.finish();
    INFO(master.logs.text());
    CHECK(master.logs.occurrences("exited with status 0") == 2);  // the stopping and stopped lines
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a signal taken by another thread of the worker wakes the loop") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.allow_threads = true;
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) {
                const int events = ctx.events_fd();
                (void)ctx.take_events();
                // The handler runs in whichever thread the signal reaches;
                // here it is made to be the other one.
                std::thread other([] {
                    sigset_t usr1;
                    sigemptyset(&usr1);
                    sigaddset(&usr1, SIGUSR1);
                    ::pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
                    ::raise(SIGUSR1);
                });
                other.join();
                if (!readable(events, patience)) return 30;
                if (!ctx.take_events().signalled(SIGUSR1)) return 31;
                say(fd, "woken");
                while (!ctx.take_events().stop) {
                    if (!readable(events, patience)) return 32;
                }
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("woken"));
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

// Without the watchdog nothing but an event makes the descriptor readable:
// a pipe, no timer. With it, one epoll set beats for the idle loop.
TEST_CASE("without the watchdog events_fd() is a bare pipe that nothing else wakes") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) {
                const int events = ctx.events_fd();
                struct stat st {};
                if (::fstat(events, &st) != 0 || !S_ISFIFO(st.st_mode)) return 40;
                int wakes = 0;
                say(fd, "waiting");
                for (;;) {
                    if (!readable(events, -1ms)) continue;
                    ++wakes;
                    const supervise::worker_events taken = ctx.take_events();
                    if (taken.heartbeat_due) return 41;
                    if (taken.stop) break;
                }
                // One wake for the byte events_fd() leaves, one for the stop.
                say(fd, "wakes " + std::to_string(wakes));
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("waiting"));
    // Idle for a while: a timer would show up as more wakes.
    CHECK_FALSE(master.logs.wait_for("never said", 1, 300ms));
    ::kill(master.pid(), SIGTERM);
    REQUIRE(master.reports.wait_for("wakes "));
    CHECK(exited_with(master.finish(), 0));
    INFO(master.reports.text());
    CHECK(master.reports.occurrences("wakes 2") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("with the watchdog on, an idle loop on events_fd() beats and is never replaced") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.heartbeat_timeout = 200ms;
        auto pool = supervise::make_pool<loop_master, loop_worker, supervise::one_for_one>(
            [fd = report_fd](supervise::worker_context& ctx) {
                say_up(fd, ctx);
                const int events = ctx.events_fd();
                int beats = 0;
                for (;;) {
                    if (!readable(events, patience)) return 50;
                    const supervise::worker_events taken = ctx.take_events();
                    if (taken.stop) return 0;
                    // Ten beats span five watchdog timeouts: a worker that
                    // did not beat would have been killed four times over.
                    if (taken.heartbeat_due && ++beats == 10) say(fd, "ten beats");
                }
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("ten beats"));
    CHECK(exited_with(master.terminate(), 0));
    INFO(master.logs.text());
    CHECK(master.logs.occurrences("sent no heartbeat") == 0);
    CHECK(master.reports.occurrences("up ") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("no_fork: an event loop in the master's own process stops on SIGTERM") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.no_fork = true;
        auto pool = supervise::make_pool<loop_master, loop_worker>(
            [fd = report_fd](supervise::worker_context& ctx) { return epoll_loop(ctx, fd); },
            opts);
        const supervise::outcome result = pool.run();
        say(report_fd, result.reason == supervise::stop_reason::requested ? "requested" : "other");
        return result.exit_status;
    });
    REQUIRE(master.reports.wait_for("up 0"));
    ::kill(master.pid(), SIGTERM);
    REQUIRE(master.reports.wait_for("fast 0"));
    REQUIRE(master.reports.wait_for("requested"));
    CHECK(exited_with(master.finish(), 0));
    CHECK(reap_leftovers() == 0);
}
