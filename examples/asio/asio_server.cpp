// asio_server: a pre-forked HTTP/1.1 server whose workers each run a
// Boost.Asio event loop over many keep-alive connections.
//
// The master binds one listening socket; a supervise::pool forks N workers
// that all accept on it. Each worker answers GET / with "worker <index> pid
// <pid>", in order, pipelined requests too, and watches the pool's events
// (a stop, a delivered signal) through worker_context::events_fd() in the
// same loop (docs/event-loops.md).
//
//   tools/bazel run //examples/asio -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/ http://127.0.0.1:8080/   # one connection
//   kill -TERM <master pid>   # clean stop, exit status 0

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "examples/common/pool_choice.hpp"
#include "examples/daemon/http_request.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: asio_server [OPTIONS]
A pre-forked HTTP/1.1 server: N worker processes share one listening socket and
each runs a Boost.Asio loop over many keep-alive connections. GET / answers with
the index and pid of the worker.

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
    const std::string line = "asio_server: " + message + "\n";
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
// HTTP over a byte stream (the same in examples/libuv)
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
constexpr std::chrono::milliseconds linger_time = 2s;

class server;

class connection : public std::enable_shared_from_this<connection> {
  public:
    connection(server& owner, tcp::socket socket);
    void start();
    // A graceful stop: a connection between requests ends now; one in the
    // middle of a request answers it first (with Connection: close). Bytes
    // the kernel holds and the loop has not read yet are a request begun.
    void close_if_idle() {
        error_code ec;
        if (!writing_ && !lingering_ && in_.empty() && socket_.available(ec) == 0) finish();
    }

  private:
    void read();
    void answer();
    void send();
    void written(const error_code& ec, std::size_t n);
    void arm(std::chrono::milliseconds timeout);
    void finish();

    server& owner_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    std::string in_;
    std::string out_;
    std::array<char, 16384> buffer_{};
    bool writing_ = false;
    bool closing_ = false;
    bool lingering_ = false;
    bool finished_ = false;
};

class server {
  public:
    server(supervise::worker_context& ctx, int listen_fd, std::chrono::milliseconds idle_timeout)
        : ctx_(ctx),
          idle_timeout_(idle_timeout),
          name_("worker " + std::to_string(ctx.index()) + " pid " + std::to_string(::getpid())),
          acceptor_(io_, protocol_of(listen_fd), listen_fd),
          events_(io_, ctx.events_fd()) {}
    // The context owns events_fd: asio must not close it.
    ~server() { events_.release(); }
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void run() {
        watch_events();
        accept();
        io_.run();
    }

    bool draining() const { return draining_; }
    std::chrono::milliseconds idle_timeout() const { return idle_timeout_; }
    const std::string& name() const { return name_; }
    asio::io_context& io() { return io_; }

    void forget(connection* c) {
        connections_.erase(c);
        if (draining_ && connections_.empty()) io_.stop();  // the drain is over
    }

  private:
    static tcp protocol_of(int fd) {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
        return addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
    }

