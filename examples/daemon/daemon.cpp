// daemon: a pre-forked HTTP/1.1 server built on supervise.hpp.
//
// The master binds one listening socket, then a supervise::pool forks N workers
// that all accept on it; the kernel hands each connection to exactly one of
// them. A worker answers one request per connection:
//
//   GET /        200 "worker <index> pid <pid>"
//   GET /crash   (--chaos only) the worker calls abort(); --strategy decides
//                whether the pool shuts down or restarts it
//   GET /hang    (--chaos only) the worker ignores SIGTERM, stops serving and
//                sends no more heartbeats
//
// Try it:
//   bazel run //examples/daemon -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/
//   kill -USR1 <master pid>   # statistics table on stderr
//   kill -TERM <master pid>   # clean stop, exit status 0
//
//   bazel run //examples/daemon -- --preset nginx --strategy one_for_one
//   kill -HUP <master pid>    # new workers replace the old ones, one at a time
//
// The signals, the worker processes and the shutdown belong to the library;
// this file only parses flags, opens the socket and speaks HTTP.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#include "examples/common/pool_choice.hpp"
#include "examples/daemon/http_request.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: daemon [OPTIONS]
A pre-forked HTTP/1.1 server: a master process and N worker processes that share
one listening socket. GET / answers with the index and pid of the worker.

Options (also accepted as --option=value):
  --workers N            worker processes, 1 to 4096 (default 4)
  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080); HOST is an
                         IPv4 address, a host name such as localhost, or [IPv6];
                         PORT 0 picks a free port (the log says which)
  --shutdown-timeout MS  time workers get between SIGTERM and SIGKILL (default 5000)
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
  --heartbeat-timeout MS a worker that shows no sign of life for MS gets SIGABRT,
                         then --strategy decides; 0 to 3600000 (default 0: off)
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

// Time a client gets to send its request head, and the bound on sending the
// reply: a client that connects and says nothing must not hold a worker.
constexpr std::chrono::milliseconds request_timeout = 5s;

// One write(2) per line: the master and every worker share stderr, and a line
// written in pieces could be interleaved with another process's line.
void log(const std::string& message) {
    const std::string line = "daemon: " + message + "\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
        // Nowhere left to report a failing stderr.
    }
}

// ============================================================================
// Command line
// ============================================================================

// A bad flag, value or address: one line on stderr, exit status 2, and
// nothing started. The flags every pool has, the words of --preset and
// --strategy and the parsing of numbers are shared with supervise-exec
// (examples/common/pool_choice.hpp).
using config_error = pool_choice::usage_error;

struct config {
    std::string host = "127.0.0.1";
    int port = 8080;
    pool_choice::pool_flags pool;  // --workers, --preset, --strategy, --user, ...
    std::chrono::milliseconds heartbeat_timeout{0};
    bool no_fork = false;
    bool chaos = false;
    bool help = false;
};

// "127.0.0.1:8080", "localhost:0", "[::1]:8080". The port is split off at the
// last colon; brackets keep the colons of an IPv6 address out of the way.
void parse_listen(std::string_view text, config& cfg) {
    std::string_view host;
    std::string_view port;
    const std::size_t colon = text.rfind(':');
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 != colon) {
            throw config_error("--listen: expected [IPV6]:PORT, got '" + std::string(text) + "'");
        }
        host = text.substr(1, close - 1);
    } else {
        if (colon == std::string_view::npos) {
            throw config_error("--listen: expected HOST:PORT, got '" + std::string(text) + "'");
        }
        host = text.substr(0, colon);
    }
    port = text.substr(colon + 1);
    if (host.empty()) throw config_error("--listen: missing host in '" + std::string(text) + "'");
    cfg.host = std::string(host);
    cfg.port = static_cast<int>(pool_choice::parse_number("--listen: port", port, 0, 65535));
}

