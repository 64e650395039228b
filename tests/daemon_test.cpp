// Integration tests of the example daemon (//examples/daemon), from outside:
// the real binary, real sockets on 127.0.0.1, real signals.
//
// Every daemon runs in a process group of its own (a harness::child) and is
// SIGKILLed and reaped when its test ends, whatever happened. Its workers live
// in another group (the pool makes one); they die with the master
// (PR_SET_PDEATHSIG) and, this binary being a child subreaper (test_main.cpp),
// come back here to be reaped, so a test can also prove that nothing was left
// running. Every wait is bounded.

#include <doctest/doctest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon_client.hpp"
#include "openmetrics_client.hpp"

using namespace harness;
using namespace daemon_client;

namespace {

// Once `back` has taken the place of the worker of its slot: the statistics
// table shows it there with one restart, and GET / is still answered, by the
// pool's current workers. Returns that table.
stats_table check_replaced(daemon_process& daemon, int port, int workers, const served_by& back) {
    const stats_table after = request_stats(daemon, workers);
    const auto slot = static_cast<std::size_t>(back.index);
    CHECK(after.workers[slot] == back.pid);
    CHECK(after.restarts[slot] == 1);
    for (int i = 0; i < 4; ++i) {
        CHECK(contains(after.workers, parse_body(http_get(port, "/").body).pid));
    }
    return after;
}

// One scrape of /metrics with curl, read by prometheus_client's parser; the
// exposition must be valid and served as OpenMetrics.
openmetrics_client::exposition scrape_metrics(int port) {
    const openmetrics_client::scraped got = openmetrics_client::curl_get(port, "/metrics");
    INFO("curl: " << describe_status(got.status) << "\n" << got.head << got.body);
    REQUIRE(exited_with(got.status, 0));
    REQUIRE(got.http_status() == 200);
    CHECK(got.head.find("\r\nContent-Type: application/openmetrics-text; version=1.0.0; "
                        "charset=utf-8\r\n") != std::string::npos);
    openmetrics_client::exposition parsed = openmetrics_client::parse_file(got.path);
    REQUIRE_MESSAGE(parsed.valid, parsed.error);
    return parsed;
}

// Every counter of `before` is in `after`, and no smaller.
void check_no_counter_went_back(const std::map<std::string, double>& before,
                                const std::map<std::string, double>& after) {
    for (const auto& entry : before) {
        const std::string& series = entry.first;
        CAPTURE(series);
        const auto now = after.find(series);
        REQUIRE(now != after.end());
        CHECK(now->second >= entry.second);
    }
}

double sum_of(const std::map<std::string, double>& counters, const std::string& name) {
    double sum = 0;
    for (const auto& [series, value] : counters) {
        if (series.rfind(name + "{", 0) == 0) sum += value;
    }
    return sum;
}

}  // namespace

// ---- the tests ----

