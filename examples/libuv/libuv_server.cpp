// libuv_server: a pre-forked HTTP/1.1 server whose workers each run a libuv
// event loop over many keep-alive connections.
//
// The master binds one listening socket; a supervise::pool forks N workers
// that all accept on it. Each worker answers GET / with "worker <index> pid
// <pid>", in order, pipelined requests too, and watches the pool's events
// (a stop, a delivered signal) through worker_context::events_fd() in the
// same loop (docs/event-loops.md).
//
//   tools/bazel run //examples/libuv -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/ http://127.0.0.1:8080/   # one connection
//   kill -TERM <master pid>   # clean stop, exit status 0

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "examples/common/pool_choice.hpp"
#include "examples/daemon/http_request.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: libuv_server [OPTIONS]
A pre-forked HTTP/1.1 server: N worker processes share one listening socket and
each runs a libuv loop over many keep-alive connections. GET / answers with the
index and pid of the worker.

Options (also accepted as --option=value):
  --workers N            worker processes, 1 to 4096 (default 4)
  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080); PORT 0
                         picks a free port (the log says which)
  --idle-timeout MS      a connection that sends no complete request for MS, or
                         does not read its answer, is closed (default 5000)
  --shutdown-timeout MS  time workers get to finish after a stop (default 5000)
  --preset seed|nginx    which signals do what (default seed): with nginx,
                         SIGQUIT stops gracefully, SIGHUP replaces the workers
                         one at a time, SIGUSR1 makes workers reopen their logs
  --strategy NAME        shutdown_all, one_for_one, one_for_all, rest_for_one
  --max-restarts N, --restart-period MS, --user NAME   as for examples/daemon
  --help                 print this help and exit
)";

// One write(2) per line: the master and every worker share stderr.
void log(const std::string& message) {
    const std::string line = "libuv_server: " + message + "\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
        // Nowhere left to report a failing stderr.
    }
}

// ============================================================================
// Command line and listening socket (as examples/daemon)
// ============================================================================

using config_error = pool_choice::usage_error;

struct config {
    std::string host = "127.0.0.1";
    int port = 8080;
    std::chrono::milliseconds idle_timeout = 5s;
    pool_choice::pool_flags pool;
    bool help = false;
};

// "127.0.0.1:8080", "localhost:0", "[::1]:8080": the port is after the last colon.
void parse_listen(std::string_view text, config& cfg) {
    const std::size_t colon = text.rfind(':');
    std::string_view host = text.substr(0, colon == std::string_view::npos ? 0 : colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (colon == std::string_view::npos || host.empty()) {
        throw config_error("--listen: expected HOST:PORT, got '" + std::string(text) + "'");
    }
    cfg.host = std::string(host);
    cfg.port = static_cast<int>(
        pool_choice::parse_number("--listen: port", text.substr(colon + 1), 0, 65535));
}

config parse_command_line(int argc, char** argv) {
    config cfg;
    pool_choice::arguments args(argc, argv);
    while (args.next()) {
        const std::string_view flag = args.flag();
        if (pool_choice::take_pool_flag(args, cfg.pool)) continue;
        if (flag == "--listen") {
            parse_listen(args.value(), cfg);
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

// The address as the socket has it, so that port 0 shows the port picked.
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

// Bound in the master before any worker exists, so every worker inherits it
// and a bad address stops the program before it starts. Non-blocking: every
// worker's loop wakes for a new connection and all but one find EAGAIN.
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
        const int fd =
            ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        const int on = 1;  // bind again while the last run's connections sit in TIME_WAIT
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) return fd;
        error = errno;
        ::close(fd);
    }
    throw config_error("cannot listen on " + cfg.host + ":" + port + ": " + std::strerror(error));
}

// ============================================================================
// HTTP over a byte stream (the same in examples/asio)
// ============================================================================

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// Whether the connection must end after this request's answer: the client
// says so (Connection: close, or HTTP/1.0, whose keep-alive this server does
// not speak), or the request has a body. Bodies are not read, so the bytes
// after the head would be taken for the next request: closing is the one
// safe answer (the parser's "never a guess").
bool ends_connection(std::string_view head, std::string_view version) {
    bool close = version == "HTTP/1.0";
    std::size_t begin = head.find("\r\n") + 2;  // after the request line
    for (std::size_t end; (end = head.find("\r\n", begin)) != begin && end != head.npos;
         begin = end + 2) {
        const std::string_view line = head.substr(begin, end - begin);
        const std::size_t colon = line.find(':');
        const std::string name = lowercase(line.substr(0, colon));
        const std::string value = lowercase(trim(line.substr(colon + 1)));
        if (name == "transfer-encoding" || (name == "content-length" && value != "0")) close = true;
        if (name != "connection") continue;
        for (std::size_t at = 0; at <= value.size();) {
            const std::size_t comma = std::min(value.find(',', at), value.size());
            if (trim(std::string_view(value).substr(at, comma - at)) == "close") close = true;
            at = comma + 1;
        }
    }
    return close;
}

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
        case 431:
            return "Request Header Fields Too Large";
    }
    return "Internal Server Error";
}

