// http_server.hpp: the example daemon's worker, an epoll loop over many
// HTTP/1.1 connections (docs/event-loops.md, "The example daemon").
//
// One loop per worker process, one thread. It watches the shared listening
// socket, every connection it accepted and the pool's events_fd(), and it
// sleeps in epoll_wait until one of them is ready or the earliest deadline of a
// connection is due: an idle worker with no connection never wakes.
//
// Every connection is in exactly one phase, and every phase has one timeout,
// so each phase's connections sit in a FIFO ordered by deadline (a deadline
// is "now + the phase's timeout" when the connection enters it). Arming,
// cancelling and finding the next deadline are O(1); a turn of the loop costs
// O(1) plus the work it does.
//
//   first_byte  accepted, or asked nothing yet       --first-byte-timeout: 408
//   head        part of a request head received      --header-timeout: 408
//   keep_alive  answered, waiting for the next one   --keepalive-timeout: close
//   sending     an answer the client has not read    send_timeout: close
//   lingering   answered with Connection: close and  linger_timeout: close
//               half-closed; reading until the client closes, so the close is
//               no reset that could destroy the answer in flight

#ifndef SUPERVISE_EXAMPLES_HTTP_SERVER_HPP
#define SUPERVISE_EXAMPLES_HTTP_SERVER_HPP

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <system_error>
#include <vector>

#include "examples/common/http_answers.hpp"
#include "examples/daemon/http_request.hpp"

namespace http_server {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// The daemon's flags for its connections (daemon --help).
struct limits {
    std::size_t max_connections = 1024;  // per worker
    std::chrono::milliseconds first_byte_timeout = 5s;
    std::chrono::milliseconds header_timeout = 10s;
    std::chrono::milliseconds keepalive_timeout = 5s;  // 0: no keep-alive
    bool chaos = false;                                // GET /crash, GET /hang
};

// Fixed, documented in docs/event-loops.md: a client that reads no part of an
// answer for this long is gone, and one that does not close after our FIN
// within linger_timeout is closed on.
inline constexpr std::chrono::milliseconds send_timeout = 10s;
inline constexpr std::chrono::milliseconds linger_timeout = 2s;
// Answers queued on one connection before the loop stops reading its pipelined
// requests (the client must read first): what a client can make a worker hold.
inline constexpr std::size_t max_output = std::size_t{64} * 1024;
// What one read takes; a connection gets one read per turn, so a fast client
// cannot keep a worker from the others.
inline constexpr std::size_t read_size = std::size_t{16} * 1024;
// Connections taken per wake-up of the listener, so a flood of connects
// leaves time for the requests of the connections already open.
inline constexpr int accepts_per_turn = 64;

// One write(2) per line (stderr is shared by every process of the pool).
inline void log(const std::string& message) {
    const std::string line = "daemon: " + message + "\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
        // Nowhere left to report a failing stderr.
    }
}

// "worker <index> pid <pid>": how the worker names itself in replies and logs.
inline std::string worker_name(const supervise::worker_context& ctx) {
    return "worker " + std::to_string(ctx.index()) + " pid " + std::to_string(::getpid());
}

using http::append_response;

// What GET /metrics answers with (OpenMetrics 1.0, section "Overall
// structure"): Prometheus asks for it by name in its Accept header.
inline constexpr std::string_view openmetrics_type =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

enum class phase : unsigned char { first_byte, head, keep_alive, sending, lingering };
inline constexpr std::size_t phase_count = 5;

struct connection {
    int fd = -1;
    phase at = phase::first_byte;
    clock::time_point deadline;
    connection* prev = nullptr;  // in the FIFO of its phase
    connection* next = nullptr;
    std::string in;  // received, from `in_done` on not yet answered
    std::size_t in_done = 0;
    std::size_t scanned = 0;  // of in[in_done..], checked by http::scan_head
    std::string out;          // answers, from `out_sent` on not yet sent
    std::size_t out_sent = 0;
    bool close_after_output = false;  // the last answer said Connection: close
    bool peer_done = false;           // the client sent its FIN
    bool queued = false;              // in the FIFO of `at`
    std::uint32_t interest = 0;       // what epoll watches for it
};