TEST_CASE("GET / is answered by a worker of the pool, as plain HTTP/1.1") {
    daemon_process daemon(with_local({"--workers", "2"}));
    const int port = daemon.start();
    const stats_table table = request_stats(daemon, 2);
    CHECK(table.master == daemon.pid());

    const http_response response = http_get(port, "/");
    INFO("stderr:\n" << daemon.err.text());
    REQUIRE(response.status == 200);
    CHECK(response.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(response.has_header("Content-Type: text/plain"));
    CHECK(response.has_header("Content-Length: " + std::to_string(response.body.size())));
    CHECK(response.has_header("Connection: close"));
    const served_by who = parse_body(response.body);
    REQUIRE(who.pid > 0);
    REQUIRE(who.index >= 0);
    REQUIRE(who.index < 2);
    CHECK(table.workers[static_cast<std::size_t>(who.index)] == who.pid);
    CHECK(who.pid != daemon.pid());

    // A query string does not change the path.
    CHECK(http_get(port, "/?x=1").status == 200);
}

TEST_CASE("one worker serves many connections at once") {
    daemon_process daemon(with_local({"--workers", "1"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    const served_by worker = answering_worker(port);

    // Half a request head on each of 50 connections: the worker holds them
    // all and still answers another client at once.
    std::vector<std::unique_ptr<connection>> held;
    for (int i = 0; i < 50; ++i) {
        held.push_back(std::make_unique<connection>(port));
        held.back()->send("GET / HTTP/1.1\r\n");
    }
    CHECK(parse_body(http_get(port, "/").body).pid == worker.pid);
    for (auto& c : held) {
        c->send("Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
        CHECK(parse_body(parse_response(c->receive_all()).body).pid == worker.pid);
    }
}

TEST_CASE("keep-alive: one connection carries many requests, pipelined ones answered in order") {
    daemon_process daemon(with_local({"--workers", "2"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());

    connection c(port);
    pid_t worker = 0;
    for (int i = 0; i < 100; ++i) {
        c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        const http_response r = parse_response(c.receive_response());
        REQUIRE(r.status == 200);
        CHECK_FALSE(r.has_header("Connection: close"));
        if (i == 0) worker = parse_body(r.body).pid;
        CHECK(parse_body(r.body).pid == worker);  // the same connection, the same worker
    }
    // Three requests in one write: three answers, in the order asked.
    c.send("GET / HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\nGET /?again HTTP/1.1\r\n\r\n");
    CHECK(parse_response(c.receive_response()).status == 200);
    CHECK(parse_response(c.receive_response()).status == 404);
    CHECK(parse_response(c.receive_response()).status == 200);
    // A thousand in one write: more answers than a client's socket buffer
    // may hold at once; every one comes, in order, none lost.
    std::string many;
    for (int i = 0; i < 1000; ++i)
        many += "GET /" + std::string(i % 2 ? "x" : "") + " HTTP/1.1\r\n\r\n";
    c.send(many);
    for (int i = 0; i < 1000; ++i) {
        CAPTURE(i);
        REQUIRE(parse_response(c.receive_response()).status == (i % 2 ? 404 : 200));
    }
    // Connection: close is the last answer.
    c.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(parse_response(c.receive_response()).has_header("Connection: close"));
    CHECK(c.closed_by_server());

    // HTTP/1.0 keeps the connection only when asked to.
    connection old(port);
    old.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(parse_response(old.receive_response()).has_header("Connection: keep-alive"));
    old.send("GET / HTTP/1.0\r\n\r\n");
    CHECK(parse_response(old.receive_response()).has_header("Connection: close"));
    CHECK(old.closed_by_server());

    // A body is never read, so the connection ends after the answer.
    connection body(port);
    body.send("GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET ");
    CHECK(parse_response(body.receive_response()).has_header("Connection: close"));
    CHECK(body.closed_by_server());
}

TEST_CASE("--keepalive-timeout closes an idle connection; 0 answers with Connection: close") {
    {
        daemon_process daemon(with_local({"--workers", "1", "--keepalive-timeout", "100"}));
        const int port = daemon.start();
        connection c(port);
        c.send("GET / HTTP/1.1\r\n\r\n");
        const http_response r = parse_response(c.receive_response());
        CHECK(r.status == 200);
        CHECK_FALSE(r.has_header("Connection: close"));
        CHECK(c.closed_by_server());  // after 100 ms, no 408: RFC 9112 9.5
    }
    {
        daemon_process daemon(with_local({"--workers", "1", "--keepalive-timeout", "0"}));
        const int port = daemon.start();
        connection c(port);
        c.send("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        CHECK(parse_response(c.receive_response()).has_header("Connection: close"));
        CHECK(c.closed_by_server());
    }
}

TEST_CASE("--first-byte-timeout and --header-timeout are separate clocks") {
    // Nothing sent for 200 ms: 408. Half a head is not timed by that clock.
    {
        daemon_process daemon(with_local(
            {"--workers", "1", "--first-byte-timeout", "200", "--header-timeout", "600000"}));
        const int port = daemon.start();
        connection partial(port);
        partial.send("GET / HTTP/1.1\r\n");
        connection silent(port);
        CHECK(parse_response(silent.receive_all()).status == 408);
        CHECK(partial.try_send("\r\n"));
        CHECK(parse_response(partial.receive_response()).status == 200);
    }
    // Half a head for 200 ms: 408. A silent connection is not timed by it.
    {
        daemon_process daemon(with_local(
            {"--workers", "1", "--first-byte-timeout", "600000", "--header-timeout", "200"}));
        const int port = daemon.start();
        connection silent(port);
        connection partial(port);
        partial.send("GET / HTTP/1.1\r\n");
        CHECK(parse_response(partial.receive_all()).status == 408);
        CHECK(silent.try_send("GET / HTTP/1.1\r\n\r\n"));
        CHECK(parse_response(silent.receive_response()).status == 200);
    }
}

TEST_CASE("a bare LF is refused at once, not after a timeout") {
    daemon_process daemon(with_local(
        {"--workers", "1", "--first-byte-timeout", "600000", "--header-timeout", "600000"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    for (const std::string_view request :
         {"GET / HTTP/1.1\n", "GET / HTTP/1.1\r\nHost: x\n", "GET / HTTP/1.1\r\nHost: x\rY"}) {
        CAPTURE(request);
        connection c(port);
        c.send(request);  // never finished: only the refusal can answer it
        const http_response r = parse_response(c.receive_all());
        CHECK(r.status == 400);
        CHECK(r.has_header("Connection: close"));
    }
}

TEST_CASE("--max-connections: the connection idle longest makes room, the next client is served") {
    daemon_process daemon(with_local({"--workers", "1", "--max-connections", "8"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());

    std::vector<std::unique_ptr<connection>> idle;
    for (int i = 0; i < 20; ++i) idle.push_back(std::make_unique<connection>(port));
    CHECK(http_get(port, "/").status == 200);
    // The first ones went; the last ones are still open (no byte, no close).
    CHECK(idle.front()->closed_by_server());
    struct pollfd p {};
    p.fd = idle.back()->fd();
    p.events = POLLIN;
    CHECK(::poll(&p, 1, 0) == 0);
    CHECK(idle.back()->try_send("GET / HTTP/1.1\r\n\r\n"));
    CHECK(parse_response(idle.back()->receive_response()).status == 200);
}

TEST_CASE("flags are also accepted as --flag=value") {
    daemon_process daemon({"--listen=127.0.0.1:0", "--workers=3", "--shutdown-timeout=1000"});
    daemon.start();
    CHECK(daemon.err.line_with("ready: 3 workers"));
}

TEST_CASE("SIGTERM and SIGINT stop the daemon with status 0 and leave nothing running") {
    for (const int sig : {SIGTERM, SIGINT}) {
        CAPTURE(sig);
        daemon_process daemon(with_local({"--workers", "3"}));
        daemon.start();
        const stats_table table = request_stats(daemon, 3);

        daemon.signal(sig);
        const std::optional<int> status = daemon.wait_exit();
        daemon.err.wait_eof();
        INFO("stderr:\n" << daemon.err.text());
        CHECK(exited_with(status, 0));
        const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        CHECK(daemon.err.line_with(name + " received"));
        for (const pid_t worker : table.workers) {
            CAPTURE(worker);
            CHECK(
                daemon.err.line_with("(pid " + std::to_string(worker) + ") exited with status 0"));
            CHECK(::kill(worker, 0) == -1);
            CHECK(errno == ESRCH);
        }
        // No worker was orphaned: it would have been re-parented to us.
        CHECK(no_child_left());
    }
}

TEST_CASE("SIGUSR1 prints a table with every worker, and the daemon keeps serving") {
    daemon_process daemon(with_local({"--workers", "3"}));
    const int port = daemon.start();
    const stats_table table = request_stats(daemon, 3);
    INFO("stderr:\n" << daemon.err.text());

    CHECK(table.master == daemon.pid());
    std::vector<pid_t> sorted = table.workers;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    for (const pid_t worker : table.workers) {
        CAPTURE(worker);
        CHECK(worker != daemon.pid());
        CHECK(parent_of(worker) == daemon.pid());  // a live child of the master
    }

    const served_by who = parse_body(http_get(port, "/").body);
    CHECK(contains(table.workers, who.pid));
    CHECK(daemon.running());
    // And again: SIGUSR1 does not stop or replace anyone.
    CHECK(request_stats(daemon, 3).workers == table.workers);
}

TEST_CASE("--chaos: GET /crash aborts a worker and the daemon exits non-zero") {
    daemon_process daemon(with_local({"--workers", "2", "--chaos"}));
    const int port = daemon.start();
    CHECK(daemon.err.line_with("WARNING: --chaos"));
    const stats_table table = request_stats(daemon, 2);

    // No reply: the worker dies while handling the request.
    CHECK(http_get(port, "/crash").status == 0);
    const std::optional<int> status = daemon.wait_exit();
    daemon.err.wait_eof();
    INFO("stderr:\n" << daemon.err.text());
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) != 0);

    const std::vector<served_by> crashed =
        worker_lines(daemon.err.text(), " (pid ", ") killed by signal 6 (SIGABRT)");
    REQUIRE(!crashed.empty());
    const int index = crashed.front().index;
    REQUIRE(index >= 0);
    REQUIRE(index < 2);
    CHECK(table.workers[static_cast<std::size_t>(index)] == crashed.front().pid);
    CHECK(no_child_left());
}

TEST_CASE("--chaos: a worker that ignores SIGTERM is SIGKILLed after --shutdown-timeout") {
    daemon_process daemon(with_local({"--workers", "2", "--chaos", "--shutdown-timeout", "300"}));
    const int port = daemon.start();

    INFO("stderr:\n" << daemon.err.text());
    const served_by hung = hang_a_worker(port);
    CHECK(ignores(hung.pid, SIGTERM));

    const std::int64_t sent = now_ms();
    daemon.signal(SIGTERM);
    const std::optional<int> status = daemon.wait_exit();
    const milliseconds took(now_ms() - sent);
    daemon.err.wait_eof();
    INFO("stderr:\n" << daemon.err.text());
    CHECK(exited_with(status, 0));  // still a requested stop
    CHECK(daemon.err.line_with("sending SIGKILL"));
    CHECK(daemon.err.line_with("worker " + std::to_string(hung.index) + " (pid " +
                               std::to_string(hung.pid) + ") killed by signal 9 (SIGKILL)"));
    // The grace period was the one asked for, not the 5 s default.
    CHECK(took >= 300ms);
    CHECK(took < 3s);
    CHECK(no_child_left());
}

TEST_CASE("without --chaos, /crash and /hang are just unknown paths") {
    daemon_process daemon(with_local({"--workers", "1"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    CHECK(daemon.err.line_with("--chaos") == std::nullopt);

    const http_response crash = http_get(port, "/crash");
    CHECK(crash.status == 404);
    CHECK(http_get(port, "/hang").status == 404);
    CHECK(http_get(port, "/nowhere").status == 404);
    CHECK(http_get(port, "/").status == 200);
    CHECK(daemon.running());

    // A stop that is still a requested one: no worker died on the way.
    CHECK(exited_with(daemon.terminate(), 0));
}

TEST_CASE("a bad command line exits 2 with one message, before anything starts") {
    // A port that is taken: our own listening socket.
    const int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(busy >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(busy, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(busy, 1) == 0);
    socklen_t size = sizeof addr;
    REQUIRE(::getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
    const std::string busy_address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

    const std::vector<std::vector<std::string>> bad = {
        with_local({"--bogus"}),
        with_local({"extra"}),
        with_local({"--workers"}),
        with_local({"--workers", "abc"}),
        with_local({"--workers", "2x"}),
        with_local({"--workers", "0"}),
        with_local({"--workers", "-3"}),
        with_local({"--workers", "4097"}),
        with_local({"--workers="}),
        with_local({"--shutdown-timeout", "0"}),
        with_local({"--shutdown-timeout", "soon"}),
        with_local({"--no-fork", "--workers", "2"}),
        with_local({"--workers", "3", "--no-fork"}),
        with_local({"--chaos=yes"}),
        with_local({"--preset"}),
        with_local({"--preset", "apache"}),
        with_local({"--preset="}),
        with_local({"--strategy", "one_for_none"}),
        with_local({"--strategy", "ONE_FOR_ONE"}),
        with_local({"--strategy", "one_for_one", "--max-restarts", "-1"}),
        with_local({"--strategy", "one_for_one", "--max-restarts", "three"}),
        with_local({"--strategy", "one_for_one", "--max-restarts", "1000001"}),
        with_local({"--strategy", "one_for_one", "--restart-period", "0"}),
        with_local({"--strategy", "one_for_one", "--restart-period", "1h"}),
        // Restart limits without a strategy that restarts.
        with_local({"--max-restarts", "3"}),
        with_local({"--restart-period", "1000"}),
        with_local({"--heartbeat-timeout", "-1"}),
        with_local({"--heartbeat-timeout", "3600001"}),
        with_local({"--heartbeat-timeout", "1s"}),
        with_local({"--max-connections", "0"}),
        with_local({"--first-byte-timeout", "0"}),
        with_local({"--header-timeout", "3600001"}),
        with_local({"--keepalive-timeout", "-1"}),
        with_local({"--min-ready-workers", "-1"}),
        with_local({"--min-ready-workers", "4097"}),
        with_local({"--min-ready-workers", "all"}),
        // More than could ever be ready, also against the default of 4.
        with_local({"--workers", "2", "--min-ready-workers", "3"}),
        with_local({"--min-ready-workers", "5"}),
        with_local({"--no-fork", "--min-ready-workers", "2"}),
        with_local({"--user"}),
        with_local({"--user="}),
        with_local({"--user", "no-such-user-here"}),
        // With --no-fork the worker is the master: nothing to restart, watch
        // or drop privileges for.
        with_local({"--no-fork", "--strategy", "one_for_one"}),
        with_local({"--no-fork", "--heartbeat-timeout", "100"}),
        with_local({"--no-fork", "--user", "nobody"}),
        {"--listen", "127.0.0.1"},
        {"--listen", "127.0.0.1:65536"},
        {"--listen", "127.0.0.1:-1"},
        {"--listen", "127.0.0.1:http"},
        {"--listen", ":8080"},
        {"--listen", "[::1:0"},
        {"--listen", "no-such-host.invalid:0"},
        {"--listen", busy_address},
    };
    for (const std::vector<std::string>& args : bad) {
        std::string command_line;
        for (const std::string& arg : args) command_line += " " + arg;
        CAPTURE(command_line);
        daemon_process daemon(args);
        const std::optional<int> status = daemon.wait_exit();
        daemon.err.wait_eof();
        daemon.out.wait_eof();
        CAPTURE(daemon.err.text());
        CHECK(exited_with(status, 2));
        CHECK(daemon.err.text().rfind("daemon: ", 0) == 0);
        CHECK(std::count(daemon.err.text().begin(), daemon.err.text().end(), '\n') == 1);
        CHECK(daemon.err.text().find("--help") != std::string::npos);
        CHECK(daemon.err.text().find("listening on") == std::string::npos);
        CHECK(daemon.err.text().find(": ready") == std::string::npos);
        CHECK(daemon.out.text().empty());
        // Not a single worker was forked (it would be our child by now).
        CHECK(no_child_left());
    }
    ::close(busy);
}

TEST_CASE("--help prints the usage on stdout and exits 0") {
    daemon_process daemon({"--help"});
    const std::optional<int> status = daemon.wait_exit();
    daemon.out.wait_eof();
    daemon.err.wait_eof();
    CHECK(exited_with(status, 0));
    CHECK(daemon.out.text().rfind("Usage: daemon", 0) == 0);
    for (const char* flag : {"--workers",
                             "--listen",
                             "--shutdown-timeout",
                             "--preset",
                             "--strategy",
                             "--max-restarts",
                             "--restart-period",
                             "--heartbeat-timeout",
                             "--user",
                             "--no-fork",
                             "--chaos",
                             "--help",
                             "--max-connections",
                             "--drain-delay",
                             "--first-byte-timeout",
                             "--header-timeout",
                             "--keepalive-timeout",
                             "--min-ready-workers",
                             "GET /metrics",
                             "GET /readyz",
                             "GET /livez",
                             "SIGTTIN",
                             "4 times --workers"}) {
        CAPTURE(flag);
        CHECK(daemon.out.text().find(flag) != std::string::npos);
    }
    CHECK(daemon.err.text().empty());
    CHECK(no_child_left());
}

TEST_CASE("--no-fork serves from the daemon process itself") {
    daemon_process daemon(with_local({"--no-fork"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    CHECK(daemon.err.line_with("ready: 1 worker "));

    const served_by who = parse_body(http_get(port, "/").body);
    CHECK(who.index == 0);
    CHECK(who.pid == daemon.pid());
    CHECK(children() == std::vector<pid_t>{daemon.pid()});

    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

TEST_CASE("bad requests get a 4xx answer and the worker keeps serving") {
    daemon_process daemon(with_local({"--workers", "1"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    const served_by before = answering_worker(port);

    CHECK(http_exchange(port, "garbage\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "GET /\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "GET / HTTP/1.1 extra\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "GET nowhere HTTP/1.1\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "GET / SPDY/3\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "GET / XTTP/1.1\r\n\r\n").status == 400);
    CHECK(http_exchange(port, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status == 405);
    const std::string big_header = "X-Filler: " + std::string(9000, 'a') + "\r\n";
    CHECK(http_exchange(port, "GET / HTTP/1.1\r\n" + big_header + "\r\n").status == 431);
    // A client that leaves mid-request costs nothing (and raises no SIGPIPE).
    { connection(port).send("GET / HT"); }

    // Still the same single worker: none of that killed it.
    const served_by after = parse_body(http_get(port, "/").body);
    CHECK(after.pid == before.pid);
    CHECK(daemon.running());
}

TEST_CASE("a client that sends nothing cannot hold a worker forever") {
    daemon_process daemon(with_local({"--workers", "1"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());

    // The only worker holds the silent connection and answers the second
    // client at once; the silent one gets 408 after --first-byte-timeout.
    connection silent(port);
    const http_response response = http_get(port, "/");
    CHECK(response.status == 200);
    CHECK(parse_response(silent.receive_all()).status == 408);
}

TEST_CASE("when the master is SIGKILLed, every worker dies with it") {
    daemon_process daemon(with_local({"--workers", "3"}));
    daemon.start();
    const stats_table table = request_stats(daemon, 3);
    // A worker that is still starting when its master dies exits with status 1
    // instead (it checks getppid() after prctl): make sure all are past that.
    wait_until_workers_run(daemon, table);

    daemon.signal(SIGKILL);
    CHECK(killed_by(daemon.wait_exit(), SIGKILL));
    // The orphans were re-parented to this subreaper: reap each one.
    for (const pid_t worker : table.workers) {
        CAPTURE(worker);
        CHECK(killed_by(wait_exit(worker), SIGKILL));  // PR_SET_PDEATHSIG
    }
    CHECK(no_child_left());
}

// ---- restarting strategies, the restart intensity, the watchdog ----

TEST_CASE("--strategy one_for_one: a crashed worker is replaced and the daemon keeps serving") {
    daemon_process daemon(with_local({"--workers", "2", "--strategy", "one_for_one", "--chaos"}));
    const int port = daemon.start();
    const stats_table before = request_stats(daemon, 2);
    CHECK(before.restarts == std::vector<unsigned>{0, 0});

    CHECK(http_get(port, "/crash").status == 0);  // the worker died holding it
    const served_by crashed = crashed_worker(daemon);
    INFO("stderr:\n" << daemon.err.text());
    REQUIRE(crashed.index >= 0);
    REQUIRE(crashed.index < 2);
    const auto slot = static_cast<std::size_t>(crashed.index);
    CHECK(crashed.pid == before.workers[slot]);
    CHECK(daemon.err.wait_for_line("(pid " + std::to_string(crashed.pid) +
                                   ") killed by signal 6 (SIGABRT); restarting worker " +
                                   std::to_string(crashed.index)));
    const served_by back = successor(daemon, crashed.index, 1);
    REQUIRE(back.pid > 0);

    CHECK(back.pid != crashed.pid);
    const stats_table after = check_replaced(daemon, port, 2, back);
    CHECK(after.workers[1 - slot] == before.workers[1 - slot]);  // one_for_one: only that one
    CHECK(after.restarts[1 - slot] == 0);

    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

TEST_CASE("--max-restarts: a crash loop stops the daemon once the restart intensity is exceeded") {
    daemon_process daemon(
        with_local({"--workers", "2", "--strategy", "one_for_one", "--max-restarts", "3",
                    "--restart-period", "60000", "--chaos"}));
    const int port = daemon.start();

    // Each /crash kills whichever worker takes it; the first three are
    // restarted (a slot that fails again waits its back-off first, while the
    // connection waits in the backlog)...
    for (int crash = 1; crash <= 3; ++crash) {
        CAPTURE(crash);
        CHECK(http_get(port, "/crash").status == 0);
        REQUIRE_MESSAGE(daemon.err.wait_for("; restarting worker ", crash), daemon.err.text());
        CHECK(daemon.running());
    }
    // ...the fourth within the period is one too many.
    CHECK(http_get(port, "/crash").status == 0);
    const std::optional<int> status = daemon.wait_exit();
    daemon.err.wait_eof();
    INFO("stderr:\n" << daemon.err.text());
    CHECK(exited_with(status, 1));
    CHECK(daemon.err.occurrences("GET /crash: calling abort()") == 4);
    const int restarts = daemon.err.occurrences("; restarting worker ");
    CHECK(restarts == 3);
    CHECK(daemon.err.line_with("more than 3 restarts within 60000 ms, giving up"));
    MESSAGE("crash loop: " << restarts << " restarts before the limit stopped the daemon");
    CHECK(no_child_left());
}

TEST_CASE("--heartbeat-timeout: a hung worker gets SIGABRT and is replaced") {
    daemon_process daemon(with_local(
        {"--workers", "2", "--heartbeat-timeout", "300", "--strategy", "one_for_one", "--chaos"}));
    const int port = daemon.start();

    // /hang blocks in pause(), which beats no heartbeat: only the watchdog
    // can end it (it ignores SIGTERM).
    INFO("stderr:\n" << daemon.err.text());
    const served_by hung = hang_a_worker(port);
    const std::string who =
        "worker " + std::to_string(hung.index) + " (pid " + std::to_string(hung.pid) + ")";
    CHECK(daemon.err.wait_for_line(who + " sent no heartbeat for "));
    CHECK(daemon.err.wait_for_line(who + " killed by signal 6 (SIGABRT)"));
    const served_by back = successor(daemon, hung.index, 1);
    REQUIRE(back.pid > 0);
    CHECK(back.pid != hung.pid);

    check_replaced(daemon, port, 2, back);

    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

// ---- --preset nginx ----

TEST_CASE("--preset nginx: SIGHUP replaces every worker under load without failing a request") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "4"}));
    const int port = daemon.start();
    const stats_table before = request_stats(daemon, 4, SIGUSR2);

    // One client process, 20 s at most.
    load client(port, 1, 20s);
    REQUIRE(client.replies.wait_for(20));

    const std::int64_t reload_sent = now_ms();
    daemon.signal(SIGHUP);
    REQUIRE_MESSAGE(daemon.err.wait_for_line("rolling reload done"), daemon.err.text());
    const std::int64_t reload_done = now_ms();
    // Every predecessor has stopped (gracefully: status 0) and been reaped.
    for (const pid_t old : before.workers) {
        CAPTURE(old);
        CHECK(daemon.err.wait_for_line("(pid " + std::to_string(old) +
                                       ", retired) exited with status 0"));
    }
    const std::int64_t old_gone = now_ms();
    REQUIRE(client.replies.wait_for(20, old_gone));
    client.stop();

    std::vector<pid_t> successors;
    for (int index = 0; index < 4; ++index) successors.push_back(successor(daemon, index, 1).pid);
    INFO("stderr:\n" << daemon.err.text());
    int failures = 0;
    int during_reload = 0;
    int after_old_gone = 0;
    for (const client_replies::reply& r : client.replies.all()) {
        CAPTURE(r.line);
        if (!r.ok) ++failures;
        CHECK(r.ok);
        if (r.started_ms >= reload_sent && r.started_ms <= reload_done) ++during_reload;
        if (r.ok && r.started_ms > old_gone) {
            ++after_old_gone;
            CHECK(contains(successors, r.pid));  // generation 1, never an old pid
        } else if (r.ok) {
            CHECK((contains(before.workers, r.pid) || contains(successors, r.pid)));
        }
    }
    for (const pid_t old : before.workers) CHECK_FALSE(contains(successors, old));
    CHECK(after_old_gone >= 20);
    MESSAGE("rolling reload: " << client.replies.all().size() << " requests, " << during_reload
                               << " started during the reload, " << failures << " failed");

    daemon.signal(SIGQUIT);
    CHECK(exited_with(daemon.wait_exit(), 0));
}

TEST_CASE("--preset nginx: SIGTTIN adds a worker, SIGTTOU removes it, SIGQUIT stops with 0") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "2"}));
    const int port = daemon.start();
    const stats_table before = request_stats(daemon, 2, SIGUSR2);

    daemon.signal(SIGTTIN);
    REQUIRE(daemon.err.wait_for_line("SIGTTIN received; adding worker 2"));
    const stats_table grown = request_stats(daemon, 3, SIGUSR2);
    INFO("stderr:\n" << daemon.err.text());
    CHECK(std::vector<pid_t>(grown.workers.begin(), grown.workers.begin() + 2) == before.workers);
    CHECK_FALSE(contains(before.workers, grown.workers[2]));
    CHECK(parent_of(grown.workers[2]) == daemon.pid());

    daemon.signal(SIGTTOU);
    CHECK(daemon.err.wait_for_line("SIGTTOU received; removing worker 2"));
    CHECK(daemon.err.wait_for_line("(pid " + std::to_string(grown.workers[2]) +
                                   ", retired) exited with status 0"));
    CHECK(request_stats(daemon, 2, SIGUSR2).workers == before.workers);
    CHECK(http_get(port, "/").status == 200);

    daemon.signal(SIGQUIT);
    const std::optional<int> status = daemon.wait_exit();
    daemon.err.wait_eof();
    CHECK(exited_with(status, 0));
    CHECK(daemon.err.line_with("stopping gracefully: SIGQUIT received"));
    for (const pid_t worker : before.workers) {
        CHECK(daemon.err.line_with("(pid " + std::to_string(worker) + ") exited with status 0"));
    }
    CHECK(no_child_left());
}

TEST_CASE("--preset nginx: SIGQUIT lets a worker answer the requests it holds, idle ones close") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "1"}));
    const int port = daemon.start();
    const pid_t worker = request_stats(daemon, 1, SIGUSR2).workers.at(0);

    // An idle keep-alive connection (answered once), and half a request head
    // on another: the worker waits for the rest.
    connection idle(port);
    idle.send("GET / HTTP/1.1\r\n\r\n");
    CHECK(parse_response(idle.receive_response()).status == 200);
    connection held(port);
    held.send("GET / HTTP/1.1\r\n");
    // And one accepted that has sent nothing yet: its request is on the way.
    connection fresh(port);
    REQUIRE(wait_until_accepted({worker}, 3) == worker);
    daemon.signal(SIGQUIT);
    CHECK(daemon.err.wait_for_line("worker 0 pid " + std::to_string(worker) +
                                   ": stopping after the requests in hand (2 open)"));
    INFO("stderr:\n" << daemon.err.text());
    CHECK(daemon.running());
    CHECK(idle.closed_by_server());

    CHECK_MESSAGE(held.try_send("Host: 127.0.0.1\r\n\r\n"),
                  "the worker dropped the connection it held: " << std::strerror(errno));
    const http_response response = parse_response(held.receive_all());
    CHECK(response.status == 200);
    CHECK(response.has_header("Connection: close"));
    CHECK(parse_body(response.body).pid == worker);
    CHECK(fresh.try_send("GET / HTTP/1.1\r\n\r\n"));
    CHECK(parse_response(fresh.receive_all()).has_header("Connection: close"));
    CHECK(exited_with(daemon.wait_exit(), 0));
    daemon.err.wait_eof();
    CHECK(daemon.err.line_with("(pid " + std::to_string(worker) + ") exited with status 0"));
}

TEST_CASE("--preset nginx: SIGUSR1 reaches every worker, also one in the middle of a request") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "2"}));
    const int port = daemon.start();
    const stats_table table = request_stats(daemon, 2, SIGUSR2);
    INFO("stderr:\n" << daemon.err.text());

    daemon.signal(SIGUSR1);
    CHECK(daemon.err.wait_for_line("worker 0 reopened logs"));
    CHECK(daemon.err.wait_for_line("worker 1 reopened logs"));

    // A worker waiting for the rest of a request head takes the signal there
    // and then answers as usual.
    connection held(port);
    held.send("GET / HTTP/1.1\r\n");
    REQUIRE(wait_until_accepted(table.workers) > 0);
    daemon.signal(SIGUSR1);
    CHECK(daemon.err.wait_for("reopened logs", 4));
    held.send("Host: 127.0.0.1\r\n\r\n");
    CHECK(parse_response(held.receive_all()).status == 200);
    CHECK(daemon.err.occurrences("reopened logs") == 4);
    CHECK(request_stats(daemon, 2, SIGUSR2).workers == table.workers);  // nobody restarted
}

TEST_CASE("--preset nginx: SIGWINCH stops the workers, the master stays, SIGHUP brings them back") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "2"}));
    const int port = daemon.start();
    const stats_table before = request_stats(daemon, 2, SIGUSR2);

    daemon.signal(SIGWINCH);
    for (const pid_t worker : before.workers) {
        CHECK(daemon.err.wait_for_line("(pid " + std::to_string(worker) +
                                       ", retired) exited with status 0"));
    }
    INFO("stderr:\n" << daemon.err.text());
    const std::size_t from = daemon.err.text().size();
    daemon.signal(SIGUSR2);
    REQUIRE(daemon.err.wait_until(
        [&] { return parse_table(daemon.err.text(), from).workers.size() == 2; }));
    const stats_table parked = parse_table(daemon.err.text(), from);
    CHECK(parked.workers == std::vector<pid_t>{0, 0});
    CHECK(parked.states == std::vector<std::string>{"parked", "parked"});
    CHECK(daemon.running());

    daemon.signal(SIGHUP);
    REQUIRE(daemon.err.wait_for_line("rolling reload done"));
    const served_by who = parse_body(http_get(port, "/").body);
    CHECK(contains(request_stats(daemon, 2, SIGUSR2).workers, who.pid));
    CHECK_FALSE(contains(before.workers, who.pid));
}

// ---- --user ----

TEST_CASE("--user nobody: the workers serve as nobody, the master stays root") {
    if (::geteuid() != 0) {
        daemon_process daemon(with_local({"--user", "nobody"}));
        CHECK(exited_with(daemon.wait_exit(), 2));
        daemon.err.wait_eof();
        CHECK(daemon.err.line_with("needs a master running as root"));
        return;
    }
    const struct passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    const std::string uid = std::to_string(nobody->pw_uid);
    const std::string gid = std::to_string(nobody->pw_gid);
    daemon_process daemon(with_local({"--workers", "1", "--user", "nobody"}));

    // The test runs inside Bazel's linux-sandbox, a user namespace that denies
    // setgroups(2): there the drop must fail loudly and stop the daemon, never
    // serve as root. Outside it (the binary run by hand, or
    // `bazel test --strategy=TestRunner=standalone`) the drop itself is checked.
    // Not tagged no-sandbox as hygiene_test is: every other daemon test
    // belongs in the sandbox, and the refusal is worth proving too.
    if (setgroups_denied()) {
        const std::optional<int> status = daemon.wait_exit();
        daemon.err.wait_eof();
        INFO("stderr:\n" << daemon.err.text());
        CHECK(exited_with(status, 1));
        CHECK(daemon.err.line_with("cannot drop privileges to 'nobody': setgroups"));
        CHECK_FALSE(daemon.err.line_with(": ready: "));
        CHECK(no_child_left());
        return;
    }
    const int port = daemon.start();
    const served_by who = parse_body(http_get(port, "/").body);
    INFO("stderr:\n" << daemon.err.text());
    REQUIRE(who.pid > 0);
    const auto ids = [](pid_t pid, const std::string& field) {
        std::ifstream status("/proc/" + std::to_string(pid) + "/status");
        for (std::string line; std::getline(status, line);) {
            if (line.rfind(field + ":", 0) == 0) return line;
        }
        return std::string();
    };
    CHECK(ids(who.pid, "Uid") == "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid);
    CHECK(ids(who.pid, "Gid") == "Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid);
    CHECK(ids(daemon.pid(), "Uid") == "Uid:\t0\t0\t0\t0");  // the master stays root

    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

// Debian's systemd-socket-activate binds the socket, waits for the first
// client, then execs the daemon with LISTEN_FDS=1 and LISTEN_PID (its own
// pid, which exec keeps): the daemon serves on that socket with no --listen.
TEST_CASE("under systemd-socket-activate the daemon serves on the inherited socket, no flag") {
    REQUIRE_MESSAGE(::access("/usr/bin/systemd-socket-activate", X_OK) == 0,
                    "needs Debian's systemd package (tools/bazel installs it)");
    // A port that was free a moment ago, for the launcher to bind.
    const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    REQUIRE(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
    const int port = ntohs(addr.sin_port);
    ::close(probe);

    daemon_process daemon(
        program_path{"/usr/bin/systemd-socket-activate"},
        {"--listen=127.0.0.1:" + std::to_string(port), daemon_binary(), "--workers", "2"});
    REQUIRE_MESSAGE(daemon.err.wait_for("Listening on 127.0.0.1:" + std::to_string(port)),
                    daemon.err.text());
    // The first client starts the daemon; its connection waits in the queue.
    const http_response first = http_get(port, "/");
    INFO("stderr:\n" << daemon.err.text());
    CHECK(first.status == 200);
    CHECK(daemon.err.wait_for("socket activation: 1 listeners from systemd"));
    CHECK(daemon.err.wait_for("listening on 127.0.0.1:" + std::to_string(port)));
    for (int i = 0; i < 4; ++i) {
        const served_by who = parse_body(http_get(port, "/").body);
        CHECK(who.pid > 0);
        CHECK(who.pid != daemon.pid());  // a worker; the daemon is the launcher's pid
    }
    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

// ---- health and metrics, served by the workers ----

TEST_CASE(
    "GET /metrics while workers crash and restart: curl scrapes, prometheus_client parses, "
    "no counter goes back") {
    daemon_process daemon(with_local({"--workers", "2", "--strategy", "one_for_one", "--chaos",
                                      "--max-restarts", "100", "--restart-period", "60000"}));
    const int port = daemon.start();
    // Requests keep coming from another process meanwhile, so the counters
    // move between (and during) the scrapes.
    load clients(port, 1, patience);
    REQUIRE(clients.replies.wait_for(1));

    std::map<std::string, double> last = scrape_metrics(port).counters();
    constexpr int rounds = 5;
    for (int round = 1; round <= rounds; ++round) {
        CAPTURE(round);
        CHECK(http_get(port, "/crash").status == 0);  // the worker died holding it
        // While the master reaps and restarts it: the other worker answers.
        const std::map<std::string, double> during = scrape_metrics(port).counters();
        check_no_counter_went_back(last, during);
        REQUIRE(daemon.err.wait_for("is back, generation", round));
        const openmetrics_client::exposition after = scrape_metrics(port);
        const std::map<std::string, double> counters = after.counters();
        INFO("stderr:\n" << daemon.err.text());
        check_no_counter_went_back(during, counters);
        CHECK(sum_of(counters, "supervise_restarts_total") == round);
        // Each scrape is a request too, counted before its exposition is made.
        CHECK(sum_of(counters, "supervise_requests_total") >
              sum_of(during, "supervise_requests_total"));
        CHECK(after.value("supervise_workers", "{\"state\":\"running\"}") == "2");
        bool killed = false;
        for (const openmetrics_client::sample& s : after.samples) {
            if (s.name == "supervise_worker_last_exit_info" &&
                s.labels.find("\"how\":\"killed\",\"signal\":\"SIGABRT\"") != std::string::npos) {
                killed = true;
            }
        }
        CHECK(killed);
        last = counters;
    }
    CHECK(last.count("supervise_signals_received_total{\"signal\":\"SIGCHLD\"}") == 1);

    const openmetrics_client::scraped ready = openmetrics_client::curl_get(port, "/readyz");
    CHECK(ready.http_status() == 200);
    CHECK(ready.body == "ready\n");
    const openmetrics_client::scraped live = openmetrics_client::curl_get(port, "/livez");
    CHECK(live.http_status() == 200);
    CHECK(live.body == "live\n");

    clients.stop();
    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

TEST_CASE("--preset nginx: GET /readyz answers 503 while the pool drains, /livez stays 200") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "1"}));
    const int port = daemon.start();
    const pid_t worker = request_stats(daemon, 1, SIGUSR2).workers.at(0);
    CHECK(openmetrics_client::curl_get(port, "/readyz").http_status() == 200);

    // Three requests in hand, each half sent: the draining worker answers
    // them, and they ask how the pool stands now.
    connection readyz(port);
    readyz.send("GET /readyz HTTP/1.1\r\n");
    connection livez(port);
    livez.send("GET /livez HTTP/1.1\r\n");
    connection metrics(port);
    metrics.send("GET /metrics HTTP/1.1\r\n");
    REQUIRE(wait_until_accepted({worker}, 3) == worker);
    daemon.signal(SIGQUIT);
    REQUIRE(daemon.err.wait_for_line("worker 0 pid " + std::to_string(worker) +
                                     ": stopping after the requests in hand (3 open)"));
    INFO("stderr:\n" << daemon.err.text());

    CHECK(readyz.try_send("Host: 127.0.0.1\r\n\r\n"));
    const http_response not_ready = parse_response(readyz.receive_all());
    CHECK(not_ready.status == 503);
    CHECK(not_ready.body == "not ready: draining, 0 of 1 workers ready, 1 needed\n");
    CHECK(livez.try_send("Host: 127.0.0.1\r\n\r\n"));
    const http_response still_live = parse_response(livez.receive_all());
    CHECK(still_live.status == 200);
    CHECK(still_live.body == "live\n");
    CHECK(metrics.try_send("Host: 127.0.0.1\r\n\r\n"));
    const http_response exposition = parse_response(metrics.receive_all());
    REQUIRE(exposition.status == 200);
    const openmetrics_client::exposition e = openmetrics_client::parse(exposition.body);
    REQUIRE_MESSAGE(e.valid, e.error);
    CHECK(e.value("supervise_pool_phase", "{\"supervise_pool_phase\":\"draining\"}") == "1");
    CHECK(e.value("supervise_ready") == "0");
    CHECK(e.value("supervise_live") == "1");
    CHECK(e.value("supervise_workers", "{\"state\":\"stopping\"}") == "1");

    CHECK(exited_with(daemon.wait_exit(), 0));
    CHECK(no_child_left());
}

TEST_CASE("--min-ready-workers: GET /readyz answers 503 below the minimum, 200 once it is back") {
    daemon_process daemon(
        with_local({"--preset", "nginx", "--workers", "2", "--min-ready-workers", "2"}));
    const int port = daemon.start();
    CHECK(openmetrics_client::curl_get(port, "/readyz").http_status() == 200);

    daemon.signal(SIGTTOU);  // one worker less: 1 of the 2 needed
    REQUIRE(daemon.err.wait_for_line("SIGTTOU received; removing worker 1"));
    REQUIRE(daemon.err.wait_for_line(", retired) exited with status 0"));
    INFO("stderr:\n" << daemon.err.text());
    const openmetrics_client::scraped below = openmetrics_client::curl_get(port, "/readyz");
    CHECK(below.http_status() == 503);
    CHECK(below.body == "not ready: running, 1 of 1 workers ready, 2 needed\n");
    const openmetrics_client::exposition e = scrape_metrics(port);
    CHECK(e.value("supervise_ready") == "0");
    CHECK(e.value("supervise_min_ready_workers") == "2");
    CHECK(e.value("supervise_workers_ready") == "1");

    daemon.signal(SIGTTIN);
    REQUIRE(daemon.err.wait_for_line("SIGTTIN received; adding worker 1"));
    // Ready once the master has read the new worker's start-up record:
    // asked until then, each answer awaited, bounded.
    const std::int64_t deadline = now_ms() + patience.count();
    while (http_get(port, "/readyz").status != 200 && now_ms() < deadline) {
    }
    const openmetrics_client::scraped back = openmetrics_client::curl_get(port, "/readyz");
    CHECK(back.http_status() == 200);
    CHECK(back.body == "ready\n");

    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

// Kubernetes' and a load balancer's order (docs/strategies.md): on SIGQUIT the
// pool is not ready at once, and still serves for --drain-delay.
TEST_CASE("--drain-delay: after SIGQUIT /readyz says 503 at once while GET / is still served") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "2", "--drain-delay",
                                      "600000", "--shutdown-timeout", "2000"}));
    const int port = daemon.start();
    INFO("stderr:\n" << daemon.err.text());
    CHECK(http_get(port, "/readyz").status == 200);
    daemon.signal(SIGQUIT);
    REQUIRE(daemon.err.wait_for("draining for 600000 ms first, still serving"));
    CHECK(http_get(port, "/readyz").status == 503);
    for (int i = 0; i < 5; ++i) CHECK(http_get(port, "/").status == 200);
    CHECK(daemon.running());
    // A fast stop ends the delay: status 0, nothing left.
    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}
