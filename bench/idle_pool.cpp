// idle_pool: the "supervise" side of the benchmarks (bench/README.md).
//
// A master with N workers that do nothing but wait for a stop request. Once
// every worker has its signal handling in place, the master writes one byte
// to the descriptor given with --ready-fd, so the driver
// (bench/shutdown_bench.cpp) knows the pool is up. The exit status is the
// pool's: 0 after a requested stop, 1 after a worker died on its own under
// the default strategy.
//
//   idle_pool --workers 14 --ready-fd 3 [--log | --log-fd FD]
//             [--strategy shutdown_all|one_for_one] [--heartbeat-timeout MS]
//             [--max-restarts N] [--stop-exits]
//
// --strategy one_for_one (the respawn benchmark) restarts a worker that dies.
// --max-restarts sets options::max_restarts (default here 5, the header's
// default): the burst benchmark kills up to every worker at once, more
// restarts within restart_period than 5, which would stop the pool.
// A restarted worker (generation > 0) writes one byte to the --ready-fd
// descriptor as the first thing its code does: the replacement is running,
// with the pool's signal handling in place and its start-up record sent to
// the master. That is the "replacement ready" the driver times. The master
// keeps the descriptor open for that reason; first-generation workers close
// their copy.
//
// --stop-exits parks the workers with wake_on::stop_exits: a SIGTERM ends an
// idle worker in the handler (the opt-in of docs/design.md, "Leaving at once
// while parked"); without it they return through their code as by default.
//
// --heartbeat-timeout turns the watchdog on (the idle-cost benchmark): the
// workers then wake by themselves to beat, and the master to check.
//
// --log sends the master's log lines to stderr, --log-fd to that descriptor
// (the respawn benchmark gives a pipe the driver reads, to time the master's
// "worker I (pid P) is back, generation G" line too); by default they are
// dropped (options::log_fd = -1), so the measurement is the mechanism, not
// the log.

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <supervise.hpp>

namespace {

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "idle_pool: %s\nusage: idle_pool --workers N [--ready-fd FD] [--log | --log-fd FD]"
                 "\n                 [--strategy shutdown_all|one_for_one] [--heartbeat-timeout MS]"
                 "\n                 [--max-restarts N] [--stop-exits]\n",
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

void write_byte(int fd, char byte) {
    ssize_t n;
    do {
        n = ::write(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
}

template <class Strategy>
int run(const supervise::options& opts, int ready_fd, supervise::wake_on wake) {
    auto pool = supervise::make_pool<supervise::default_master_signals,
                                     supervise::default_worker_signals, Strategy>(
        [ready_fd, wake](supervise::worker_context& ctx) {
            if (ready_fd >= 0) {
                // A replacement says it runs; the first workers leave the
                // readiness pipe to the master.
                if (ctx.generation() > 0) write_byte(ready_fd, 'B');
                ::close(ready_fd);
            }
            while (ctx.wait_readable(-1, std::chrono::milliseconds(-1), wake) !=
                   supervise::wait_status::stop_requested) {
            }
        },
        opts);
    pool.on_ready([ready_fd] {
        if (ready_fd >= 0) write_byte(ready_fd, 'R');
    });
    return pool.run().exit_status;
}

}  // namespace

int main(int argc, char** argv) {
    int workers = 0;
    int ready_fd = -1;
    int log_fd = -1;
    std::string strategy = "shutdown_all";
    int heartbeat_ms = 0;
    int max_restarts = 5;
    supervise::wake_on wake = supervise::wake_on::any_stop;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--workers" && i + 1 < argc) {
            workers = parse_int(argv[++i], "--workers");
        } else if (arg == "--ready-fd" && i + 1 < argc) {
            ready_fd = parse_int(argv[++i], "--ready-fd");
        } else if (arg == "--log") {
            log_fd = STDERR_FILENO;
        } else if (arg == "--log-fd" && i + 1 < argc) {
            log_fd = parse_int(argv[++i], "--log-fd");
        } else if (arg == "--heartbeat-timeout" && i + 1 < argc) {
            heartbeat_ms = parse_int(argv[++i], "--heartbeat-timeout");
        } else if (arg == "--max-restarts" && i + 1 < argc) {
            max_restarts = parse_int(argv[++i], "--max-restarts");
        } else if (arg == "--stop-exits") {
            wake = supervise::wake_on::stop_exits;
        } else if (arg == "--strategy" && i + 1 < argc) {
            strategy = argv[++i];
        } else {
            usage(("unknown argument " + arg).c_str());
        }
    }
    if (workers < 1) usage("--workers must be at least 1");
    if (strategy != "shutdown_all" && strategy != "one_for_one") {
        usage("--strategy is shutdown_all or one_for_one");
    }

    supervise::options opts;
    opts.workers = workers;
    opts.name = "idle_pool";
    opts.log_fd = log_fd;
    opts.stats_fd = -1;
    opts.heartbeat_timeout = std::chrono::milliseconds(heartbeat_ms);
    // Only one_for_one reads these. A slot's first restart is immediate
    // whatever restart_delay is (the back-off starts with the second failure
    // in a row, and every respawn trial starts a fresh pool); both are set
    // here so the benchmark does not depend on the header's defaults.
    opts.restart_delay = std::chrono::milliseconds(100);
    opts.max_restarts = max_restarts;

    try {
        if (strategy == "one_for_one") return run<supervise::one_for_one>(opts, ready_fd, wake);
        return run<supervise::shutdown_all>(opts, ready_fd, wake);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle_pool: %s\n", e.what());
        return 2;
    }
}
