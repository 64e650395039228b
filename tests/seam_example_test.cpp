// Testing a daemon's failure handling through supervise's system-call seam:
// what happens when the fourth worker cannot be forked, and when every read
// is interrupted once by a signal?
#include <supervise.hpp>

#include <cerrno>
#include <cstdio>
#include <string>

// A full process table: the Nth fork fails with EAGAIN.
struct fork_fails_at : supervise::posix_system {
    static inline int calls = 0;
    static inline int fail_at = 0;
    static pid_t fork() noexcept {
        if (++calls == fail_at) {
            errno = EAGAIN;
            return -1;
        }
        return posix_system::fork();
    }
};

// Signals everywhere: every other read(2) returns EINTR before reading.
struct interrupted_reads : supervise::posix_system {
    static ssize_t read(int fd, void* data, std::size_t size) noexcept {
        static bool interrupt = false;
        interrupt = !interrupt;
        if (interrupt) {
            errno = EINTR;
            return -1;
        }
        return posix_system::read(fd, data, size);
    }
};

// The daemon under test, with the System as a template parameter. Once every
// worker is up it stops itself, as an operator's SIGTERM would.
template <class System>
supervise::outcome run_daemon(bool& cleaned_up) {
    supervise::options opts;
    opts.workers = 4;
    opts.log_fd = -1;
    auto pool = supervise::make_pool<supervise::seed_master_signals,
                                     supervise::seed_worker_signals, supervise::shutdown_all,
                                     System>(
        [](supervise::worker_context& ctx) {
            while (!ctx.stop_requested()) ctx.sleep_for(std::chrono::seconds(1));
        },
        opts);
    pool.on_ready([] { ::kill(::getpid(), SIGTERM); });
    pool.on_destroy("clean up", [&cleaned_up] { cleaned_up = true; });
    return pool.run();
}

int main() {
    int failures = 0;
    auto expect = [&failures](bool ok, const char* what) {
        std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
        if (!ok) ++failures;
    };

    fork_fails_at::fail_at = 4;
    bool cleaned_up = false;
    supervise::outcome result = run_daemon<fork_fails_at>(cleaned_up);
    expect(result.reason == supervise::stop_reason::startup_failed && result.exit_status == 1,
           "a failed fork is a failed start-up, exit status 1");
    expect(result.detail == "cannot start worker 3: fork: Resource temporarily unavailable",
           "the error names the worker and the call");
    expect(cleaned_up, "the destroy hooks ran");

    cleaned_up = false;
    result = run_daemon<interrupted_reads>(cleaned_up);
    expect(result.reason == supervise::stop_reason::requested && result.exit_status == 0,
           "interrupted reads change nothing: the daemon starts and stops as asked");
    expect(cleaned_up, "the destroy hooks ran");
    return failures == 0 ? 0 : 1;
}
