// The two event-loop examples (//examples/asio, //examples/libuv) from
// outside: the real binaries, real sockets on 127.0.0.1, real signals. Each
// test runs once per server (TEST_CASE_TEMPLATE).
//
// Every server runs in a process group of its own (a harness::child) and is
// SIGKILLed and reaped when its test ends, whatever happened; its workers
// come back to this binary (a child subreaper) to be reaped. Every wait is
// bounded: by poll(2) on a pipe or a socket, or by a pidfd.

#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon_client.hpp"

using namespace harness;
using namespace daemon_client;

namespace {

struct asio_server {
    static program_path binary() { return {runfile("examples/asio/asio", "ASIO_SERVER")}; }
};
struct libuv_server {
    static program_path binary() { return {runfile("examples/libuv/libuv", "LIBUV_SERVER")}; }
};

template <class Server>
std::unique_ptr<daemon_process> start_server(std::vector<std::string> args) {
    return std::make_unique<daemon_process>(Server::binary(), with_local(std::move(args)));
}

const std::string get = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// How a read of a connection to its end went.
enum class ending { closed, reset, timed_out };

// A client connection that keeps alive: reads one whole answer at a time
// (its head, then Content-Length bytes of body), and can tell a clean close
// (read returns 0) from a reset or a timeout.
class client {
  public:
    explicit client(int port) : fd_(connect_local(port)) {
        REQUIRE_MESSAGE(fd_ >= 0, "connect: " << std::strerror(errno));
    }
    ~client() { ::close(fd_); }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void send(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            REQUIRE_MESSAGE(n > 0, "send: " << std::strerror(errno));
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    // The next answer; status 0 if none came whole.
    http_response next() {
        const std::int64_t deadline = now_ms() + patience.count();
        for (;;) {
            const std::size_t end = buffered_.find("\r\n\r\n");
            if (end != std::string::npos) {
                const http_response head = parse_response(buffered_.substr(0, end + 4));
                const std::size_t at = head.head.find("\r\nContent-Length: ");
                if (head.status == 0 || at == std::string::npos) return {};
                const auto length =
                    static_cast<std::size_t>(std::atol(head.head.c_str() + at + 18));
                if (buffered_.size() >= end + 4 + length) {
                    http_response answer = parse_response(buffered_.substr(0, end + 4 + length));
                    buffered_.erase(0, end + 4 + length);
                    return answer;
                }
            }
            if (receive(deadline) != std::nullopt) return {};
        }
    }

    // Reads until the server ends the connection; what came before that
    // stays in buffered().
    ending read_to_end() {
        const std::int64_t deadline = now_ms() + patience.count();
        for (;;) {
            if (const std::optional<ending> end = receive(deadline)) return *end;
        }
    }

    const std::string& buffered() const { return buffered_; }

  private:
    // One read into the buffer; how the connection ended, if it did.
    std::optional<ending> receive(std::int64_t deadline) {
        struct pollfd p {};
        p.fd = fd_;
        p.events = POLLIN;
        const int rc =
            ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, deadline - now_ms())));
        if (rc < 0 && errno == EINTR) return std::nullopt;
        if (rc <= 0) return ending::timed_out;
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) return std::nullopt;
        if (n < 0) return ending::reset;
        if (n == 0) return ending::closed;
        buffered_.append(buf, static_cast<std::size_t>(n));
        return std::nullopt;
    }

    int fd_ = -1;
    std::string buffered_;
};

// A 200 for GET / on a kept-alive connection, from a worker: which one.
served_by check_served(const http_response& answer) {
    CHECK(answer.status == 200);
    CHECK(answer.has_header("Content-Length: " + std::to_string(answer.body.size())));
    CHECK_FALSE(answer.has_header("Connection: close"));
    return parse_body(answer.body);
}

// GET / on a connection of its own that asks to be closed after the answer;
// which worker answered.
served_by ask(int port) {
    client c(port);
    c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    const http_response answer = c.next();
    CHECK(answer.status == 200);
    CHECK(answer.has_header("Connection: close"));
    CHECK(c.read_to_end() == ending::closed);
    const served_by who = parse_body(answer.body);
    REQUIRE_MESSAGE(who.pid > 0, "GET / was not answered by a worker");
    return who;
}

}  // namespace

TEST_CASE_TEMPLATE("many keep-alive requests on one connection", Server, asio_server,
                   libuv_server) {
    auto server = start_server<Server>({"--workers", "2"});
    const int port = server->start();
    const stats_table table = request_stats(*server, 2);
    INFO("stderr:\n" << server->err.text());

    client c(port);
    pid_t first = 0;
    for (int i = 0; i < 200; ++i) {
        CAPTURE(i);
        c.send(get);
        const served_by who = check_served(c.next());
        REQUIRE(who.pid > 0);
        if (i == 0) first = who.pid;
        CHECK(who.pid == first);  // one connection, one worker
    }
    CHECK(contains(table.workers, first));
    CHECK(exited_with(server->terminate(), 0));
}

