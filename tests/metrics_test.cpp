// statistics::openmetrics(), readiness and liveness, and the pool's page that
// worker_context::pool_statistics() reads (docs/metrics.md).
//
// Every exposition is read by a real parser of the format: prometheus_client
// (Debian's python3-prometheus-client), run by tests/openmetrics_check.py.
// The pools are real processes. Their workers answer questions on a pipe
// (one byte asks, one answer comes back before the next question), so the
// tests look at the pool from inside a worker, the way a worker serving
// /metrics does, and every wait is bounded.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "openmetrics_client.hpp"

using namespace harness;
using namespace openmetrics_client;

namespace {

// ---- statistics by value ----

supervise::worker_statistics worker(int index, supervise::worker_state state, bool ready) {
    supervise::worker_statistics w;
    w.index = index;
    w.pid = state == supervise::worker_state::running || state == supervise::worker_state::stopping
                ? 1000 + index
                : 0;
    w.state = state;
    w.ready = ready;
    return w;
}

// A pool of three: two serving, one restarting after a crash.
supervise::statistics three_workers() {
    supervise::statistics s;
    s.master_pid = 999;
    s.name = "pool";
    s.uptime = 12345ms;
    s.phase = supervise::pool_phase::running;
    s.signals_by_number.assign(65, 0);
    s.signals_by_number[SIGTERM] = 0;
    s.signals_by_number[SIGCHLD] = 4;
    s.signals_by_number[SIGUSR1] = 2;
    s.signals_by_number[SIGRTMIN + 3] = 1;
    s.signals_received = 7;
    s.workers = {worker(0, supervise::worker_state::running, true),
                 worker(1, supervise::worker_state::running, true),
                 worker(2, supervise::worker_state::exited, false)};
    s.workers[0].restarts = 0;
    s.workers[0].requests = 17;
    s.workers[0].uptime = 2500ms;
    s.workers[1].restarts = 2;
    s.workers[1].generation = 2;
    s.workers[1].requests = 3;
    s.workers[1].last_exit.how = supervise::exit_info::kind::exited;
    s.workers[1].last_exit.code = 3;
    s.workers[2].restarts = 1;
    s.workers[2].generation = 1;
    s.workers[2].last_exit.how = supervise::exit_info::kind::killed;
    s.workers[2].last_exit.signal = SIGABRT;
    s.workers[2].last_exit.core_dumped = true;
    return s;
}

// {"worker":"1"}
std::string worker_labels(int index) { return "{\"worker\":\"" + std::to_string(index) + "\"}"; }

exposition parsed(const supervise::statistics& s) {
    const std::string text = s.openmetrics();
    exposition result = parse(text);
    INFO("exposition:\n" << text);
    REQUIRE_MESSAGE(result.valid, result.error);
    return result;
}

// ---- a pool whose workers answer questions ----

// Questions, one byte each, on a pipe every worker reads (the first to read
// the byte answers); answers on the pool's report pipe, one at a time.
constexpr char ask_view = 'v';     // "view INDEX ..." one line: the pool as this worker sees it
constexpr char ask_metrics = 'm';  // "metrics INDEX LENGTH\n" and the exposition
constexpr char ask_count = 'r';    // one request_done(), then "counted INDEX"
constexpr char ask_spin = 'n';     // pool_statistics() 1000 times, then "spun INDEX"

std::string view_line(const supervise::worker_context& ctx) {
    const supervise::statistics s = ctx.pool_statistics();
    std::ostringstream line;
    line << "view " << ctx.index() << " phase=" << supervise::to_string(s.phase)
         << " ready=" << s.ready() << " live=" << s.live() << " stop=" << s.stop_signal
         << " reloading=" << s.reloading << " size=" << s.workers.size()
         << " ready_workers=" << s.ready_workers() << " min=" << s.min_ready_workers
         << " master=" << s.master_pid << " sigterm=" << s.signals_by_number[SIGTERM] << " |";
    for (const supervise::worker_statistics& w : s.workers) {
        line << " " << w.index << ":" << w.pid << ":" << supervise::to_string(w.state) << ":"
             << w.ready << ":" << w.generation << ":" << w.restarts << ":" << w.requests << ":"
             << (w.heartbeat_age.count() >= 0 ? "beat" : "nobeat") << ":"
             << (w.last_exit.how == supervise::exit_info::kind::running ? std::string("-")
                                                                        : w.last_exit.describe());
    }
    return line.str();
}

void answer(supervise::worker_context& ctx, char question, int answer_fd) {
    switch (question) {
        case ask_view:
            say(answer_fd, view_line(ctx));
            break;
        case ask_metrics: {
            const std::string text = ctx.pool_statistics().openmetrics();
            write_all(answer_fd, "metrics " + std::to_string(ctx.index()) + " " +
                                     std::to_string(text.size()) + "\n" + text);
            break;
        }
        case ask_count:
            ctx.request_done();
            say(answer_fd, "counted " + std::to_string(ctx.index()));
            break;
        case ask_spin: {
            std::size_t seen = 0;
            for (int i = 0; i < 1000; ++i) seen += ctx.pool_statistics().workers.size();
            say(answer_fd, "spun " + std::to_string(ctx.index()) + " " + std::to_string(seen));
            break;
        }
        default:
            break;
    }
}

// A worker: says it is up, answers questions until a stop; on a stop it says
// how it saw the pool then ("stopped INDEX view...") and returns 0. A worker
// of slot `failing` exits with status 7 in its first `failures` generations.
auto answering_worker(int ask_fd, int answer_fd, int failing = -1, unsigned failures = 0) {
    return [=](supervise::worker_context& ctx) {
        say_up(answer_fd, ctx);
        if (ctx.index() == failing && ctx.generation() < failures) return 7;
        for (;;) {
            const supervise::wait_status st = ctx.wait_readable(ask_fd);
            if (st == supervise::wait_status::stop_requested) {
                say(answer_fd, "stopped " + view_line(ctx).substr(5));
                return 0;
            }
            char question = 0;
            if (st == supervise::wait_status::ready && ::read(ask_fd, &question, 1) == 1) {
                answer(ctx, question, answer_fd);
            }
        }
    };
}

// The test's end of the question pipe. The read end is non-blocking: every
// idle worker wakes for a byte and only one gets it.
struct questions {
    pipe_pair pipe;
    questions() { ::fcntl(pipe.read_fd, F_SETFL, O_NONBLOCK); }
    void ask(char question) { REQUIRE(::write(pipe.write_fd, &question, 1) == 1); }
};

// The answer to one question, the next after `from` in the report pipe.
std::string next_answer(reader& answers, std::size_t& from, const std::string& kind) {
    std::optional<std::string> line;
    answers.wait_until([&] {
        line = answers.line_with(kind + " ", from);
        return line.has_value();
    });
    REQUIRE_MESSAGE(line, "no '" << kind << "' answer; so far:\n" << answers.text());
    from = answers.text().find(*line, from) + line->size() + 1;
    return *line;
}

std::string view(questions& q, reader& answers, std::size_t& from) {
    q.ask(ask_view);
    return next_answer(answers, from, "view");
}

exposition metrics(questions& q, reader& answers, std::size_t& from) {
    q.ask(ask_metrics);
    const std::string header = next_answer(answers, from, "metrics");
    const std::size_t length = std::stoul(header.substr(header.rfind(' ') + 1));
    answers.wait_until([&] { return answers.text().size() >= from + length; });
    REQUIRE(answers.text().size() >= from + length);
    const std::string text = answers.text().substr(from, length);
    from += length;
    exposition result = parse(text);
    INFO("exposition:\n" << text);
    REQUIRE_MESSAGE(result.valid, result.error);
    return result;
}

// "key=value" out of a view line.
std::string field(const std::string& line, const std::string& key) {
    const std::size_t at = line.find(" " + key + "=");
    if (at == std::string::npos) return "?";
    const std::size_t begin = at + key.size() + 2;
    return line.substr(begin, line.find(' ', begin) - begin);
}

// Worker `index`'s part of a view line: "pid:state:ready:generation:restarts:requests:beat:last
// exit".
std::string slot_of(const std::string& line, int index) {
    const std::string key = " " + std::to_string(index) + ":";
    const std::size_t bar = line.find(" |");
    const std::size_t at = line.find(key, bar);
    if (at == std::string::npos) return "?";
    const std::size_t begin = at + key.size();
    std::size_t end = line.find(" " + std::to_string(index + 1) + ":", begin);
    return line.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

long voluntary_switches(pid_t pid) {
    return std::atol(status_field(pid, "voluntary_ctxt_switches").c_str());
}

}  // namespace

// ---- openmetrics() by value ----

TEST_CASE("openmetrics(): the parser reads every family, its type, unit and samples") {
    const exposition e = parsed(three_workers());
    const std::string text = three_workers().openmetrics();
    CHECK(text.size() > 6);
    CHECK(text.substr(text.size() - 6) == "# EOF\n");

    const std::map<std::string, std::string> types = {
        {"supervise_pool", "info"},
        {"supervise_uptime_seconds", "gauge"},
        {"supervise_pool_phase", "stateset"},
        {"supervise_ready", "gauge"},
        {"supervise_live", "gauge"},
        {"supervise_reloading", "gauge"},
        {"supervise_min_ready_workers", "gauge"},
        {"supervise_workers", "gauge"},
        {"supervise_workers_ready", "gauge"},
        {"supervise_signals_received", "counter"},
        {"supervise_restarts", "counter"},
        {"supervise_requests", "counter"},
        {"supervise_worker_pid", "gauge"},
        {"supervise_worker_ready", "gauge"},
        {"supervise_worker_generation", "gauge"},
        {"supervise_worker_uptime_seconds", "gauge"},
        {"supervise_worker_last_exit", "info"},
    };
    for (const auto& entry : types) {
        const std::string& name = entry.first;
        const std::string& type = entry.second;
        const family* f = e.find_family(name);
        REQUIRE_MESSAGE(f != nullptr, name);
        CHECK_MESSAGE(f->type == type, name);
        CHECK_MESSAGE(f->help.size() > 2, name);  // a JSON string, more than ""
    }
    CHECK(e.families.size() == types.size());  // no heartbeat family: the watchdog is off
    CHECK(e.find_family("supervise_uptime_seconds")->unit == "seconds");
    CHECK(e.find_family("supervise_worker_uptime_seconds")->unit == "seconds");

    CHECK(e.value("supervise_pool_info",
                  "{\"master_pid\":\"999\",\"name\":\"pool\",\"version\":\"" SUPERVISE_VERSION_STR
                  "\"}") == "1");
    CHECK(e.value("supervise_uptime_seconds") == "12.345");
    CHECK(e.value("supervise_pool_phase", "{\"supervise_pool_phase\":\"running\"}") == "1");
    for (const char* other : {"starting", "draining", "stopping"}) {
        CHECK(e.value("supervise_pool_phase",
                      std::string("{\"supervise_pool_phase\":\"") + other + "\"}") == "0");
    }
    CHECK(e.value("supervise_ready") == "1");
    CHECK(e.value("supervise_live") == "1");
    CHECK(e.value("supervise_min_ready_workers") == "1");
    CHECK(e.value("supervise_workers", "{\"state\":\"running\"}") == "2");
    CHECK(e.value("supervise_workers", "{\"state\":\"exited\"}") == "1");
    for (const char* none : {"idle", "stopping", "parked"}) {
        CHECK(e.value("supervise_workers", std::string("{\"state\":\"") + none + "\"}") == "0");
    }
    CHECK(e.value("supervise_workers_ready") == "2");

    // Counters: the parser has them as <family>_total, by label.
    CHECK(e.value("supervise_signals_received_total", "{\"signal\":\"SIGCHLD\"}") == "4");
    CHECK(e.value("supervise_signals_received_total", "{\"signal\":\"SIGUSR1\"}") == "2");
    CHECK(e.value("supervise_signals_received_total", "{\"signal\":\"SIGRTMIN+3\"}") == "1");
    CHECK_FALSE(e.value("supervise_signals_received_total", "{\"signal\":\"SIGTERM\"}"));
    CHECK(e.value("supervise_restarts_total", worker_labels(1)) == "2");
    CHECK(e.value("supervise_restarts_total", worker_labels(2)) == "1");
    CHECK(e.value("supervise_requests_total", worker_labels(0)) == "17");
    CHECK(e.value("supervise_requests_total", worker_labels(2)) == "0");

    CHECK(e.value("supervise_worker_pid", worker_labels(1)) == "1001");
    CHECK(e.value("supervise_worker_pid", worker_labels(2)) == "0");
    CHECK(e.value("supervise_worker_ready", worker_labels(0)) == "1");
    CHECK(e.value("supervise_worker_ready", worker_labels(2)) == "0");
    CHECK(e.value("supervise_worker_generation", worker_labels(1)) == "2");
    CHECK(e.value("supervise_worker_uptime_seconds", worker_labels(0)) == "2.5");
    CHECK(e.value("supervise_worker_last_exit_info",
                  "{\"how\":\"exited\",\"status\":\"3\",\"worker\":\"1\"}") == "1");
    CHECK(e.value("supervise_worker_last_exit_info",
                  "{\"core_dumped\":\"true\",\"how\":\"killed\",\"signal\":\"SIGABRT\","
                  "\"worker\":\"2\"}") == "1");
    // Worker 0 never ended: no last exit.
    for (const sample& s : e.samples) {
        if (s.name == "supervise_worker_last_exit_info")
            CHECK(s.labels.find("\"0\"") == std::string::npos);
    }
}

TEST_CASE("openmetrics(): heartbeat ages only with the watchdog on; a lost worker's exit") {
    supervise::statistics s = three_workers();
    s.workers[0].heartbeat_age = 1250ms;
    s.workers[1].heartbeat_age = 0ms;
    s.workers[2].last_exit = supervise::exit_info{supervise::exit_info::kind::lost, 0, 0, false};
    const exposition e = parsed(s);
    const family* beat = e.find_family("supervise_worker_heartbeat_age_seconds");
    REQUIRE(beat != nullptr);
    CHECK(beat->type == "gauge");
    CHECK(beat->unit == "seconds");
    CHECK(e.value("supervise_worker_heartbeat_age_seconds", worker_labels(0)) == "1.25");
    CHECK(e.value("supervise_worker_heartbeat_age_seconds", worker_labels(1)) == "0");
    CHECK_FALSE(e.value("supervise_worker_heartbeat_age_seconds", worker_labels(2)));
    CHECK(e.value("supervise_worker_last_exit_info", "{\"how\":\"lost\",\"worker\":\"2\"}") == "1");
}

TEST_CASE(
    "openmetrics(): label values escaped as the format says; bytes that are not UTF-8 become "
    "U+FFFD") {
    supervise::statistics s = three_workers();
    SUBCASE("backslash, double quote and line feed") {
        s.name = "a \"quoted\" \\ name\nwith a line feed";
        const std::string text = s.openmetrics();
        CHECK(text.find("name=\"a \\\"quoted\\\" \\\\ name\\nwith a line feed\"") !=
              std::string::npos);
        const exposition e = parsed(s);
        CHECK(e.value("supervise_pool_info",
                      "{\"master_pid\":\"999\",\"name\":\"a \\\"quoted\\\" \\\\ name\\nwith a "
                      "line feed\",\"version\":\"" SUPERVISE_VERSION_STR "\"}") == "1");
    }
    SUBCASE("UTF-8 kept, anything else replaced") {
        // é, €, 😀 (2, 3 and 4 bytes); then a lone continuation byte, 0xff, an
        // overlong '/', an encoded surrogate, a sequence cut short, a
        // code point above U+10FFFF.
        s.name =
            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82|"
            "\xf4\x90\x80\x80";
        const exposition e = parsed(s);
        const std::string r = "\\ufffd";
        CHECK(e.value("supervise_pool_info",
                      "{\"master_pid\":\"999\",\"name\":\"\\u00e9\\u20ac\\ud83d\\ude00|" + r + "|" +
                          r + "|" + r + r + "|" + r + r + r + "|" + r + r + "|" + r + r + r + r +
                          "\",\"version\":\"" SUPERVISE_VERSION_STR "\"}") == "1");
    }
}

TEST_CASE("openmetrics(): an empty pool's counters are families without samples, still valid") {
    supervise::statistics s;
    s.signals_by_number.assign(65, 0);
    const exposition e = parsed(s);
    CHECK(e.find_family("supervise_signals_received") != nullptr);
    CHECK(e.find_family("supervise_restarts") != nullptr);
    CHECK(e.value("supervise_pool_phase", "{\"supervise_pool_phase\":\"starting\"}") == "1");
    CHECK(e.value("supervise_ready") == "0");
}

// ---- readiness and liveness by value ----

TEST_CASE("ready(): running, no stop under way, enough ready workers; live(): the master runs") {
    supervise::statistics s = three_workers();  // two of three ready
    CHECK(s.ready_workers() == 2);
    CHECK(s.ready());
    CHECK(s.live());

    SUBCASE("not before every worker was ready once") {
        s.phase = supervise::pool_phase::starting;
        CHECK_FALSE(s.ready());
        CHECK(s.live());
    }
    SUBCASE("not while draining or stopping, though still live") {
        s.phase = supervise::pool_phase::draining;
        CHECK_FALSE(s.ready());
        CHECK(s.live());
        s.phase = supervise::pool_phase::stopping;
        CHECK_FALSE(s.ready());
        CHECK(s.live());
    }
    SUBCASE("not below min_ready_workers; 0 means every worker") {
        s.min_ready_workers = 2;
        CHECK(s.ready());
        s.min_ready_workers = 3;
        CHECK_FALSE(s.ready());
        s.min_ready_workers = 0;
        CHECK_FALSE(s.ready());
        s.workers[2] = worker(2, supervise::worker_state::running, true);
        CHECK(s.ready());
    }
    SUBCASE("a worker asked to stop, or not ready yet, does not count") {
        s.min_ready_workers = 2;
        s.workers[1].state = supervise::worker_state::stopping;
        CHECK(s.ready_workers() == 1);
        CHECK_FALSE(s.ready());
        s.workers[1].state = supervise::worker_state::running;
        s.workers[1].ready = false;
        CHECK_FALSE(s.ready());
    }
    SUBCASE("neither when the master is gone") {
        s.master_running = false;
        CHECK_FALSE(s.ready());
        CHECK_FALSE(s.live());
        const exposition e = parsed(s);
        CHECK(e.value("supervise_ready") == "0");
        CHECK(e.value("supervise_live") == "0");
    }
}

TEST_CASE("options: min_ready_workers between 0 and workers") {
    supervise::options opts = test_options(3, -1);
    for (const int good : {0, 1, 3}) {
        opts.min_ready_workers = good;
        CHECK(construction_error(opts) == "accepted");
    }
    opts.min_ready_workers = 4;
    CHECK(construction_error(opts) ==
          "supervise: min_ready_workers must be between 0 (every worker) and workers (3; got 4): "
          "more could never be ready");
    opts.min_ready_workers = -1;
    CHECK(construction_error(opts).find("min_ready_workers must be between 0") !=
          std::string::npos);
}

// ---- the pool's page: its records ----

TEST_CASE(
    "the pool's page: a record's sequence is odd while the master writes it, and a reader "
    "reads again until it is even and unchanged") {
    std::atomic<std::uint32_t> sequence{0};
    std::atomic<std::uint32_t> value{0};
    for (std::uint32_t round = 1; round <= 3; ++round) {
        // Looked at after the write: no doctest assertion inside the noexcept writer.
        std::uint32_t during = 0;
        supervise::detail::write_shared_record(sequence, [&] {
            during = sequence.load();
            value.store(round, std::memory_order_release);
        });
        CHECK((during & 1) == 1);
        CHECK(sequence.load() == 2 * round);
    }

    // A write that comes during the read: the reader sees the sequence move
    // and reads again.
    int reads = 0;
    std::uint32_t seen = 0;
    CHECK(supervise::detail::read_shared_record(sequence, [&] {
        seen = value.load(std::memory_order_acquire);
        if (++reads == 1) {
            supervise::detail::write_shared_record(
                sequence, [&] { value.store(9, std::memory_order_release); });
        }
    }));
    CHECK(reads == 2);
    CHECK(seen == 9);

    // A writer stopped half-way (odd for good): the reader does not wait
    // forever, and says it could not read the record whole.
    sequence.store(7);
    reads = 0;
    CHECK_FALSE(supervise::detail::read_shared_record(sequence, [&] { ++reads; }));
    CHECK(reads == 1);  // only the last, fallback read
}

// ---- the pool's page, read by workers ----

TEST_CASE("pool_statistics(): every worker sees every slot, and the master is not woken by it") {
    questions q;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(3, log_fd);
        opts.name = "page";
        supervise::pool pool{answering_worker(q.pipe.read_fd, report_fd), opts};
        return pool.run().exit_status;
    });
    q.pipe.close_read();
    REQUIRE(master.reports.wait_for("up ", 3));
    REQUIRE(master.logs.wait_for("started 3 workers"));
    std::size_t from = 0;
    const std::string seen = view(q, master.reports, from);
    INFO(seen);
    CHECK(field(seen, "phase") == "running");
    CHECK(field(seen, "ready") == "1");
    CHECK(field(seen, "live") == "1");
    CHECK(field(seen, "size") == "3");
    CHECK(field(seen, "ready_workers") == "3");
    CHECK(field(seen, "master") == std::to_string(master.pid()));
    for (int i = 0; i < 3; ++i) {
        CHECK(slot_of(seen, i) ==
              std::to_string(worker_pid(master.reports, i)) + ":running:1:0:0:0:nobeat:-");
    }

    const exposition e = metrics(q, master.reports, from);
    CHECK(e.value("supervise_pool_info",
                  "{\"master_pid\":\"" + std::to_string(master.pid()) +
                      "\",\"name\":\"page\",\"version\":\"" SUPERVISE_VERSION_STR "\"}") == "1");
    CHECK(e.value("supervise_workers", "{\"state\":\"running\"}") == "3");
    CHECK(e.value("supervise_ready") == "1");
    for (int i = 0; i < 3; ++i) {
        CHECK(e.number("supervise_worker_pid", worker_labels(i)) == worker_pid(master.reports, i));
    }

    // The master sits in ppoll with no timer; a thousand reads of the page
    // by a worker, ten times, do not wake it once.
    const std::string waiting = syscall_once_in_ppoll(master.pid());
    INFO("/proc/" << master.pid() << "/syscall: " << waiting << "\nlog:\n" << master.logs.text());
    REQUIRE(std::strtol(waiting.c_str(), nullptr, 10) == SYS_ppoll);
    const long before = voluntary_switches(master.pid());
    for (int i = 0; i < 10; ++i) {
        q.ask(ask_spin);
        const std::string spun = next_answer(master.reports, from, "spun");
        CHECK(spun.substr(spun.rfind(' ') + 1) == "3000");
    }
    CHECK(voluntary_switches(master.pid()) == before);

    CHECK(exited_with(master.terminate(), 0));
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("stopped ") == 3);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("pool_statistics(): a worker not ready yet runs but is not ready, and the pool starts") {
    questions q;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.wait_for_ready = true;
        // Worker 1 never says it is ready; worker 0 does, then answers.
        auto answers = answering_worker(q.pipe.read_fd, report_fd);
        supervise::pool pool{[=](supervise::worker_context& ctx) mutable {
                                 if (ctx.index() == 0) ctx.ready();
                                 return answers(ctx);
                             },
                             opts};
        return pool.run().exit_status;
    });
    q.pipe.close_read();
    REQUIRE(master.reports.wait_for("up ", 2));
    std::size_t from = 0;
    // Worker 0 counts as ready once the master has read its record: asked
    // until then, each answer awaited, bounded.
    std::string seen;
    const std::int64_t deadline = now_ms() + patience.count();
    do {
        seen = view(q, master.reports, from);
    } while (field(seen, "ready_workers") != "1" && now_ms() < deadline);
    INFO(seen);
    CHECK(field(seen, "phase") == "starting");
    CHECK(field(seen, "ready") == "0");
    CHECK(slot_of(seen, 0) ==
          std::to_string(worker_pid(master.reports, 0)) + ":running:1:0:0:0:nobeat:-");
    CHECK(slot_of(seen, 1) ==
          std::to_string(worker_pid(master.reports, 1)) + ":running:0:0:0:0:nobeat:-");
    const exposition e = metrics(q, master.reports, from);
    CHECK(e.value("supervise_pool_phase", "{\"supervise_pool_phase\":\"starting\"}") == "1");
    CHECK(e.value("supervise_worker_ready", worker_labels(1)) == "0");
    CHECK(e.value("supervise_workers_ready") == "1");
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("pool_statistics(): restarts, last exits, heartbeats and other workers' requests") {
    questions q;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd);
        opts.restart_delay = 0ms;
        opts.heartbeat_timeout = 10s;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            answering_worker(q.pipe.read_fd, report_fd, 1, 2), opts);
        return pool.run().exit_status;
    });
    q.pipe.close_read();
    // Slot 1 exits with 7 twice and is restarted each time.
    REQUIRE(master.reports.wait_for("up 1 ", 3));
    REQUIRE(master.logs.wait_for("is back, generation 2"));
    std::size_t from = 0;
    const std::string first = view(q, master.reports, from);
    INFO(first);
    const std::vector<std::string> ups = master.reports.lines_starting("up 1 ");
    REQUIRE(ups.size() == 3);
    const std::string latest_pid = ups[2].substr(5, ups[2].find(' ', 5) - 5);
    CHECK(slot_of(first, 1) == latest_pid + ":running:1:2:2:0:beat:exited with status 7");
    CHECK(slot_of(first, 0).find(":running:1:0:0:0:beat:-") != std::string::npos);

    // Requests counted by whichever worker took the question are seen by
    // every worker, and only grow.
    double last_total = 0;
    for (int round = 1; round <= 5; ++round) {
        q.ask(ask_count);
        next_answer(master.reports, from, "counted");
        const exposition e = metrics(q, master.reports, from);
        const double total = e.number("supervise_requests_total", worker_labels(0)) +
                             e.number("supervise_requests_total", worker_labels(1));
        CHECK(total == round);
        CHECK(total > last_total);
        last_total = total;
        CHECK(e.value("supervise_restarts_total", worker_labels(1)) == "2");
        CHECK(e.value("supervise_worker_last_exit_info",
                      "{\"how\":\"exited\",\"status\":\"7\",\"worker\":\"1\"}") == "1");
        CHECK(e.find_family("supervise_worker_heartbeat_age_seconds") != nullptr);
        CHECK(e.value("supervise_signals_received_total", "{\"signal\":\"SIGCHLD\"}"));
    }

    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("pool_statistics(): the stop under way, seen by the workers it stops") {
    SUBCASE("graceful (nginx's SIGQUIT): draining, not ready, still live") {
        questions q;
        master_process master([&](int log_fd, int report_fd) {
            auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                             supervise::nginx_worker_signals>(
                answering_worker(q.pipe.read_fd, report_fd), test_options(2, log_fd));
            return pool.run().exit_status;
        });
        q.pipe.close_read();
        REQUIRE(master.reports.wait_for("up ", 2));
        REQUIRE(master.logs.wait_for("started 2 workers"));
        REQUIRE(::kill(master.pid(), SIGQUIT) == 0);
        CHECK(exited_with(master.wait(), 0));
        master.reports.wait_eof();
        const std::vector<std::string> stopped = master.reports.lines_starting("stopped ");
        REQUIRE(stopped.size() == 2);
        for (const std::string& line : stopped) {
            INFO(line);
            CHECK(field(line, "phase") == "draining");
            CHECK(field(line, "ready") == "0");
            CHECK(field(line, "live") == "1");
            CHECK(field(line, "stop") == std::to_string(SIGQUIT));
            // Published before the signal was sent: the worker that got it
            // finds itself stopping, never still running.
            const int self = std::atoi(line.c_str() + 8);
            CHECK(slot_of(line, self).find(":stopping:") != std::string::npos);
        }
    }
    SUBCASE("fast (SIGTERM): stopping, not ready") {
        questions q;
        master_process master([&](int log_fd, int report_fd) {
            supervise::pool pool{answering_worker(q.pipe.read_fd, report_fd),
                                 test_options(2, log_fd)};
            return pool.run().exit_status;
        });
        q.pipe.close_read();
        REQUIRE(master.reports.wait_for("up ", 2));
        REQUIRE(master.logs.wait_for("started 2 workers"));
        CHECK(exited_with(master.terminate(), 0));
        master.reports.wait_eof();
        const std::vector<std::string> stopped = master.reports.lines_starting("stopped ");
        REQUIRE(stopped.size() == 2);
        for (const std::string& line : stopped) {
            INFO(line);
            CHECK(field(line, "phase") == "stopping");
            CHECK(field(line, "ready") == "0");
            CHECK(field(line, "stop") == std::to_string(SIGTERM));
            CHECK(field(line, "sigterm") == "1");
            const int self = std::atoi(line.c_str() + 8);
            CHECK(slot_of(line, self).find(":stopping:") != std::string::npos);
        }
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("min_ready_workers: scale_down below it makes the pool not ready, scale_up ready again") {
    // 0 is "every worker": one of one is enough after the scale-down.
    for (const int minimum : {2, 0}) {
        CAPTURE(minimum);
        questions q;
        master_process master([&](int log_fd, int report_fd) {
            auto opts = test_options(2, log_fd);
            opts.min_ready_workers = minimum;
            opts.max_workers = 4;
            auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                             supervise::nginx_worker_signals>(
                answering_worker(q.pipe.read_fd, report_fd), opts);
            return pool.run().exit_status;
        });
        q.pipe.close_read();
        REQUIRE(master.reports.wait_for("up ", 2));
        REQUIRE(master.logs.wait_for("started 2 workers"));
        std::size_t from = 0;
        CHECK(field(view(q, master.reports, from), "ready") == "1");

        REQUIRE(::kill(master.pid(), SIGTTOU) == 0);
        REQUIRE(master.logs.wait_for("SIGTTOU received; removing worker 1"));
        REQUIRE(master.logs.wait_for(", retired) exited with status 0"));
        const std::string smaller = view(q, master.reports, from);
        INFO(smaller);
        CHECK(field(smaller, "size") == "1");
        CHECK(field(smaller, "ready") == (minimum == 2 ? "0" : "1"));
        const exposition e = metrics(q, master.reports, from);
        CHECK(e.value("supervise_ready") == (minimum == 2 ? "0" : "1"));
        CHECK(e.value("supervise_min_ready_workers") == (minimum == 2 ? "2" : "1"));

        REQUIRE(::kill(master.pid(), SIGTTIN) == 0);
        REQUIRE(master.logs.wait_for("SIGTTIN received; adding worker 1"));
        REQUIRE(master.reports.wait_for("up 1 ", 2));
        // The new worker counts once the master has read its start-up
        // record: asked until then, each answer awaited, bounded.
        std::string again;
        const std::int64_t deadline = now_ms() + patience.count();
        do {
            again = view(q, master.reports, from);
        } while (field(again, "ready_workers") != "2" && now_ms() < deadline);
        INFO(again);
        CHECK(field(again, "size") == "2");
        CHECK(field(again, "ready") == "1");

        CHECK(exited_with(master.terminate(), 0));
        CHECK(reap_leftovers() == 0);
    }
}

TEST_CASE("no_fork: the one worker reads the page of its own process") {
    pipe_pair report;
    child process([&] {
        auto opts = test_options(1, -1);
        opts.no_fork = true;
        supervise::pool pool{[&](supervise::worker_context& ctx) {
                                 ctx.request_done();
                                 say(report.write_fd,
                                     view_line(ctx) + " self=" + std::to_string(::getpid()));
                                 ::raise(SIGTERM);
                                 while (!ctx.stop_requested()) ctx.sleep_for(-1ms);
                             },
                             opts};
        return pool.run().exit_status;
    });
    report.close_write();
    reader lines(report.read_fd);
    CHECK(exited_with(process.wait(), 0));
    lines.wait_eof();
    const std::string seen = lines.lines_starting("view ").at(0);
    INFO(seen);
    const std::string self = seen.substr(seen.rfind('=') + 1);
    CHECK(field(seen, "phase") == "running");
    CHECK(field(seen, "ready") == "1");
    CHECK(field(seen, "live") == "1");
    CHECK(field(seen, "master") == self);
    CHECK(slot_of(seen, 0).rfind(self + ":running:1:0:0:1:nobeat:-", 0) == 0);
}

TEST_CASE("live(): a worker whose master is gone says so (parent_death_signal 0)") {
    questions q;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.parent_death_signal = 0;  // the worker outlives its master
        supervise::pool pool{answering_worker(q.pipe.read_fd, report_fd), opts};
        return pool.run().exit_status;
    });
    q.pipe.close_read();
    REQUIRE(master.reports.wait_for("up ", 1));
    REQUIRE(master.logs.wait_for("started 1 workers"));
    std::size_t from = 0;
    CHECK(field(view(q, master.reports, from), "live") == "1");
    REQUIRE(::kill(master.pid(), SIGKILL) == 0);
    CHECK(killed_by(master.wait(), SIGKILL));
    // The orphan comes to this process (a subreaper): its parent is us now.
    const pid_t orphan = worker_pid(master.reports, 0);
    const std::int64_t deadline = now_ms() + patience.count();
    while (parent_of(orphan) != ::getpid() && now_ms() < deadline) ::sched_yield();
    REQUIRE(parent_of(orphan) == ::getpid());
    const std::string seen = view(q, master.reports, from);
    INFO(seen);
    CHECK(field(seen, "live") == "0");
    CHECK(field(seen, "ready") == "0");
    CHECK(reap_leftovers() == 1);  // the orphan, killed here
}