void respond(std::string& out, int status, std::string_view body, bool close,
             const char* extra_headers = "") {
    out += "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
           "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra_headers + (close ? "Connection: close\r\n" : "") + "\r\n";
    out += body;
}

// Answers the complete requests at the front of `in`, in order, into `out`,
// and removes them. True when the last answer said Connection: close: the
// connection ends once `out` is sent, and nothing after it is read. A
// draining worker answers one more request, with Connection: close.
bool answer_requests(std::string& in, std::string& out, bool draining, const std::string& name) {
    for (;;) {
        const std::size_t end = http::head_end(in);
        if (end == std::string::npos && in.size() < http::max_request_head) return false;
        if (end > http::max_request_head) {  // npos (no blank line in 8 KiB) too
            respond(out, 431, "request head too large\n", true);
            return true;
        }
        const std::string_view head(in.data(), end);
        const http::parse_result parsed = http::parse_request(head);
        if (parsed.status == http::parse_status::bad_request_line) {
            respond(out, 400, "malformed request line\n", true);
            return true;
        }
        if (parsed.status == http::parse_status::bad_header) {
            respond(out, 400, "malformed header field\n", true);
            return true;
        }
        if (parsed.status == http::parse_status::too_many_headers) {
            respond(out, 431, "too many header fields\n", true);
            return true;
        }
        const bool close = draining || ends_connection(head, parsed.req.version);
        if (parsed.req.method != "GET") {
            respond(out, 405, "only GET is supported\n", close, "Allow: GET\r\n");
        } else if (parsed.req.path == "/") {
            respond(out, 200, name + "\n", close);
        } else {
            respond(out, 404, "not found\n", close);
        }
        in.erase(0, end);
        if (close) return true;
    }
}

// ============================================================================
// The worker's loop
// ============================================================================

// After a Connection: close answer the client may still be sending (the rest
// of a 9 KiB head): closing at once would answer that with a reset, which can
// destroy the answer before the client reads it. So the write side is shut
// and what comes in is read and dropped until the client closes, this long
// at most.
constexpr std::uint64_t linger_ms = 2000;

// For set-up outside the loop: a worker that cannot make its loop fails, and
// the pool's strategy decides. Inside callbacks nothing throws (the frames in
// between are libuv's C): a failing call there ends its connection.
void check(int rc, const char* what) {
    if (rc < 0) throw std::system_error(-rc, std::generic_category(), what);
}

struct server;

// One client. libuv hands callbacks the handle: `data` leads back here. The
// object is freed once both of its handles are closed.
struct connection {
    server* owner = nullptr;
    uv_tcp_t tcp{};
    uv_timer_t timer{};
    uv_write_t write_request{};
    uv_shutdown_t shutdown_request{};
    std::string in;
    std::string out;
    int open_handles = 2;
    bool reading = false;
    bool writing = false;
    bool closing = false;
    bool lingering = false;
    bool finished = false;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
};

struct server {
    server(supervise::worker_context& context, std::chrono::milliseconds idle)
        : ctx(context),
          idle_ms(static_cast<std::uint64_t>(idle.count())),
          name("worker " + std::to_string(context.index()) + " pid " + std::to_string(::getpid())) {
    }

