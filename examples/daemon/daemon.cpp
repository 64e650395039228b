// daemon: a pre-forked HTTP/1.1 server built on supervise.hpp.
//
// The master binds one listening socket, then a supervise::pool forks N workers
// that all accept on it; the kernel hands each connection to exactly one of
// them. Each worker runs an epoll loop over many keep-alive connections
// (examples/daemon/http_server.hpp) and answers:
//
//   GET /        200 "worker <index> pid <pid>"
//   GET /metrics the whole pool in the OpenMetrics text format, from the
//                memory the master shares with its workers (docs/metrics.md)
//   GET /readyz  200 "ready", or 503 while the pool starts, drains, stops or
//                has fewer ready workers than --min-ready-workers
//   GET /livez   200 "live" while the master runs
//   GET /crash   (--chaos only) the worker calls abort(); --strategy decides
//                whether the pool shuts down or restarts it
//   GET /hang    (--chaos only) the worker ignores SIGTERM, stops serving and
//                sends no more heartbeats
//
// Try it:
//   bazel run //examples/daemon -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/
//   curl http://127.0.0.1:8080/metrics
//   kill -USR1 <master pid>   # statistics table on stderr
//   kill -TERM <master pid>   # clean stop, exit status 0
//
//   bazel run //examples/daemon -- --preset nginx --strategy one_for_one
//   kill -HUP <master pid>    # new workers replace the old ones, one at a time
//
// The signals, the worker processes and the shutdown belong to the library;
// this file parses flags, opens the socket and starts the pool, and
// http_server.hpp speaks HTTP.

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <system_error>

#include "examples/common/listen_flag.hpp"
#include "examples/common/pool_choice.hpp"
#include "examples/daemon/http_server.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: daemon [OPTIONS]
A pre-forked HTTP/1.1 server: a master process and N worker processes that share
one listening socket, each serving many keep-alive connections. GET / answers
with the index and pid of the worker; GET /metrics with the whole pool in the
OpenMetrics text format, GET /readyz and GET /livez with its readiness and
liveness (200, or 503).

Options (also accepted as --option=value):
  --workers N            worker processes, 1 to 4096 (default 4)
  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080); HOST is an
                         IPv4 address, a host name such as localhost, or [IPv6];
                         PORT 0 picks a free port (the log says which). Started
                         by systemd's socket activation (LISTEN_FDS), the daemon
                         serves on the socket systemd passed and needs no flag
  --shutdown-timeout MS  time workers get between SIGTERM and SIGKILL (default 5000)
  --drain-delay MS       a graceful stop first serves on for MS while the pool
                         reports not ready (STOPPING=1, /readyz), then stops
                         the workers gracefully; 0 to 3600000 (default 0)
  --max-connections N    open connections per worker, 1 to 1000000 (default
                         1024); at the limit the connection idle longest is
                         closed for a new one
  --first-byte-timeout MS  a new connection that sends nothing for MS gets 408
                         and is closed; 1 to 3600000 (default 5000)
  --header-timeout MS    a request head not complete MS after its first byte
                         gets 408; 1 to 3600000 (default 10000)
  --keepalive-timeout MS an idle keep-alive connection is closed after MS;
                         0 to 3600000, 0 answers every request with
                         Connection: close (default 5000)
  --preset seed|nginx    which signals do what (default seed; see below)
  --strategy NAME        what a worker's death does (default shutdown_all):
                           shutdown_all  stop the whole server, exit status 1
                           one_for_one   restart that worker
                           one_for_all   restart every worker
                           rest_for_one  restart it and every worker after it
  --max-restarts N       a restarting strategy gives up (exit status 1) after more
                         than N restarts within --restart-period, 0 to 1000000
                         (default 5)
  --restart-period MS    1 to 3600000 (default 10000)
  --restart-delay MS     a worker that keeps failing is restarted at once, then
                         after MS, 2*MS, 4*MS...; 0 to 3600000 (default 100)
  --restart-delay-max MS the cap of that back-off, 0 to 3600000 (default 5000)
  --min-uptime MS        a worker that was ready and lived MS is restarted at
                         once, whatever came before; 0 to 3600000 (default 1000)
  --heartbeat-timeout MS a worker that shows no sign of life for MS gets SIGABRT,
                         then --strategy decides; 0 to 3600000 (default 0: off)
  --min-ready-workers N  GET /readyz answers 503 while fewer workers are ready;
                         0 means every worker, at most --workers (default 1)
  --user NAME            workers run as this user (name or uid); needs root. The
                         socket is bound first, so ports below 1024 work
  --no-fork              serve with one worker inside the master process
                         (debugging; not with --user, --heartbeat-timeout or a
                         restarting strategy)
  --chaos                enable GET /crash (the worker aborts) and GET /hang (the
                         worker ignores SIGTERM, stops serving and sends no more
                         heartbeats); tests only
  --help                 print this help and exit

