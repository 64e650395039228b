// libuv_server: a pre-forked HTTP/1.1 server whose workers each run a libuv
// event loop over many keep-alive connections.
//
// A supervise::pool binds one listening socket (or takes the one systemd's
// socket activation passed) and forks N workers that all accept on it. Each worker answers GET /
// with "worker <index> pid <pid>", in order, pipelined requests too, and watches the pool's events
// (a stop, a delivered signal) through worker_context::events_fd() in the
// same loop (docs/event-loops.md).
//
//   tools/bazel run //examples/libuv -- --listen 127.0.0.1:8080
//   curl http://127.0.0.1:8080/ http://127.0.0.1:8080/   # one connection
//   kill -TERM <master pid>   # clean stop, exit status 0

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "examples/common/http_answers.hpp"
#include "examples/common/loop_server.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char usage[] = R"(Usage: libuv_server [OPTIONS]
A pre-forked HTTP/1.1 server: N worker processes share one listening socket and
each runs a libuv loop over many keep-alive connections. GET / answers with the
index and pid of the worker.
)";

constexpr std::string_view program = "libuv_server";

void log(const std::string& message) { loop_server::log(program, message); }

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
          hello("worker " + std::to_string(context.index()) + " pid " + std::to_string(::getpid()) +
                "\n") {}

    supervise::worker_context& ctx;
    std::uint64_t idle_ms;
    std::string hello;  // GET /'s answer
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
    c->closing = http::answer_requests(c->in, c->out, c->owner->draining, c->owner->hello);
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

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): a worker's exceptions end in the pool
int main(int argc, char** argv) {
    return loop_server::program_main(program, usage, argc, argv, serve);
}
