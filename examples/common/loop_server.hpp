// loop_server.hpp: what examples/asio and examples/libuv share around their
// loops: the command line, the pool with its listener, the log lines.
//
// Each program supplies its usage text and its worker, a function
// serve(ctx, listen_fd, idle_timeout) that runs one loop until the pool says
// stop (docs/event-loops.md). Everything else is here, once.

#ifndef SUPERVISE_EXAMPLES_LOOP_SERVER_HPP
#define SUPERVISE_EXAMPLES_LOOP_SERVER_HPP

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <supervise.hpp>

#include "examples/common/listen_flag.hpp"
#include "examples/common/pool_choice.hpp"

namespace loop_server {

using namespace std::chrono_literals;

// The flags of both programs, after each one's own first lines (--help).
inline constexpr const char options_help[] = R"(
Options (also accepted as --option=value):
  --workers N            worker processes, 1 to 4096 (default 4)
  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080); PORT 0
                         picks a free port (the log says which); started by
                         systemd's socket activation, its socket, no flag
  --idle-timeout MS      a connection that sends no complete request for MS, or
                         does not read its answer, is closed (default 5000)
  --shutdown-timeout MS  time workers get to finish after a stop (default 5000)
  --drain-delay MS       a graceful stop first serves on for MS while the pool
                         reports not ready (STOPPING=1, /readyz), then stops
                         the workers gracefully; 0 to 3600000 (default 0)
  --preset seed|nginx    which signals do what (default seed): with nginx,
                         SIGQUIT stops gracefully, SIGHUP replaces the workers
                         one at a time, SIGUSR1 makes workers reopen their logs
  --strategy NAME        shutdown_all, one_for_one, one_for_all, rest_for_one
  --max-restarts N, --restart-period MS, --restart-delay MS,
  --restart-delay-max MS, --min-uptime MS, --user NAME   as for examples/daemon
  --help                 print this help and exit
)";

struct config {
    listen_flag::address listen;
    bool listen_given = false;
    std::chrono::milliseconds idle_timeout = 5s;
    pool_choice::pool_flags pool;  // --workers, --preset, --strategy, --user, ...
    bool help = false;
};

inline config parse_command_line(int argc, char** argv) {
    config cfg;
    pool_choice::arguments args(argc, argv);
    while (args.next()) {
        const std::string_view flag = args.flag();
        if (pool_choice::take_pool_flag(args, cfg.pool)) continue;
        if (flag == "--listen") {
            cfg.listen = listen_flag::parse(args.value());
            cfg.listen_given = true;
        } else if (flag == "--idle-timeout") {
            cfg.idle_timeout = pool_choice::parse_duration(flag, args.value(), 1);
        } else if (flag == "--help") {
            args.no_value();
            cfg.help = true;
        } else {
            args.unknown();
        }
    }
    pool_choice::check_pool_flags(cfg.pool);
    return cfg;
}

// "<program>: <message>", one write(2) per line: the master and every worker
// share stderr.
inline void log(std::string_view program, const std::string& message) {
    const std::string line = std::string(program) + ": " + message + "\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
        // Nowhere left to report a failing stderr.
    }
}

inline int usage_failure(std::string_view program, const std::string& message) {
    log(program, message + "; see '" + std::string(program) + " --help'");
    return 2;
}

// The pool of `Types` (a pool_choice::pool_types), serving on the listener
// the pool binds from --listen, or on systemd's socket; the exit status.
template <class Types, class Serve>
int run_with(std::string_view program, const config& cfg, const std::string& address, Serve serve) {
    auto worker = [serve, idle = cfg.idle_timeout](supervise::worker_context& ctx) {
        serve(ctx, ctx.listener(0), idle);
    };
    supervise::options opts;
    opts.name = std::string(program);
    pool_choice::apply(cfg.pool, opts);
    if (!address.empty()) opts.listeners = {{"http", address}};
    std::optional<typename Types::template pool<decltype(worker)>> pool;
    try {
        pool.emplace(worker, opts);
    } catch (const std::exception& e) {  // a bad option, an address in use
        return usage_failure(program, e.what());
    }
    if (pool->listeners().empty()) {
        return usage_failure(program, "socket activation passed no socket (LISTEN_FDS=0)");
    }
    const std::string serving = pool->listeners()[0].address;
    log(program, "listening on " + serving);
    pool->on_ready([&] {
        const int n = pool->settings().workers;
        log(program, "ready: " + std::to_string(n) + (n == 1 ? " worker" : " workers") +
                         " serving on " + serving);
    });
    try {
        return pool->run().exit_status;
    } catch (const std::exception& e) {
        log(program, e.what());
        return 1;
    }
}

// A program's whole main(): flags, then one of the 2 x 4 pools.
template <class Serve>
int program_main(std::string_view program, const char* usage, int argc, char** argv, Serve serve) {
    config cfg;
    std::string address;  // empty: systemd's sockets, taken by the pool
    try {
        cfg = parse_command_line(argc, argv);
        if (cfg.help) {
            std::fputs(usage, stdout);
            std::fputs(options_help, stdout);
            return 0;
        }
        if (cfg.listen_given || !listen_flag::socket_activated()) {
            address = listen_flag::numeric(cfg.listen);
        }
    } catch (const pool_choice::usage_error& e) {
        return usage_failure(program, e.what());
    }
    return pool_choice::dispatch(cfg.pool, [&](auto types) {
        return run_with<decltype(types)>(program, cfg, address, serve);
    });
}

}  // namespace loop_server

#endif  // SUPERVISE_EXAMPLES_LOOP_SERVER_HPP