Signals to the master with --preset seed: SIGTERM or SIGINT stop the server
(exit status 0), SIGUSR1 prints a statistics table on stderr.

With --preset nginx: SIGTERM or SIGINT stop the server at once, SIGQUIT
gracefully (each worker answers the request it holds first), SIGHUP replaces
the workers one at a time (a new one starts before an old one stops), SIGUSR1
makes every worker reopen its logs, SIGTTIN adds a worker and SIGTTOU removes
one (between 1 and 4 times --workers, at most 4096), SIGWINCH stops every
worker while the master stays (SIGHUP brings them back), SIGUSR2 prints the
statistics table.
)";

using http_server::log;

// ============================================================================
// Command line
// ============================================================================

// A bad flag, value or address: one line on stderr, exit status 2, and
// nothing started. The flags every pool has, the words of --preset and
// --strategy and the parsing of numbers are shared with supervise-exec
// (examples/common/pool_choice.hpp).
using config_error = pool_choice::usage_error;

struct config {
    listen_flag::address listen;   // 127.0.0.1:8080
    bool listen_given = false;     // --listen on the command line
    pool_choice::pool_flags pool;  // --workers, --preset, --strategy, --user, ...
    std::chrono::milliseconds heartbeat_timeout{0};
    int min_ready_workers = 1;  // at most --workers
    http_server::limits connections;  // --max-connections, the timeouts, --chaos
    bool no_fork = false;
    bool help = false;
};

config parse_command_line(int argc, char** argv) {
    config cfg;
    pool_choice::arguments args(argc, argv);
    while (args.next()) {
        const std::string_view flag = args.flag();
        if (pool_choice::take_pool_flag(args, cfg.pool)) continue;
        if (flag == "--listen") {
            cfg.listen = listen_flag::parse(args.value());
            cfg.listen_given = true;
        } else if (flag == "--heartbeat-timeout") {
            cfg.heartbeat_timeout = pool_choice::parse_duration(flag, args.value(), 0);
        } else if (flag == "--min-ready-workers") {
            cfg.min_ready_workers = static_cast<int>(
                pool_choice::parse_number(flag, args.value(), 0, SUPERVISE_CONFIG_MAX_WORKERS));
        } else if (flag == "--no-fork") {
            args.no_value();
            cfg.no_fork = true;
        } else if (flag == "--max-connections") {
            cfg.connections.max_connections =
                static_cast<std::size_t>(pool_choice::parse_number(flag, args.value(), 1, 1000000));
        } else if (flag == "--first-byte-timeout") {
            cfg.connections.first_byte_timeout = pool_choice::parse_duration(flag, args.value(), 1);
        } else if (flag == "--header-timeout") {
            cfg.connections.header_timeout = pool_choice::parse_duration(flag, args.value(), 1);
        } else if (flag == "--keepalive-timeout") {
            cfg.connections.keepalive_timeout = pool_choice::parse_duration(flag, args.value(), 0);
        } else if (flag == "--chaos") {
            args.no_value();
            cfg.connections.chaos = true;
        } else if (flag == "--help") {
            args.no_value();
            cfg.help = true;
        } else {
            args.unknown();
        }
    }
    pool_choice::check_pool_flags(cfg.pool);
    if (cfg.no_fork) {
        // The one worker is the master itself: nothing could restart it,
        // watch it or drop its privileges.
        if (cfg.pool.workers && *cfg.pool.workers != 1) {
            throw config_error(
                "--no-fork runs exactly one worker; it cannot be combined with --workers " +
                std::to_string(*cfg.pool.workers));
        }
        if (cfg.pool.restarting() || cfg.heartbeat_timeout.count() > 0 || !cfg.pool.user.empty()) {
            throw config_error(
                "--no-fork runs the worker in the master: it cannot be combined with a "
                "restarting --strategy, --heartbeat-timeout or --user");
        }
        cfg.pool.workers = 1;
    }
    // More ready workers than the pool has could never be reached: /readyz
    // would answer 503 for good.
    const int workers = cfg.pool.workers.value_or(SUPERVISE_CONFIG_DEFAULT_WORKERS);
    if (cfg.min_ready_workers > workers) {
        throw config_error("--min-ready-workers " + std::to_string(cfg.min_ready_workers) +
                           " is more than the " + std::to_string(workers) +
                           " workers: the pool could never be ready");
    }
    return cfg;
}

// ============================================================================
// The listening socket
// ============================================================================