config parse_command_line(int argc, char** argv) {
    config cfg;
    pool_choice::arguments args(argc, argv);
    while (args.next()) {
        const std::string_view flag = args.flag();
        if (pool_choice::take_pool_flag(args, cfg.pool)) continue;
        if (flag == "--listen") {
            parse_listen(args.value(), cfg);
        } else if (flag == "--heartbeat-timeout") {
            cfg.heartbeat_timeout = pool_choice::parse_duration(flag, args.value(), 0);
        } else if (flag == "--no-fork") {
            args.no_value();
            cfg.no_fork = true;
        } else if (flag == "--chaos") {
            args.no_value();
            cfg.chaos = true;
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
    return cfg;
}

// ============================================================================
// The listening socket
// ============================================================================

// "127.0.0.1:8080" or "[::1]:8080", read back from the socket so that port 0
// shows the port the kernel picked.
std::string local_address(int fd) {
    sockaddr_storage addr{};
    socklen_t size = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
        ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
}

// Bound and listening in the master, before any worker exists, so every worker
// inherits the same socket and a bad address stops the program before it
// starts. Tries each address the host resolves to until one binds.
int open_listener(const config& cfg) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(cfg.port);
    if (const int rc = ::getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        throw config_error("--listen: cannot resolve '" + cfg.host + "': " + ::gai_strerror(rc));
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);

    int error = 0;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        // Non-blocking because every idle worker wakes up for a new connection
        // and only one gets it: the others must see EAGAIN and go back to
        // waiting, not sleep in accept() where a stop request is noticed late.
        // CLOEXEC so that a program a worker might exec does not inherit it.
        const int fd =
            ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        // A restarted daemon can bind again while old connections of its
        // previous run sit in TIME_WAIT.
        const int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) return fd;
        error = errno;
        ::close(fd);
    }
    throw config_error("cannot listen on " + cfg.host + ":" + port + ": " + std::strerror(error));
}

// ============================================================================
// HTTP: one request per connection
// ============================================================================

const char* reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 431:
            return "Request Header Fields Too Large";
    }
    return "Internal Server Error";
}

// MSG_NOSIGNAL: a client that has gone away gives EPIPE here instead of
// raising SIGPIPE. Forked workers ignore SIGPIPE, but with --no-fork the worker
// runs in the master, whose signal map (the seed's) stops the server on it.
void send_response(int fd, int status, const std::string& body, const char* extra_headers = "") {
    const std::string response =
        "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
        "\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n" + extra_headers + "Connection: close\r\n\r\n" + body;
    const char* data = response.data();
    std::size_t left = response.size();
    while (left > 0) {
        const ssize_t n = ::send(fd, data, left, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // gone, or slower than SO_SNDTIMEO: drop the reply
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

enum class head_status { complete, too_large, timed_out, closed, stop_requested };

// "worker <index> pid <pid>": how the worker names itself in replies and logs.
std::string worker_name(const supervise::worker_context& ctx) {
    return "worker " + std::to_string(ctx.index()) + " pid " + std::to_string(::getpid());
}

// Signals the worker map hands to the worker code (--preset nginx: SIGUSR1,
// nginx's "reopen the log files"). This server writes no log file of its own,
// so reopening is one line on stderr.
void take_delivered_signals(supervise::worker_context& ctx) {
    if (ctx.take_signal(SIGUSR1)) log("worker " + std::to_string(ctx.index()) + " reopened logs");
}

// Waits until the client's socket is readable. A fast stop (SIGTERM) ends the
// wait; a graceful one (--preset nginx: SIGQUIT, SIGHUP's rolling reload,
// SIGTTOU, SIGWINCH) does not: the request this worker has accepted is answered
// first, or it would be lost. wait_readable() returns at once once any stop is
// requested, so after a graceful stop this waits with ppoll(2) itself: every
// signal is blocked while the stop is looked at and unblocked only inside
// ppoll, so a fast stop cannot slip in between the look and the wait. The
// worker says once per request that it is finishing it (`finishing`).
supervise::wait_status wait_for_client(supervise::worker_context& ctx, int fd,
                                       std::chrono::milliseconds timeout, bool& finishing) {
    const supervise::wait_status status = ctx.wait_readable(fd, timeout);
    if (status != supervise::wait_status::stop_requested || !ctx.stop_is_graceful()) {
        return status;
    }
    if (!finishing) log(worker_name(ctx) + ": stopping after the request in hand");
    finishing = true;
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = -1;
    if (ctx.stop_is_graceful()) {
        pollfd client{fd, POLLIN, 0};
        const timespec limit{static_cast<time_t>(timeout / 1s),
                             static_cast<long>((timeout % 1s) / 1ns)};
        rc = ::ppoll(&client, 1, &limit, &old);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc == 0) return supervise::wait_status::timed_out;
    // A signal (rc < 0, EINTR) counts as ready: the caller's recv() finds
    // nothing, and the next call sees whether the stop became a fast one.
    return rc > 0 || ctx.stop_is_graceful() ? supervise::wait_status::ready
                                            : supervise::wait_status::stop_requested;
}

// Reads until the blank line that ends the request head. Waiting goes through
// wait_for_client, so a fast stop interrupts a slow client, and the whole head
// must arrive within request_timeout.
head_status read_request_head(supervise::worker_context& ctx, int fd, std::string& head) {
    const auto deadline = std::chrono::steady_clock::now() + request_timeout;
    bool finishing = false;
    for (;;) {
        if (const std::size_t end = http::head_end(head); end != std::string::npos) {
            if (end > http::max_request_head) return head_status::too_large;
            head.resize(end);  // a body or a pipelined request is not read
            return head_status::complete;
        }
        if (head.size() >= http::max_request_head) return head_status::too_large;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) return head_status::timed_out;
        switch (wait_for_client(ctx, fd, left, finishing)) {
            case supervise::wait_status::stop_requested:
                return head_status::stop_requested;
            case supervise::wait_status::timed_out:
                return head_status::timed_out;
            case supervise::wait_status::signalled:
                take_delivered_signals(ctx);
                continue;
            case supervise::wait_status::ready:
                break;
        }
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) return head_status::closed;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
            return head_status::closed;
        }
        head.append(buf, static_cast<std::size_t>(n));
    }
}