    supervise::worker_context& ctx;
    std::uint64_t idle_ms;
    std::string name;
    uv_loop_t loop{};
    uv_tcp_t listener{};
    uv_poll_t events{};
    std::unordered_set<connection*> connections;
    bool draining = false;
    // Every read lands here and is copied out at once: one buffer serves all.
    char buffer[16384] = {};
};

connection* of(uv_handle_t* handle) { return static_cast<connection*>(handle->data); }
template <class Handle>
connection* of(Handle* handle) {
    return of(reinterpret_cast<uv_handle_t*>(handle));
}

void answer(connection* c);

void closed(uv_handle_t* handle) {
    connection* c = of(handle);
    if (--c->open_handles == 0) delete c;
}

void stop_watching_when_drained(server& s) {
    auto* events = reinterpret_cast<uv_handle_t*>(&s.events);
    // With the listener and every connection closed, this was the loop's last
    // handle: uv_run returns and the worker with it.
    if (s.draining && s.connections.empty() && !uv_is_closing(events)) uv_close(events, nullptr);
}

void finish(connection* c) {
    if (c->finished) return;
    c->finished = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), closed);
    c->owner->connections.erase(c);
    stop_watching_when_drained(*c->owner);
}

// One deadline per wait for the client: for the whole of a request head
// (bytes trickling in do not extend it) and for each answer to be taken.
void arm(connection* c, std::uint64_t ms) {
    uv_timer_start(
        &c->timer, [](uv_timer_t* t) { finish(of(t)); }, ms, 0);  // fails only once closed
}

void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* /*buf*/) {
    connection* c = of(stream);
    if (n < 0) return finish(c);  // closed, reset, or linger over
    if (c->lingering || n == 0) return;
    c->in.append(c->owner->buffer, static_cast<std::size_t>(n));
    answer(c);
}

void start_reading(connection* c) {
    if (c->reading) return;
    c->reading = true;
    const auto give_buffer = [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        *buf = uv_buf_init(of(handle)->owner->buffer, sizeof of(handle)->owner->buffer);
    };
    if (uv_read_start(c->stream(), give_buffer, on_read) < 0) finish(c);
}

void written(uv_write_t* request, int status) {
    connection* c = of(request->handle);
    c->writing = false;
    if (c->finished) return;
    if (status < 0) return finish(c);
    c->out.clear();
    if (c->closing) {
        c->lingering = true;
        c->in.clear();
        if (uv_shutdown(&c->shutdown_request, c->stream(), [](uv_shutdown_t*, int) {}) < 0) {
            return finish(c);
        }
        arm(c, linger_ms);
        return start_reading(c);
    }
    if (c->owner->draining && c->in.empty()) return finish(c);
    arm(c, c->owner->idle_ms);
    answer(c);
}

void answer(connection* c) {
    c->closing = answer_requests(c->in, c->out, c->owner->draining, c->owner->name);
    if (c->out.empty()) return start_reading(c);  // the head is not complete yet
    // No reading while an answer is sent: a client that pipelines without
    // reading is held back by TCP instead of filling this process's memory.
    uv_read_stop(c->stream());
    c->reading = false;
    c->writing = true;
    arm(c, c->owner->idle_ms);
    const uv_buf_t buf = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
    if (uv_write(&c->write_request, c->stream(), &buf, 1, written) < 0) {
        c->writing = false;
        finish(c);
    }
}

void on_connection(uv_stream_t* listener, int status) {
    server& s = *static_cast<server*>(listener->data);
    if (status < 0) {
        // libuv keeps a spare descriptor for EMFILE and drops the connection.
        log("accept: " + std::string(uv_strerror(status)));
        return;
    }
    auto* c = new connection;
    c->owner = &s;
    c->tcp.data = c;
    c->timer.data = c;
    // Neither can fail: a TCP handle without an address family makes no socket.
    uv_tcp_init(&s.loop, &c->tcp);
    uv_timer_init(&s.loop, &c->timer);
    s.connections.insert(c);
    if (uv_accept(listener, c->stream()) != 0) return finish(c);
    arm(c, s.idle_ms);
    start_reading(c);
}

// Bytes the kernel holds for `c` that the loop has not read yet.
int unread(connection* c) {
    uv_os_fd_t fd = -1;
    int bytes = 0;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&c->tcp), &fd) != 0 ||
        ::ioctl(fd, FIONREAD, &bytes) != 0) {
        return 0;
    }
    return bytes;
}