// Every connection is a descriptor: a worker needs --max-connections of them
// and a few of its own (stdio, the listener, its epoll set and the pool's
// pipe). The soft limit is raised as far as that needs, as nginx does with
// worker_rlimit_nofile; a hard limit too low for it is a bad command line, not
// an accept(2) that fails later under load.
void reserve_descriptors(std::size_t max_connections) {
    constexpr rlim_t own = 64;
    const rlim_t needed = static_cast<rlim_t>(max_connections) + own;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
        throw config_error("--max-connections " + std::to_string(max_connections) + " needs " +
                           std::to_string(needed) + " descriptors per worker, and RLIMIT_NOFILE " +
                           "allows " + std::to_string(limit.rlim_max) +
                           " (raise it: ulimit -n, or LimitNOFILE= in a systemd unit)");
    }
    limit.rlim_cur = needed;
    ::setrlimit(RLIMIT_NOFILE, &limit);
}

// Exit status 2 and one line on stderr, like other command-line tools.
int usage_failure(const std::string& message) {
    log(message + "; see 'daemon --help'");
    return 2;
}

// ============================================================================
// The pool
// ============================================================================

supervise::options pool_options(const config& cfg, const std::string& address) {
    supervise::options opts;
    // Under socket activation without --listen, systemd's sockets are the
    // daemon's (the first one serves); with --listen, a socket systemd passed
    // under the name "http" (FileDescriptorName=http), or an error.
    if (!address.empty()) opts.listeners = {{"http", address}};
    opts.name = "daemon";  // the library's lines read "daemon[pid]: ..."
    pool_choice::apply(cfg.pool, opts);
    opts.no_fork = cfg.no_fork;
    opts.heartbeat_timeout = cfg.heartbeat_timeout;
    opts.min_ready_workers = cfg.min_ready_workers;
    return opts;
}

// Runs the server on a pool with the signal maps and the strategy of `Types`
// (a pool_choice::pool_types); returns the exit status.
template <class Types>
int run_with(const config& cfg, const std::string& address) {
    // The worker is a lambda, so the pool's type is spelled through it. The
    // constructor checks the options (RLIMIT_NPROC, the user, ...), binds the
    // socket or takes systemd's, and starts nothing else.
    auto worker = [limits = cfg.connections](supervise::worker_context& ctx) {
        http_server::serve(ctx, ctx.listener(0), limits);
    };
    std::optional<typename Types::template pool<decltype(worker)>> pool;
    try {
        pool.emplace(worker, pool_options(cfg, address));
    } catch (const std::exception& e) {
        // A bad option, an address in use, systemd's sockets unusable: as
        // before any pool existed, exit status 2 and nothing started.
        return usage_failure(e.what());
    }
    if (pool->listeners().empty()) {
        return usage_failure("socket activation passed no socket (LISTEN_FDS=0)");
    }
    const std::string serving = pool->listeners()[0].address;

    if (cfg.connections.chaos) {
        log("WARNING: --chaos is on: GET /crash aborts a worker and GET /hang wedges one. "
            "Never run this in production.");
    }
    log("listening on " + serving);
    pool->on_ready([&] {
        const int n = pool->settings().workers;
        log("ready: " + std::to_string(n) + (n == 1 ? " worker" : " workers") + " serving on " +
            serving);
    });

    try {
        // 0 after a requested stop, 1 after a worker failure (or too many).
        return pool->run().exit_status;
    } catch (const std::exception& e) {
        log(e.what());
        return 1;
    }
}

}  // namespace

// tests/fuzz includes this file with SUPERVISE_EXAMPLE_NO_MAIN defined, to
// reach parse_command_line without a second copy of it.
#ifndef SUPERVISE_EXAMPLE_NO_MAIN
// NOLINTNEXTLINE(bugprone-exception-escape): serve() throws in a worker, where the pool catches
int main(int argc, char** argv) {
    config cfg;
    std::string address;  // empty: systemd's sockets, taken by the pool
    try {
        cfg = parse_command_line(argc, argv);
        if (cfg.help) {
            std::fputs(usage, stdout);
            return 0;
        }
        reserve_descriptors(cfg.connections.max_connections);
        // The pool binds it in the master (root with --user) before any
        // worker exists, so the workers inherit it whatever user they run as.
        if (cfg.listen_given || !listen_flag::socket_activated()) {
            address = listen_flag::numeric(cfg.listen);
        }
    } catch (const config_error& e) {
        return usage_failure(e.what());
    }
    // The signal maps and the strategy are template arguments of the pool,
    // fixed at compile time: each --preset and --strategy pair is its own
    // instantiation of run_with (2 x 4), picked here from the flags.
    return pool_choice::dispatch(
        cfg.pool, [&](auto types) { return run_with<decltype(types)>(cfg, address); });
}
#endif  // SUPERVISE_EXAMPLE_NO_MAIN