// GET /hang with --chaos: simulates a worker stuck in a loop that also lost
// its SIGTERM handler. Only the master's SIGKILL after --shutdown-timeout (or
// PR_SET_PDEATHSIG, if the master dies) can end it, or the watchdog's SIGABRT:
// pause() is no service point of the worker context, so no heartbeat is sent.
[[noreturn]] void hang(supervise::worker_context& ctx, int fd) {
    const std::string who = worker_name(ctx);
    // SIGTERM is ignored before the reply is sent: a client that got the
    // reply knows a SIGTERM can no longer stop this worker.
    std::signal(SIGTERM, SIG_IGN);
    log(who + ": GET /hang: ignoring SIGTERM and no longer serving");
    send_response(fd, 200, who + " hanging\n");
    ::close(fd);
    for (;;) ::pause();
}

void serve_connection(supervise::worker_context& ctx, int fd, bool chaos) {
    // The reply is sent with blocking send(); this bounds it for a client
    // that stops reading.
    const timeval send_limit{static_cast<time_t>(request_timeout / 1s), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);

    std::string head;
    switch (read_request_head(ctx, fd, head)) {
        case head_status::complete:
            break;
        case head_status::too_large:
            return send_response(fd, 431, "request head too large\n");
        case head_status::timed_out:
            return send_response(fd, 408, "request timeout\n");
        case head_status::closed:
        case head_status::stop_requested:
            return;
    }

    const http::parse_result parsed = http::parse_request(head);
    switch (parsed.status) {
        case http::parse_status::ok:
            break;
        case http::parse_status::bad_request_line:
            return send_response(fd, 400, "malformed request line\n");
        case http::parse_status::bad_header:
            return send_response(fd, 400, "malformed header field\n");
        case http::parse_status::too_many_headers:
            return send_response(fd, 431, "too many header fields\n");
    }
    if (parsed.req.method != "GET") {
        return send_response(fd, 405, "only GET is supported\n", "Allow: GET\r\n");
    }

    const std::string_view path = parsed.req.path;
    if (path == "/") {
        return send_response(fd, 200, worker_name(ctx) + "\n");
    }
    if (chaos && path == "/crash") {
        log(worker_name(ctx) + ": GET /crash: calling abort()");
        std::abort();  // the master sees SIGABRT; --strategy decides what follows
    }
    if (chaos && path == "/hang") hang(ctx, fd);
    send_response(fd, 404, "not found\n");
}

