// The heartbeat watchdog, explicit readiness, and systemd's notification
// protocol against a real unix datagram socket.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <fstream>

#include "harness.hpp"

using namespace harness;

TEST_CASE("a worker that stops sending heartbeats gets SIGABRT and is replaced") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.heartbeat_timeout = 300ms;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            [fd = report_fd](supervise::worker_context& ctx) {
                say_up(fd, ctx);
                if (ctx.index() == 1 && ctx.generation() == 0) {
                    // Hung: never reaches a service point again.
                    for (;;) ::pause();
                }
                // Idle in wait_readable: its own wake-ups keep it alive.
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.logs.wait_for("is back, generation 1"));
    ::kill(master.pid(), SIGTERM);
    const auto status = master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(master.logs.occurrences("sent no heartbeat for") == 1);
    CHECK(master.logs.occurrences("worker 1 (pid " + std::to_string(worker_pid(master.reports, 1)) +
                                  ") sent no heartbeat") == 1);
    CHECK(master.logs.occurrences("killed by signal 6 (SIGABRT)") == 1);
    CHECK(reap_leftovers() == 0);
}

namespace {

// The state letter of /proc/PID/stat ('T' stopped, 't' traced, 'S' asleep,
// ...), or 0 once the process is gone.
char process_state(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(file, stat);
    // The command name, in parentheses, may hold spaces and parentheses.
    const auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? '\0' : stat[close + 2];
}

// True once `pid` is stopped; false if the test's patience ran out first.
bool wait_stopped(pid_t pid) {
    const std::int64_t deadline = now_ms() + patience.count();
    while (process_state(pid) != 'T') {
        if (now_ms() >= deadline) return false;
        ::sched_yield();
    }
    return true;
}

}  // namespace