// The connections of one phase, oldest deadline first.
class deadline_fifo {
  public:
    void push_back(connection* c) noexcept {
        c->prev = tail_;
        c->next = nullptr;
        (tail_ ? tail_->next : head_) = c;
        tail_ = c;
    }
    void remove(connection* c) noexcept {
        (c->prev ? c->prev->next : head_) = c->next;
        (c->next ? c->next->prev : tail_) = c->prev;
        c->prev = c->next = nullptr;
    }
    connection* front() const noexcept { return head_; }

  private:
    connection* head_ = nullptr;
    connection* tail_ = nullptr;
};

// The worker's loop. run() returns when the worker should return: at once on
// a fast stop, after the connections in hand are answered on a graceful one.
class worker {
  public:
    worker(supervise::worker_context& ctx, int listen_fd, const limits& lim)
        : ctx_(ctx), listen_fd_(listen_fd), limits_(lim) {
        timeouts_ = {lim.first_byte_timeout, lim.header_timeout, lim.keepalive_timeout,
                     send_timeout, linger_timeout};
        loop_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (loop_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        watch(ctx_.events_fd(), &events_tag_, EPOLLIN);
    }
    ~worker() {
        for (phase p : all_phases) {
            while (connection* c = fifo(p).front()) close(c);
        }
        ::close(loop_);
    }
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    void run() {
        std::array<epoll_event, 64> ready{};
        for (;;) {
            update_accepting();
            const int n = ::epoll_wait(loop_, ready.data(), static_cast<int>(ready.size()),
                                       wait_timeout_ms());
            if (n < 0 && errno != EINTR) {
                throw std::system_error(errno, std::generic_category(), "epoll_wait");
            }
            ctx_.heartbeat();
            for (int i = 0; i < n; ++i) {
                void* const tag = ready[static_cast<std::size_t>(i)].data.ptr;
                if (tag == &events_tag_) {
                    if (!take_events()) return;
                } else if (tag == &listener_tag_) {
                    accept_connections();
                } else {
                    on_ready(*static_cast<connection*>(tag),
                             ready[static_cast<std::size_t>(i)].events);
                }
            }
            expire(clock::now());
            // Freed only now: a later event of the same batch may name one.
            closed_.clear();
            if (draining_ && open_ == 0) return;
        }
    }

  private:
    static constexpr std::array<phase, phase_count> all_phases = {
        phase::first_byte, phase::head, phase::keep_alive, phase::sending, phase::lingering};

    deadline_fifo& fifo(phase p) { return fifos_[static_cast<std::size_t>(p)]; }

    void watch(int fd, void* tag, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = tag;
        if (::epoll_ctl(loop_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            throw std::system_error(errno, std::generic_category(), "epoll_ctl");
        }
    }

    // The pool's news: false when the worker must return now.
    bool take_events() {
        const supervise::worker_events ev = ctx_.take_events();
        // --preset nginx maps SIGUSR1 to "reopen the log files"; this server
        // writes no log file of its own, so reopening is one line on stderr.
        if (ev.signalled(SIGUSR1)) log("worker " + std::to_string(ctx_.index()) + " reopened logs");
        if (ev.stop && !ev.graceful) return false;
        if (ev.stop && !draining_) start_drain();
        return !(draining_ && open_ == 0);
    }

    // A graceful stop: no new connections (the kernel hands them to the
    // workers that stay), idle keep-alive ones closed now, the others after
    // their answer, which says Connection: close. A connection accepted but
    // not yet read is a request in flight (its client does not expect a
    // close before an answer), so it gets its --first-byte-timeout.
    void start_drain() {
        draining_ = true;
        update_accepting();
        while (connection* c = fifo(phase::keep_alive).front()) {
            // Its next request may be here already: answered, or it closes.
            read_requests(*c);
            if (c->fd >= 0 && c->at == phase::keep_alive) close(c);
        }
        log(worker_name(ctx_) + ": stopping after the requests in hand (" + std::to_string(open_) +
            " open)");
    }

    // The listener is in the loop while this worker takes connections:
    // EPOLLEXCLUSIVE wakes one waiting worker per connection, not all of them.
    void update_accepting() {
        const bool paused = accept_paused_until_ && clock::now() < *accept_paused_until_;
        if (!paused) accept_paused_until_.reset();
        const bool want = !draining_ && !paused && open_ < limits_.max_connections;
        if (want == accepting_) return;
        if (want) {
            watch(listen_fd_, &listener_tag_, EPOLLIN | EPOLLEXCLUSIVE);
        } else {
            ::epoll_ctl(loop_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        }
        accepting_ = want;
    }

    void accept_connections() {
        if (!accepting_) return;  // drain began earlier in this batch
        for (int taken = 0; taken < accepts_per_turn; ++taken) {
            if (open_ >= limits_.max_connections && !evict_idle()) return;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                add_connection(fd);
                continue;
            }
            switch (errno) {
                case EAGAIN:        // another worker took it, or none is left
                case ECONNABORTED:  // the client gave up while queued
                    return;
                case EINTR:
                    continue;
                case EMFILE:   // out of descriptors or memory: an idle client
                case ENFILE:   // pays for it, or the listener rests for a
                case ENOBUFS:  // moment (it stays readable, and would spin)
                case ENOMEM:
                    if (evict_idle()) continue;
                    log("accept: " + std::string(std::strerror(errno)));
                    accept_paused_until_ = clock::now() + 100ms;
                    return;
                default:  // a bug: the worker fails and the pool decides
                    throw std::system_error(errno, std::generic_category(), "accept4");
            }
        }
    }

    // At the connection limit the connection that asked nothing for longest
    // goes, so that a client holding many idle connections pays, not the
    // next client. False when every connection is in the middle of a request.
    bool evict_idle() {
        connection* oldest = nullptr;
        for (phase p : {phase::keep_alive, phase::first_byte}) {
            connection* c = fifo(p).front();
            if (c && (!oldest ||
                      c->deadline - timeouts_[static_cast<std::size_t>(p)] <
                          oldest->deadline - timeouts_[static_cast<std::size_t>(oldest->at)])) {
                oldest = c;
            }
        }
        if (!oldest) return false;
        close(oldest);
        return true;
    }

    void add_connection(int fd) {
        // Answers are written whole; Nagle's delay would hold the last
        // segment of one until the client acknowledged the one before.
        const int on = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        auto owned = std::make_unique<connection>();
        connection* c = owned.release();
        c->fd = fd;
        ++open_;
        enter(c, phase::first_byte);
        set_interest(c, EPOLLIN);
    }

    void enter(connection* c, phase p) {
        if (c->queued) fifo(c->at).remove(c);
        c->at = p;
        c->deadline = clock::now() + timeouts_[static_cast<std::size_t>(p)];
        fifo(p).push_back(c);
        c->queued = true;
    }

    void set_interest(connection* c, std::uint32_t events) {
        if (c->interest == events) return;
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = c;
        const int op = c->interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (::epoll_ctl(loop_, op, c->fd, &ev) != 0) {
            throw std::system_error(errno, std::generic_category(), "epoll_ctl");
        }
        c->interest = events;
    }

    void close(connection* c) {
        fifo(c->at).remove(c);
        c->queued = false;
        ::close(c->fd);  // also takes it out of the epoll set
        c->fd = -1;
        --open_;
        closed_.emplace_back(c);
    }

    void on_ready(connection& c, std::uint32_t events) {
        if (c.fd < 0) return;  // closed earlier in this batch
        if (c.at == phase::lingering) return linger(c);
        if ((events & EPOLLOUT) == 0) return read_requests(c);
        flush(c);
        // The client took its answers: the pipelined requests that the
        // output bound held back are next.
        if (c.fd >= 0 && c.out.empty() && c.in_done < c.in.size()) answer_buffered(c);
    }

    // One read, then every complete request in it answered in order.
    void read_requests(connection& c) {
        const ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            return close(&c);  // reset by the client
        }
        if (n == 0) {
            // The client will send no more (it may still read: a half-close).
            // What it sent whole is answered, then the connection closes.
            c.peer_done = true;
            answer_buffered(c);
            if (c.fd >= 0 && c.out.empty()) close(&c);
            return;
        }
        if (c.in_done == c.in.size()) {
            c.in.clear();
            c.in_done = 0;
        } else if (c.in_done > 0) {
            c.in.erase(0, c.in_done);  // keep what a pipelined client sent ahead
            c.in_done = 0;
        }
        c.in.append(scratch_.data(), static_cast<std::size_t>(n));
        answer_buffered(c);
    }

    // Answers the complete heads in c.in, in order, and sends; a connection
    // with max_output unsent stops there until the client reads.
    void answer_buffered(connection& c) {
        for (;;) {
            bool bounded = false;
            while (!c.close_after_output) {
                if (c.out.size() - c.out_sent >= max_output) {
                    bounded = true;
                    break;
                }
                const std::string_view pending = std::string_view(c.in).substr(c.in_done);
                if (pending.empty()) break;
                const http::head_scan scan = http::scan_head(pending, c.scanned);
                c.scanned = scan.scanned;
                if (scan.state == http::head_state::incomplete) {
                    if (c.at != phase::head && c.at != phase::sending) enter(&c, phase::head);
                    break;
                }
                if (scan.state == http::head_state::bad_line_end) {
                    // Refused at once, not after a timeout: RFC 9112 2.2
                    // lets a server read a bare LF as a line end, and a
                    // server that does while a proxy in front does not is
                    // how request smuggling starts.
                    refuse(c, 400, "line ends must be CRLF\n");
                    break;
                }
                if (scan.state == http::head_state::too_large) {
                    refuse(c, 431, "request head too large\n");
                    break;
                }
                const std::string_view head = pending.substr(0, scan.length);
                c.in_done += scan.length;
                c.scanned = 0;
                answer(c, head);
                if (c.at != phase::sending) enter(&c, phase::keep_alive);
            }
            flush(c);
            // Sent whole at once: the requests held back are next.
            if (!bounded || c.fd < 0 || !c.out.empty()) return;
        }
    }

    // 400 and 431 say Connection: close: what follows the bad part of the
    // stream cannot be read as a request.
    void refuse(connection& c, int status, std::string_view body) {
        append_response(c.out, status, body, "close");
        c.close_after_output = true;
        c.in_done = c.in.size();
    }

    // One request head: its answer is queued on c.out.
    void answer(connection& c, std::string_view head) {
        // Every request head answered, whatever its status, counts: the
        // pool's page holds the count, so /metrics from any worker has them
        // all (supervise_requests_total, by worker).
        ctx_.request_done();
        const http::parse_result parsed = http::parse_request(head);
        switch (parsed.status) {
            case http::parse_status::ok:
                break;
            case http::parse_status::bad_request_line:
                return refuse(c, 400, "malformed request line\n");
            case http::parse_status::bad_header:
                return refuse(c, 400, "malformed header field\n");
            case http::parse_status::too_many_headers:
                return refuse(c, 431, "too many header fields\n");
        }
        const http::request& req = parsed.req;
        // A body is never read, so what follows one is not the next request.
        const bool close =
            draining_ || req.has_body || !req.keep_alive || limits_.keepalive_timeout.count() == 0;
        const std::string_view connection_field =
            close ? "close" : (req.version == "HTTP/1.0" ? "keep-alive" : "");
        c.close_after_output = close;
        if (close) c.in_done = c.in.size();
        if (req.method != "GET") {
            append_response(c.out, 405, "only GET is supported\n", connection_field,
                            "Allow: GET\r\n");
        } else if (req.path == "/") {
            append_response(c.out, 200, hello_, connection_field);
        } else if (req.path == "/metrics") {
            append_response(c.out, 200, ctx_.pool_statistics().openmetrics(), connection_field, {},
                            openmetrics_type);
        } else if (req.path == "/readyz") {
            const supervise::statistics pool = ctx_.pool_statistics();
            append_response(c.out, pool.ready() ? 200 : 503, readiness(pool), connection_field);
        } else if (req.path == "/livez") {
            const bool live = ctx_.pool_statistics().live();
            append_response(c.out, live ? 200 : 503,
                            live ? "live\n" : "not live: the master is gone\n", connection_field);
        } else if (limits_.chaos && req.path == "/crash") {
            log(worker_name(ctx_) + ": GET /crash: calling abort()");
            std::abort();  // the master sees SIGABRT; --strategy decides what follows
        } else if (limits_.chaos && req.path == "/hang") {
            hang(c);
        } else {
            append_response(c.out, 404, "not found\n", connection_field);
        }
    }

    // GET /readyz's body: "ready", or why not ("not ready: draining, 1 of 2
    // workers ready, 2 needed").
    static std::string readiness(const supervise::statistics& pool) {
        if (pool.ready()) return "ready\n";
        const std::size_t needed = pool.min_ready_workers > 0
                                       ? static_cast<std::size_t>(pool.min_ready_workers)
                                       : pool.workers.size();
        return std::string("not ready: ") + supervise::to_string(pool.phase) + ", " +
               std::to_string(pool.ready_workers()) + " of " + std::to_string(pool.workers.size()) +
               " workers ready, " + std::to_string(needed) + " needed\n";
    }

    // GET /hang with --chaos: a worker stuck in a loop that also lost its
    // SIGTERM handler. Only the master's SIGKILL after --shutdown-timeout (or
    // PR_SET_PDEATHSIG, if the master dies) can end it, or the watchdog's
    // SIGABRT: pause() is no service point, so no heartbeat is sent.
    [[noreturn]] void hang(connection& c) {
        const std::string who = worker_name(ctx_);
        // Ignored before the reply is sent: a client that got the reply
        // knows a SIGTERM can no longer stop this worker.
        std::signal(SIGTERM, SIG_IGN);
        log(who + ": GET /hang: ignoring SIGTERM and no longer serving");
        append_response(c.out, 200, who + " hanging\n", "close");
        ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
        ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
        ::close(c.fd);
        for (;;) ::pause();
    }

    // Sends what is queued. A client that reads slowly gets no more reads
    // (EPOLLOUT only) until it has taken its answers: the output stays bounded.
    void flush(connection& c) {
        const std::size_t before = c.out_sent;
        while (c.out_sent < c.out.size()) {
            // MSG_NOSIGNAL: a client that has gone away gives EPIPE instead of
            // raising SIGPIPE (with --no-fork this is the master, whose seed
            // map stops the server on SIGPIPE).
            const ssize_t n =
                ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
            if (n > 0) {
                c.out_sent += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            return close(&c);
        }
        if (c.out_sent < c.out.size()) {
            if (c.at != phase::sending || c.out_sent != before) enter(&c, phase::sending);
            return set_interest(&c, EPOLLOUT);
        }
        c.out.clear();
        c.out_sent = 0;
        // Draining, a connection with nothing more in hand closes too.
        if (c.close_after_output || (draining_ && c.in_done == c.in.size() && !c.peer_done)) {
            // Our FIN, then the client's: closing with its data unread would
            // send a reset, and a reset can destroy the answer in flight.
            ::shutdown(c.fd, SHUT_WR);
            enter(&c, phase::lingering);
            return set_interest(&c, EPOLLIN);
        }
        if (c.peer_done) return close(&c);
        if (c.at == phase::sending) enter(&c, phase::keep_alive);
        set_interest(&c, EPOLLIN);
    }

    // Reads and drops what the client still sends, until its FIN.
    void linger(connection& c) {
        char sink[4096];
        for (int reads = 0; reads < 4; ++reads) {
            const ssize_t n = ::recv(c.fd, sink, sizeof sink, 0);
            if (n > 0) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            return close(&c);
        }
    }

    void expire(clock::time_point now) {
        for (phase p : all_phases) {
            while (connection* c = fifo(p).front()) {
                if (c->deadline > now) break;
                switch (p) {
                    case phase::first_byte:
                    case phase::head:
                        // Asked to send a request and did not, or not whole.
                        refuse(*c, 408, "request timeout\n");
                        flush(*c);
                        break;
                    case phase::keep_alive:  // RFC 9112 9.5: a client expects this
                    case phase::sending:
                    case phase::lingering:
                        close(c);
                        break;
                }
            }
        }
    }

    // Until the earliest deadline, rounded up so a deadline is never polled
    // for early; -1 (sleep until an event) when no connection is open.
    int wait_timeout_ms() const {
        std::optional<clock::time_point> next = accept_paused_until_;
        for (const deadline_fifo& f : fifos_) {
            if (const connection* c = f.front(); c && (!next || c->deadline < *next)) {
                next = c->deadline;
            }
        }
        if (!next) return -1;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - clock::now());
        return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }

    supervise::worker_context& ctx_;
    const int listen_fd_;
    const limits limits_;
    std::array<std::chrono::milliseconds, phase_count> timeouts_{};
    std::array<deadline_fifo, phase_count> fifos_{};
    std::vector<std::unique_ptr<connection>> closed_;
    std::array<char, read_size> scratch_{};
    const std::string hello_ = worker_name(ctx_) + "\n";  // GET /'s answer
    std::optional<clock::time_point> accept_paused_until_;
    std::size_t open_ = 0;
    int loop_ = -1;
    bool accepting_ = false;
    bool draining_ = false;
    char events_tag_ = 0;  // epoll_event.data.ptr of events_fd()
    char listener_tag_ = 0;
};

// The worker function: serves until the pool says stop.
inline void serve(supervise::worker_context& ctx, int listen_fd, const limits& lim) {
    worker(ctx, listen_fd, lim).run();
}

}  // namespace http_server

#endif  // SUPERVISE_EXAMPLES_HTTP_SERVER_HPP