TEST_CASE_TEMPLATE("two pipelined requests in one write are answered in order", Server, asio_server,
                   libuv_server) {
    auto server = start_server<Server>({"--workers", "2"});
    const int port = server->start();
    INFO("stderr:\n" << server->err.text());

    client c(port);
    c.send(get + "GET /missing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const http_response first = c.next();
    const http_response second = c.next();
    check_served(first);
    CHECK(second.status == 404);
    CHECK_FALSE(second.has_header("Connection: close"));
    // And the connection is still there for a third.
    c.send(get);
    CHECK(check_served(c.next()).pid == parse_body(first.body).pid);
}

TEST_CASE_TEMPLATE("200 connections open at once are all answered", Server, asio_server,
                   libuv_server) {
    auto server = start_server<Server>({"--workers", "2"});
    const int port = server->start();
    INFO("stderr:\n" << server->err.text());

    // Every connection stays open while the others are served: a server that
    // held one connection at a time per worker would answer two of them.
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<client>(port));
    for (int round = 0; round < 2; ++round) {
        CAPTURE(round);
        for (auto& c : clients) c->send(get);
        int answered = 0;
        for (auto& c : clients) answered += check_served(c->next()).pid > 0 ? 1 : 0;
        CHECK(answered == 200);
    }
    CHECK(exited_with(server->terminate(), 0));
}

TEST_CASE_TEMPLATE("bad requests: 400 or 431 with Connection: close, read whole before the close",
                   Server, asio_server, libuv_server) {
    auto server = start_server<Server>({"--workers", "2"});
    const int port = server->start();
    INFO("stderr:\n" << server->err.text());

    {
        // 9 KiB of header, sent whole before the client reads: the server
        // answers at 8 KiB with part of it still unread.
        client c(port);
        c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(9 * 1024, 'a') +
               "\r\n\r\n");
        CHECK(c.read_to_end() == ending::closed);  // not reset: the answer arrived
        const http_response answer = parse_response(c.buffered());
        CHECK(answer.status == 431);
        CHECK(answer.has_header("Connection: close"));
        CHECK(answer.has_header("Content-Length: " + std::to_string(answer.body.size())));
        CHECK(answer.body == "request head too large\n");
    }
    for (const std::string bad :
         {"GET / HTTP/1.1\n\r\n\r\n", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "GET /\r\n\r\n"}) {
        CAPTURE(bad);
        client c(port);
        c.send(bad);
        CHECK(c.read_to_end() == ending::closed);
        const http_response answer = parse_response(c.buffered());
        CHECK(answer.status == 400);
        CHECK(answer.has_header("Connection: close"));
    }
    // The workers still serve.
    CHECK(ask(port).pid > 0);
}

TEST_CASE_TEMPLATE("--idle-timeout closes a keep-alive connection that sends nothing", Server,
                   asio_server, libuv_server) {
    auto server = start_server<Server>({"--workers", "1", "--idle-timeout", "200"});
    const int port = server->start();
    INFO("stderr:\n" << server->err.text());

    client c(port);
    // Before the request: the server's clock for the wait starts after it.
    const std::int64_t asked = now_ms();
    c.send(get);
    check_served(c.next());
    CHECK(c.read_to_end() == ending::closed);
    CHECK(now_ms() - asked >= 200);
}

TEST_CASE_TEMPLATE("SIGTERM stops the server at once with status 0 and leaves nothing running",
                   Server, asio_server, libuv_server) {
    // Long timeouts: only leaving at once, not a drain, ends within the
    // test's patience while a request is in flight.
    auto server = start_server<Server>(
        {"--workers", "2", "--idle-timeout", "60000", "--shutdown-timeout", "60000"});
    const int port = server->start();
    const stats_table table = request_stats(*server, 2);
    client idle(port);
    idle.send(get);
    check_served(idle.next());
    client busy(port);
    busy.send(get);
    check_served(busy.next());
    busy.send("GET / HTTP/1.1\r\n");

    server->signal(SIGTERM);
    const std::optional<int> status = server->wait_exit();
    server->err.wait_eof();
    INFO("stderr:\n" << server->err.text());
    CHECK(exited_with(status, 0));
    for (const pid_t worker : table.workers) {
        CAPTURE(worker);
        CHECK(server->err.line_with("(pid " + std::to_string(worker) + ") exited with status 0"));
        CHECK(::kill(worker, 0) == -1);
    }
    CHECK(idle.read_to_end() != ending::timed_out);
    CHECK(busy.read_to_end() != ending::timed_out);
    CHECK(busy.buffered().empty());  // the request in flight was dropped, not answered
    CHECK(no_child_left());
}

