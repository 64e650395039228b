// idle_pool: the "supervise" side of the shutdown benchmarks.
//
// A master with N workers that do nothing but wait for a stop request. Once
// every worker is forked, the master writes one byte to the descriptor given
// with --ready-fd, so the driver (bench/shutdown_bench.cpp) knows the pool is
// up. The exit status is the pool's: 0 after a requested stop, 1 after a
// worker died on its own.
//
//   idle_pool --workers 14 --ready-fd 3 [--log]
//
// --log sends the master's log lines to stderr; by default they are dropped
// (options::log_fd = -1), so the measurement is the mechanism, not the log.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <supervise.hpp>

namespace {

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "idle_pool: %s\nusage: idle_pool --workers N [--ready-fd FD] [--log]\n",
                 why);
    std::exit(2);
}

int parse_int(const char* text, const char* what) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < -1 || value > 1000000) {
        usage((std::string("bad value for ") + what + ": " + text).c_str());
    }
    return static_cast<int>(value);
}

}  // namespace

int main(int argc, char** argv) {
    int workers = 0;
    int ready_fd = -1;
    bool log = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--workers" && i + 1 < argc) {
            workers = parse_int(argv[++i], "--workers");
        } else if (arg == "--ready-fd" && i + 1 < argc) {
            ready_fd = parse_int(argv[++i], "--ready-fd");
        } else if (arg == "--log") {
            log = true;
        } else {
            usage(("unknown argument " + arg).c_str());
        }
    }
    if (workers < 1) usage("--workers must be at least 1");

    supervise::options opts;
    opts.workers = workers;
    opts.name = "idle_pool";
    opts.log_fd = log ? STDERR_FILENO : -1;
    opts.stats_fd = -1;

    try {
        auto pool = supervise::make_pool(
            [ready_fd](supervise::worker_context& ctx) {
                // The readiness pipe is the master's business.
                if (ready_fd >= 0) ::close(ready_fd);
                while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
                }
            },
            opts);
        pool.on_ready([ready_fd] {
            if (ready_fd < 0) return;
            const char byte = 'R';
            ssize_t n;
            do {
                n = ::write(ready_fd, &byte, 1);
            } while (n < 0 && errno == EINTR);
            ::close(ready_fd);
        });
        const supervise::outcome result = pool.run();
        return result.exit_status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle_pool: %s\n", e.what());
        return 2;
    }
}
