// asio_server: a pre-forked HTTP/1.1 server whose workers each run a
// Boost.Asio event loop over many keep-alive connections.
//
// A supervise::pool binds one listening socket (or takes the one systemd's
// socket activation passed) and forks N workers that all accept on it. Each worker answers GET /
// with "worker <index> pid <pid>", in order, pipelined requests too, and watches the pool's events
// (a stop, a delivered signal) through worker_context::events_fd() in the
// same loop (docs/event-loops.md).
//
//   tools/bazel run //examples/asio -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/ http://127.0.0.1:8080/   # one connection
//   kill -TERM <master pid>   # clean stop, exit status 0

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "examples/common/http_answers.hpp"
#include "examples/common/loop_server.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: asio_server [OPTIONS]
A pre-forked HTTP/1.1 server: N worker processes share one listening socket and
each runs a Boost.Asio loop over many keep-alive connections. GET / answers with
the index and pid of the worker.
)";

constexpr std::string_view program = "asio_server";

void log(const std::string& message) { loop_server::log(program, message); }

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
          hello_("worker " + std::to_string(ctx.index()) + " pid " + std::to_string(::getpid()) +
                 "\n"),
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
    const std::string& hello() const { return hello_; }  // GET /'s answer
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
    std::string hello_;
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
    closing_ = http::answer_requests(in_, out_, owner_.draining(), owner_.hello());
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

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): a worker's exceptions end in the pool
int main(int argc, char** argv) {
    return loop_server::program_main(
        program, usage, argc, argv,
        [](supervise::worker_context& ctx, int listen_fd, std::chrono::milliseconds idle) {
            server(ctx, listen_fd, idle).run();
        });
}