// A stopped worker cannot act on SIGABRT: it stays pending until the worker
// continues. Without the SIGCONT that follows it, the worker would be
// replaced only at the SIGKILL, shutdown_timeout (here 30 s, far beyond the
// test's patience) after the SIGABRT.
TEST_CASE("a stopped worker (SIGSTOP) gets SIGABRT and SIGCONT from the watchdog: replaced at once") {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.heartbeat_timeout = 200ms;
        opts.shutdown_timeout = 30s;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            [fd = report_fd](supervise::worker_context& ctx) {
                say_up(fd, ctx);
                if (ctx.index() == 1 && ctx.generation() == 0) {
                    ::raise(SIGSTOP);
                    // Continued without dying: hung, and past its watchdog.
                    for (;;) ::pause();
                }
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    // Within the test's patience (10 s), a third of shutdown_timeout.
    const bool replaced = master.logs.wait_for("is back, generation 1");
    const auto status = master.terminate();
    master.logs.wait_eof();
    master.reports.wait_eof();
    INFO(master.logs.text());
    CHECK(replaced);
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    const std::string stopped = "worker 1 (pid " + std::to_string(worker_pid(master.reports, 1));
    CHECK(master.logs.occurrences(stopped + ") sent no heartbeat") == 1);
    CHECK(master.logs.occurrences(stopped + ") killed by signal 6 (SIGABRT)") == 1);
    CHECK(master.logs.occurrences("sending SIGKILL") == 0);
    CHECK(reap_leftovers() == 0);
}

namespace {

// A pool (the nginx preset: SIGQUIT stops it gracefully) whose worker 1
// stops itself once up. The pool's stop, graceful or fast, must reach it as
// it reaches the others: a stopped worker only takes a signal it catches once
// it continues, and the SIGKILL deadline (shutdown_timeout: here an hour) is
// far beyond the test's patience.
void stop_with_a_stopped_worker(int stop_signal) {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.shutdown_timeout = std::chrono::hours(1);
        auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                         supervise::nginx_worker_signals>(
            [fd = report_fd](supervise::worker_context& ctx) {
                say_up(fd, ctx);
                if (ctx.index() == 1) ::raise(SIGSTOP);
                while (ctx.sleep_for(-1ms)) {
                }
                say(fd, "exiting " + std::to_string(ctx.index()) +
                            (ctx.stop_is_graceful() ? " graceful" : " fast"));
                return 0;
            },
            opts);
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    const pid_t stopped = worker_pid(master.reports, 1);
    REQUIRE(stopped > 0);
    REQUIRE(wait_stopped(stopped));
    ::kill(master.pid(), stop_signal);
    const auto status = master.finish();
    master.reports.wait_eof();
    INFO(master.logs.text());
    INFO(master.reports.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    const char* how = stop_signal == SIGQUIT ? " graceful" : " fast";
    for (int i = 0; i < 2; ++i) {
        CHECK(master.reports.occurrences("exiting " + std::to_string(i) + how) == 1);
    }
    CHECK(master.logs.occurrences("worker 1 (pid " + std::to_string(stopped) +
                                  ") exited with status 0") == 1);
    CHECK(master.logs.occurrences("sending SIGTERM") == 0);
    CHECK(master.logs.occurrences("sending SIGKILL") == 0);
    CHECK(reap_leftovers() == 0);
}

}  // namespace

TEST_CASE("a fast stop reaches a stopped worker (SIGTERM, then SIGCONT) without a timeout") {
    stop_with_a_stopped_worker(SIGTERM);
}

TEST_CASE("a graceful stop reaches a stopped worker (SIGQUIT, then SIGCONT) without a timeout") {
    stop_with_a_stopped_worker(SIGQUIT);
}

TEST_CASE("with wait_for_ready, on_ready waits for every worker's ready()") {
    pipe_pair go;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(3, log_fd);
        opts.wait_for_ready = true;
        auto pool = supervise::make_pool(
            [fd = report_fd, go = go.read_fd](supervise::worker_context& ctx) {
                say(fd, "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()));
                while (ctx.wait_readable(go) == supervise::wait_status::timed_out) {
                }
                say(fd, "calling ready " + std::to_string(ctx.index()));
                ctx.ready();
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
        pool.on_ready([fd = report_fd] { say(fd, "all ready"); });
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("up ", 3));
    CHECK(master.reports.occurrences("all ready") == 0);
    say(go.write_fd, "go");
    REQUIRE(master.reports.wait_for("all ready"));
    const std::string& text = master.reports.text();
    for (int i = 0; i < 3; ++i) {
        const auto called = text.find("calling ready " + std::to_string(i));
        REQUIRE(called != std::string::npos);
        CHECK(called < text.find("all ready"));
    }
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("notify_fd: a worker that execs a program is ready when it writes a newline") {
    pipe_pair go;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.notify_fd = 50;  // clear of the test's own pipes, which dup2 would replace
        auto pool = supervise::make_pool(
            [go = go.read_fd](supervise::worker_context&) {
                // Waits for the test's go, then says ready on fd 50, as an
                // s6-style daemon does, and stays. dash takes one digit in
                // `<&N`, hence fd 5 and /proc/self/fd/50; dup2 also drops the
                // pipe's O_CLOEXEC.
                ::dup2(go, 5);
                const std::string script = "read line <&5; echo >/proc/self/fd/50; exec sleep 1000";
                ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
                return 127;
            },
            opts);
        pool.on_ready([fd = report_fd] { say(fd, "all ready"); });
        return pool.run().exit_status;
    });
    go.close_read();
    // Both workers run sh, neither has written its newline: not ready.
    CHECK_FALSE(master.reports.wait_for("all ready", 1, 200ms));
    say(go.write_fd, "go");
    say(go.write_fd, "go");
    REQUIRE(master.reports.wait_for("all ready"));
    ::kill(master.pid(), SIGTERM);
    CHECK(exited_with(master.finish(), 0));
    INFO(master.logs.text());
    CHECK(master.logs.occurrences("killed by signal 15 (SIGTERM)") == 2);
    CHECK(reap_leftovers() == 0);
}

namespace {

// A datagram socket playing systemd's part.
struct fake_systemd {
    int fd = -1;
    bool bound = false;
    std::string directory;
    std::string name;  // what goes into $NOTIFY_SOCKET

    explicit fake_systemd(bool abstract) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un address {};
        address.sun_family = AF_UNIX;
        // Unique even across sandboxes whose PID namespaces reuse our pid.
        char dir[] = "/tmp/supervise-XXXXXX";
        if (::mkdtemp(dir) == nullptr) return;
        directory = dir;
        const std::string id = directory.substr(5);
        socklen_t size;
        if (abstract) {
            name = "@" + id;
            std::memcpy(address.sun_path + 1, id.data(), id.size());
            size = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + id.size());
        } else {
            // Bazel's TEST_TMPDIR is longer than sun_path's 108 bytes.
            name = directory + "/notify";
            std::memcpy(address.sun_path, name.data(), name.size());
            size = static_cast<socklen_t>(sizeof address);
        }
        bound = ::bind(fd, reinterpret_cast<struct sockaddr*>(&address), size) == 0;
    }
    ~fake_systemd() {
        ::close(fd);
        if (bound && name[0] == '/') ::unlink(name.c_str());
        if (!directory.empty()) ::rmdir(directory.c_str());
    }

    // The next datagram, or "" after the test's patience.
    std::string next() {
        struct pollfd pfd {
            fd, POLLIN, 0
        };
        if (::poll(&pfd, 1, static_cast<int>(patience.count())) != 1) return "";
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    }
};

void check_notifications(bool abstract) {
    fake_systemd systemd(abstract);
    REQUIRE(systemd.bound);
    master_process master([&](int log_fd, int report_fd) {
        ::setenv("NOTIFY_SOCKET", systemd.name.c_str(), 1);
        ::setenv("WATCHDOG_USEC", "100000", 1);  // keep-alives every 50 ms
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(2, log_fd));
        return pool.run().exit_status;
    });
    // Keep-alives start with the master, not with READY=1: systemd arms
    // WatchdogSec= only once start-up completes (systemd.service(5)), so early
    // ones are harmless, and on a loaded machine some come before READY=1.
    std::string ready;
    do {
        ready = systemd.next();
    } while (ready == "WATCHDOG=1");
    CHECK(ready ==
          "READY=1\nMAINPID=" + std::to_string(master.pid()) + "\nSTATUS=2 of 2 workers ready");
    CHECK(systemd.next() == "WATCHDOG=1");
    CHECK(systemd.next() == "WATCHDOG=1");
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    std::string message;
    do {
        message = systemd.next();
    } while (message == "WATCHDOG=1");
    CHECK(message == "STOPPING=1\nSTATUS=stopping: SIGTERM received");
    CHECK(exited_with(master.wait(), 0));
    CHECK(reap_leftovers() == 0);
}

}  // namespace

TEST_CASE("systemd notifications on a path socket: READY, WATCHDOG keep-alives, STOPPING") {
    check_notifications(false);
}

TEST_CASE("systemd notifications on an abstract socket") { check_notifications(true); }