    void watch_events() {
        events_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const error_code& ec) {
            if (!ec) take_events();
        });
    }

    void take_events() {
        const supervise::worker_events ev = ctx_.take_events();
        if (ev.signalled(SIGUSR1)) log("worker " + std::to_string(ctx_.index()) + " reopened logs");
        if (ev.stop && !ev.graceful) return io_.stop();  // fast: leave now
        if (ev.stop && !draining_) drain();
        watch_events();  // also while draining: a fast stop may still come
    }

    void drain() {
        draining_ = true;
        error_code ignored;
        acceptor_.close(ignored);  // the kernel hands new connections to the other workers
        backoff_.cancel();
        std::vector<std::shared_ptr<connection>> open;
        for (const auto& entry : connections_) open.push_back(entry.second);
        for (const auto& c : open) c->close_if_idle();
        if (connections_.empty()) io_.stop();
    }

    void accept() {
        acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
            if (!ec) {
                // Also when a drain began after the kernel gave it to this
                // worker: it is answered (with Connection: close), not dropped.
                auto c = std::make_shared<connection>(*this, std::move(socket));
                connections_.emplace(c.get(), c);
                c->start();
            }
            if (draining_ || ec == asio::error::operation_aborted) return;
            if (!ec) return accept();
            // Out of descriptors or memory: the connection stays queued, so
            // accepting again at once would spin.
            log("accept: " + ec.message());
            backoff_.expires_after(100ms);
            backoff_.async_wait([this](const error_code& e) {
                if (!e && !draining_) accept();
            });
        });
    }

    supervise::worker_context& ctx_;
    std::chrono::milliseconds idle_timeout_;
    std::string name_;
    // Single-threaded: the worker runs the loop on its one thread.
    asio::io_context io_{1};
    tcp::acceptor acceptor_;
    asio::posix::stream_descriptor events_;
    asio::steady_timer backoff_{io_};
    std::unordered_map<connection*, std::shared_ptr<connection>> connections_;
    bool draining_ = false;
};

connection::connection(server& owner, tcp::socket socket)
    : owner_(owner), socket_(std::move(socket)), timer_(owner.io()) {}

void connection::start() {
    error_code ignored;
    socket_.non_blocking(true, ignored);  // read_some after a wait must not block
    arm(owner_.idle_timeout());
    read();
}

// One deadline per wait for the client: for the whole of a request head
// (bytes trickling in do not extend it) and for each answer to be taken.
void connection::arm(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->finish();
    });
}

// Waits for readability and then reads, rather than async_read_some: asio's
// reactor would take the bytes from the kernel before a handler runs, and a
// graceful stop taken between the two would see an idle connection.
void connection::read() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
        if (self->finished_) return;
        error_code status = ec;
        const std::size_t n = ec ? 0 : self->socket_.read_some(asio::buffer(self->buffer_), status);
        if (status == asio::error::would_block) return self->read();
        if (status) return self->finish();  // closed, reset, or linger over
        if (self->lingering_) return self->read();
        self->in_.append(self->buffer_.data(), n);
        self->answer();
    });
}

void connection::answer() {
    closing_ = answer_requests(in_, out_, owner_.draining(), owner_.name());
    if (out_.empty()) return read();  // the head is not complete yet
    // No reading while an answer is sent: a client that pipelines without
    // reading is held back by TCP instead of filling this process's memory.
    writing_ = true;
    arm(owner_.idle_timeout());
    send();
}

// async_write_some and a loop of our own rather than asio::async_write, whose
// composed operation calls its handler in a way clang-tidy's call graph reads
// as recursion (misc-no-recursion) through answer().
void connection::send() {
    socket_.async_write_some(
        asio::buffer(out_),
        [self = shared_from_this()](const error_code& ec, std::size_t n) { self->written(ec, n); });
}

void connection::written(const error_code& ec, std::size_t n) {
    if (finished_) return;
    if (ec) return finish();
    out_.erase(0, n);
    if (!out_.empty()) return send();
    writing_ = false;
    if (closing_) {
        lingering_ = true;
        in_.clear();
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        arm(linger_time);
        return read();
    }
    if (owner_.draining() && in_.empty()) return finish();
    arm(owner_.idle_timeout());
    answer();
}

void connection::finish() {
    if (finished_) return;
    finished_ = true;
    error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    owner_.forget(this);
}

// ============================================================================
// The pool
// ============================================================================

int usage_failure(const std::string& message) {
    log(message + "; see 'asio_server --help'");
    return 2;
}

template <class Types>
int run_with(const config& cfg, int listen_fd) {
    const std::string address = local_address(listen_fd);
    auto worker = [listen_fd, idle = cfg.idle_timeout](supervise::worker_context& ctx) {
        server(ctx, listen_fd, idle).run();
    };
    supervise::options opts;
    opts.name = "asio_server";
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