// A graceful stop: the listener closes (the kernel hands new connections to
// the other workers); a connection between requests ends now, one in the
// middle of a request answers it first, with Connection: close. Bytes not
// read yet are a request begun.
void drain(server& s) {
    s.draining = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&s.listener), nullptr);
    const std::vector<connection*> open(s.connections.begin(), s.connections.end());
    for (connection* c : open) {
        if (!c->writing && !c->lingering && c->in.empty() && unread(c) == 0) finish(c);
    }
    stop_watching_when_drained(s);
}

void on_events(uv_poll_t* poll, int /*status*/, int /*events*/) {
    server& s = *static_cast<server*>(poll->data);
    const supervise::worker_events ev = s.ctx.take_events();
    if (ev.signalled(SIGUSR1)) log("worker " + std::to_string(s.ctx.index()) + " reopened logs");
    if (ev.stop && !ev.graceful) return uv_stop(&s.loop);  // fast: leave now
    if (ev.stop && !s.draining) drain(s);  // the poll stays: a fast stop may still come
}

void serve(supervise::worker_context& ctx, int listen_fd, std::chrono::milliseconds idle) {
    server s(ctx, idle);
    check(uv_loop_init(&s.loop), "uv_loop_init");
    s.listener.data = &s;
    s.events.data = &s;
    // The listener's handle owns listen_fd from here (this worker's copy);
    // a uv_poll_t never owns its descriptor, and events_fd is the context's.
    check(uv_tcp_init(&s.loop, &s.listener), "uv_tcp_init");
    check(uv_tcp_open(&s.listener, listen_fd), "uv_tcp_open");
    check(uv_listen(reinterpret_cast<uv_stream_t*>(&s.listener), SOMAXCONN, on_connection),
          "uv_listen");
    check(uv_poll_init(&s.loop, &s.events, ctx.events_fd()), "uv_poll_init");
    check(uv_poll_start(&s.events, UV_READABLE, on_events), "uv_poll_start");
    uv_run(&s.loop, UV_RUN_DEFAULT);

    // After a fast stop handles are still open: close them, let libuv run
    // their close callbacks (which free the connections), then the loop.
    const std::vector<connection*> open(s.connections.begin(), s.connections.end());
    for (connection* c : open) finish(c);
    for (auto* handle :
         {reinterpret_cast<uv_handle_t*>(&s.listener), reinterpret_cast<uv_handle_t*>(&s.events)}) {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.loop);
}

// ============================================================================
// The pool
// ============================================================================

int usage_failure(const std::string& message) {
    log(message + "; see 'libuv_server --help'");
    return 2;
}

template <class Types>
int run_with(const config& cfg, int listen_fd) {
    const std::string address = local_address(listen_fd);
    auto worker = [listen_fd, idle = cfg.idle_timeout](supervise::worker_context& ctx) {
        serve(ctx, listen_fd, idle);
    };
    supervise::options opts;
    opts.name = "libuv_server";
    pool_choice::apply(cfg.pool, opts);
    std::optional<typename Types::template pool<decltype(worker)>> pool;
    try {
        pool.emplace(worker, opts);
    } catch (const std::invalid_argument& e) {
        return usage_failure(e.what());
    }
    log("listening on " + address);
    pool->on_ready([&] {
        const int n = pool->settings().workers;
        log("ready: " + std::to_string(n) + (n == 1 ? " worker" : " workers") + " serving on " +
            address);
    });
    pool->on_destroy("close listening socket", [listen_fd] { ::close(listen_fd); });
    try {
        return pool->run().exit_status;
    } catch (const std::exception& e) {
        log(e.what());
        return 1;
    }
}

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): a worker's exceptions end in the pool
int main(int argc, char** argv) {
    config cfg;
    int listen_fd = -1;
    try {
        cfg = parse_command_line(argc, argv);
        if (cfg.help) {
            std::fputs(usage, stdout);
            return 0;
        }
        listen_fd = open_listener(cfg);
    } catch (const config_error& e) {
        return usage_failure(e.what());
    }
    return pool_choice::dispatch(
        cfg.pool, [&](auto types) { return run_with<decltype(types)>(cfg, listen_fd); });
}