// The worker: wait for a connection, take it, answer it, repeat until the
// master asks to stop. A stop is looked at between connections only, so the
// connection in hand is answered after a graceful stop (see wait_for_client).
void serve(supervise::worker_context& ctx, int listen_fd, bool chaos) {
    for (;;) {
        const supervise::wait_status status = ctx.wait_readable(listen_fd);
        if (status == supervise::wait_status::stop_requested) return;
        if (status == supervise::wait_status::signalled) {
            take_delivered_signals(ctx);
            continue;
        }
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            serve_connection(ctx, fd, chaos);
            ::close(fd);
            continue;
        }
        switch (errno) {
            case EAGAIN:        // another worker took the connection
            case EINTR:         // a signal: wait_readable looks at it
            case ECONNABORTED:  // the client gave up while queued
                break;
            case EMFILE:   // out of descriptors or memory: back off rather than
            case ENFILE:   // spin, since the connection stays queued and
            case ENOBUFS:  // wait_readable returns at once
            case ENOMEM:
                log("accept: " + std::string(std::strerror(errno)));
                ctx.sleep_for(100ms);
                break;
            default:  // a bug: the worker fails and the pool stops
                throw std::system_error(errno, std::generic_category(), "accept");
        }
    }
}

// Exit status 2 and one line on stderr, like other command-line tools.
int usage_failure(const std::string& message) {
    log(message + "; see 'daemon --help'");
    return 2;
}

// ============================================================================
// The pool
// ============================================================================

supervise::options pool_options(const config& cfg) {
    supervise::options opts;
    opts.name = "daemon";  // the library's lines read "daemon[pid]: ..."
    pool_choice::apply(cfg.pool, opts);
    opts.no_fork = cfg.no_fork;
    opts.heartbeat_timeout = cfg.heartbeat_timeout;
    return opts;
}

// Runs the server on a pool with the signal maps and the strategy of `Types`
// (a pool_choice::pool_types); returns the exit status.
template <class Types>
int run_with(const config& cfg, int listen_fd) {
    const std::string address = local_address(listen_fd);
    // The worker is a lambda, so the pool's type is spelled through it. The
    // constructor checks the options (RLIMIT_NPROC, the user, ...) and starts
    // nothing.
    auto worker = [listen_fd, chaos = cfg.chaos](supervise::worker_context& ctx) {
        serve(ctx, listen_fd, chaos);
    };
    std::optional<typename Types::template pool<decltype(worker)>> pool;
    try {
        pool.emplace(worker, pool_options(cfg));
    } catch (const std::invalid_argument& e) {
        return usage_failure(e.what());
    }

    if (cfg.chaos) {
        log("WARNING: --chaos is on: GET /crash aborts a worker and GET /hang wedges one. "
            "Never run this in production.");
    }
    log("listening on " + address);
    pool->on_ready([&] {
        const int n = pool->settings().workers;
        log("ready: " + std::to_string(n) + (n == 1 ? " worker" : " workers") + " serving on " +
            address);
    });
    // Runs in the master once every worker has exited, however the pool stopped.
    pool->on_destroy("close listening socket", [listen_fd] { ::close(listen_fd); });

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
    int listen_fd = -1;
    try {
        cfg = parse_command_line(argc, argv);
        if (cfg.help) {
            std::fputs(usage, stdout);
            return 0;
        }
        // Bound before the pool exists, by the master (root with --user), so
        // the workers inherit it whatever user they run as.
        listen_fd = open_listener(cfg);
    } catch (const config_error& e) {
        return usage_failure(e.what());
    }
    // The signal maps and the strategy are template arguments of the pool,
    // fixed at compile time: each --preset and --strategy pair is its own
    // instantiation of run_with (2 x 4), picked here from the flags.
    return pool_choice::dispatch(
        cfg.pool, [&](auto types) { return run_with<decltype(types)>(cfg, listen_fd); });
}
#endif  // SUPERVISE_EXAMPLE_NO_MAIN