TEST_CASE_TEMPLATE("--preset nginx: SIGHUP replaces the workers, which keep answering", Server,
                   asio_server, libuv_server) {
    // A long --shutdown-timeout: a worker that did not drain would hold the
    // reload past the test's patience, not be SIGTERMed into passing it.
    auto server = start_server<Server>(
        {"--preset", "nginx", "--workers", "2", "--shutdown-timeout", "60000"});
    const int port = server->start();
    const stats_table before = request_stats(*server, 2, SIGUSR2);
    INFO("stderr:\n" << server->err.text());

    // SIGUSR1 is delivered to the workers' loops.
    server->signal(SIGUSR1);
    CHECK(server->err.wait_for_line("worker 0 reopened logs"));
    CHECK(server->err.wait_for_line("worker 1 reopened logs"));

    // A keep-alive connection to an old worker, idle during the reload.
    client kept(port);
    kept.send(get);
    const pid_t old = check_served(kept.next()).pid;
    CHECK(contains(before.workers, old));

    server->signal(SIGHUP);
    REQUIRE(server->err.wait_for_line("rolling reload done"));
    for (const pid_t pid : before.workers) {
        CAPTURE(pid);
        CHECK(server->err.wait_for_line("(pid " + std::to_string(pid) +
                                        ", retired) exited with status 0"));
    }
    // The old worker closed its idle connection when it drained.
    CHECK(kept.read_to_end() == ending::closed);

    const stats_table after = request_stats(*server, 2, SIGUSR2);
    for (int i = 0; i < 10; ++i) {
        const served_by who = ask(port);
        CHECK(contains(after.workers, who.pid));
        CHECK_FALSE(contains(before.workers, who.pid));
    }
    server->signal(SIGQUIT);
    CHECK(exited_with(server->wait_exit(), 0));
}

TEST_CASE_TEMPLATE("--preset nginx: SIGQUIT closes idle connections, answers the one in flight",
                   Server, asio_server, libuv_server) {
    // One worker, so that both connections are on the worker that drains; a
    // long --shutdown-timeout, so that only the drain can close them in time.
    auto server = start_server<Server>(
        {"--preset", "nginx", "--workers", "1", "--shutdown-timeout", "60000"});
    const int port = server->start();
    const pid_t worker = request_stats(*server, 1, SIGUSR2).workers.at(0);
    INFO("stderr:\n" << server->err.text());

    client idle(port);
    idle.send(get);
    CHECK(check_served(idle.next()).pid == worker);
    // Answered once (so accepted), then half of a second request.
    auto busy = std::make_unique<client>(port);
    busy->send(get);
    check_served(busy->next());
    busy->send("GET / HTTP/1.1\r\n");

    server->signal(SIGQUIT);
    CHECK(idle.read_to_end() == ending::closed);  // the drain began
    CHECK(server->running());                     // held by the request in flight

    busy->send("Host: 127.0.0.1\r\n\r\n");
    const http_response last = busy->next();
    CHECK(last.status == 200);
    CHECK(parse_body(last.body).pid == worker);
    CHECK(last.has_header("Connection: close"));
    CHECK(busy->read_to_end() == ending::closed);
    busy.reset();  // the worker waits for the client's close (lingering), bounded

    CHECK(exited_with(server->wait_exit(), 0));
    server->err.wait_eof();
    CHECK(server->err.line_with("(pid " + std::to_string(worker) + ") exited with status 0"));
    CHECK(no_child_left());
}

TEST_CASE_TEMPLATE("--strategy one_for_one: a SIGKILLed worker is replaced and the new one serves",
                   Server, asio_server, libuv_server) {
    auto server = start_server<Server>({"--workers", "2", "--strategy", "one_for_one"});
    const int port = server->start();
    const stats_table before = request_stats(*server, 2);

    REQUIRE(::kill(before.workers[0], SIGKILL) == 0);
    const served_by back = successor(*server, 0, 1);
    INFO("stderr:\n" << server->err.text());
    REQUIRE(back.pid > 0);
    CHECK(back.pid != before.workers[0]);

    // Whichever worker wakes first takes a new connection: ask until the
    // new one answers (bounded by the count and each request's patience).
    bool new_one_served = false;
    for (int i = 0; i < 500 && !new_one_served; ++i) {
        const served_by who = ask(port);
        CHECK((who.pid == back.pid || who.pid == before.workers[1]));
        new_one_served = who.pid == back.pid;
    }
    CHECK(new_one_served);
    CHECK(exited_with(server->terminate(), 0));
    CHECK(no_child_left());
}

TEST_CASE_TEMPLATE("a bad command line exits 2 with one line, before anything starts", Server,
                   asio_server, libuv_server) {
    const std::vector<std::vector<std::string>> bad = {
        {"--workers", "0"},
        {"--idle-timeout", "soon"},
        {"--idle-timeout", "0"},
        {"--listen", "nocolon"},
        {"--bogus"},
        {"--preset", "apache"},
        {"--help=yes"},
        {"--max-restarts", "3"},
    };
    for (const std::vector<std::string>& args : bad) {
        CAPTURE(args.front());
        daemon_process server(Server::binary(), args);
        CHECK(exited_with(server.wait_exit(), 2));
        server.err.wait_eof();
        INFO("stderr:\n" << server.err.text());
        CHECK(server.err.occurrences("\n") == 1);
        CHECK(server.err.line_with("listening on") == std::nullopt);
        CHECK(no_child_left());
    }
    daemon_process help(Server::binary(), {"--help"});
    CHECK(exited_with(help.wait_exit(), 0));
    help.out.wait_eof();
    CHECK(help.out.text().find("--idle-timeout MS") != std::string::npos);
}
