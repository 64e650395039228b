// Chaos with real processes: thousands of crashes, workers SIGKILLed under
// load, reloads under load, the master SIGKILLed, a storm of signals, workers
// that leave descendants behind. Each scenario counts what it tried and what
// was lost; docs/reliability-chaos.md tabulates them.
//
// Load comes from client processes of the test's own (GET / on a fresh
// connection, one after the other, each reply reported on a pipe). Faults are
// paced by the test (a kill every 100 ms, a signal whenever the previous one of
// its kind was taken): the pacing defines the scenario, it synchronises
// nothing. Every wait is bounded, and each test ends with nothing left running.
//
// CHAOS_CRASHES overrides the number of crashes (the sanitizer twin does fewer,
// tests/BUILD.bazel).

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "daemon_client.hpp"

using namespace harness;
using namespace daemon_client;

namespace {

// ---- /proc, from outside ----

// The state letter of /proc/PID/stat ('Z' for a zombie), or 0 once it is gone.
char state_of(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(file, stat);
    const std::size_t paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

// A field of /proc/PID/status as a number (its first word), or -1.
long long status_number(pid_t pid, const std::string& name, int base = 10) {
    const std::string value = status_field(pid, name);
    return value.empty() ? -1 : std::stoll(value, nullptr, base);
}

// True while `sig` is pending for `pid` (process- or thread-directed).
bool pending(pid_t pid, int sig) {
    const auto bit = 1ULL << (sig - 1);
    return ((static_cast<unsigned long long>(status_number(pid, "ShdPnd", 16)) |
             static_cast<unsigned long long>(status_number(pid, "SigPnd", 16))) &
            bit) != 0;
}

// The sum of every "restarts":N field of a JSON statistics line.
unsigned long long total_restarts(std::string_view json) {
    const std::string_view field = "\"restarts\":";
    unsigned long long total = 0;
    for (std::size_t at = json.find(field); at != std::string_view::npos;
         at = json.find(field, at)) {
        at += field.size();
        if (const std::optional<long> restarts = number_at(json, at)) total += *restarts;
    }
    return total;
}

int env_count(const char* name, int fallback) {
    const char* text = std::getenv(name);
    return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : fallback;
}

// Asks for the statistics table until every one of `workers` slots has a
// process (bounded); returns that table, or an incomplete one on timeout.
stats_table wait_for_full_pool(daemon_process& daemon, int workers) {
    const std::int64_t deadline = now_ms() + patience.count();
    stats_table table;
    while (now_ms() < deadline) {
        const std::size_t from = daemon.err.text().size();
        daemon.signal(SIGUSR1);
        daemon.err.wait_until([&] {
            return parse_table(daemon.err.text(), from).workers.size() ==
                   static_cast<std::size_t>(workers);
        });
        table = parse_table(daemon.err.text(), from);
        if (table.workers.size() == static_cast<std::size_t>(workers) &&
            std::none_of(table.workers.begin(), table.workers.end(),
                         [](pid_t pid) { return pid <= 0; })) {
            return table;
        }
        daemon.err.wait_until([] { return false; }, 20ms);  // let a back-off end
    }
    return table;
}

}  // namespace

// ---- crashes ----

TEST_CASE("10,000 worker crashes under one_for_one: no zombie, descriptors and memory unchanged") {
    const int crashes = env_count("CHAOS_CRASHES", 10000);
    constexpr int workers = 4;
    pipe_pair report, gate, stats;
    reader reports(report.read_fd), tables(stats.read_fd);
    child master([&] {
        gate.close_write();
        // abort() is one of the ways a worker dies here: no core files.
        const struct rlimit no_core {};
        ::setrlimit(RLIMIT_CORE, &no_core);
        // Two log lines per crash are not what is measured.
        const int quiet = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        auto opts = test_options(workers, quiet, stats.write_fd);
        opts.max_restarts = crashes;
        opts.restart_period = 1s;
        opts.restart_delay = 0ms;
        opts.restart_delay_max = 0ms;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            [&, fd = report.write_fd](supervise::worker_context& ctx) {
                // Slot i crashes quota(i) times, the quotas adding up to `crashes`.
                const int quota = crashes / workers + (ctx.index() < crashes % workers ? 1 : 0);
                const std::string who =
                    std::to_string(ctx.index()) + " " + std::to_string(::getpid());
                if (ctx.generation() == 0) {
                    say(fd, "up " + who);
                    // Held until the test has measured the master at rest.
                    if (ctx.wait_readable(gate.read_fd) == supervise::wait_status::stop_requested) {
                        return 0;
                    }
                }
                if (static_cast<int>(ctx.generation()) < quota) {
                    switch (ctx.generation() % 3) {
                        case 0:
                            return 3;
                        case 1:
                            ::raise(SIGKILL);
                            break;
                        default:
                            std::abort();
                    }
                }
                say(fd, "steady " + who);
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
        say_json_on_destroy(pool, "statistics", report.write_fd);
        return pool.run().exit_status;
    });
    report.close_write();
    stats.close_write();
    gate.close_read();
    // A worker can report before the master has finished spawning it (its
    // pidfd comes after fork() returns); a statistics table is printed by
    // the master's loop, so once it comes the master is done with them.
    const auto settled = [&](int round) {
        REQUIRE(::kill(master.pid(), SIGUSR1) == 0);
        REQUIRE(tables.wait_for("statistics: master pid", round));
    };
    REQUIRE(reports.wait_for("up ", workers));
    settled(1);
    // At rest: every worker forked and set up, nothing restarted yet.
    const int fds_before = open_fds(master.pid());
    const long long rss_before = status_number(master.pid(), "RssAnon");
    REQUIRE(fds_before > 0);
    REQUIRE(rss_before > 0);

    const std::int64_t started = now_ms();
    gate.close_write();
    // 10,000 forks on a loaded two-core machine: a bound of its own.
    REQUIRE_MESSAGE(reports.wait_for("steady ", workers, 240s), reports.text());
    const std::int64_t took = now_ms() - started;
    settled(2);

    const int fds_after = open_fds(master.pid());
    const long long rss_after = status_number(master.pid(), "RssAnon");
    std::vector<pid_t> steady;
    for (const std::string& line : reports.lines_starting("steady ")) {
        steady.push_back(static_cast<pid_t>(std::stol(line.substr(line.rfind(' ') + 1))));
    }
    std::vector<pid_t> alive = children_of(master.pid());
    std::sort(alive.begin(), alive.end());
    std::sort(steady.begin(), steady.end());
    // No zombie: the master's only children are the four steady workers.
    CHECK(alive == steady);
    for (const pid_t pid : alive) CHECK(state_of(pid) != 'Z');
    CHECK(fds_after == fds_before);
    // Anonymous memory (RssAnon) is what a leak grows. VmRSS is not used: a
    // forked master maps the program's file pages lazily and its file-backed
    // RSS rises as restart code runs for the first time, leak or not. A leak
    // of one small allocation per crash (a string or a slot record, ~64 bytes
    // with malloc's header) would add about 640 kB over 10,000 crashes. The
    // tolerance is what a master that leaks nothing may still touch for the
    // first time after the baseline: heap pages of malloc's free lists, stack
    // pages of the restart path, and up to 128 kB that glibc keeps above the
    // heap's top before trimming (M_TRIM_THRESHOLD); 4 kB was seen. Under ASan the quarantine
    // of freed memory grows by design, so only the count is checked.
#if defined(__SANITIZE_ADDRESS__)
    constexpr long long rss_tolerance_kb = -1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    constexpr long long rss_tolerance_kb = -1;
#else
    constexpr long long rss_tolerance_kb = 128;
#endif
#else
    constexpr long long rss_tolerance_kb = 128;
#endif
    if (rss_tolerance_kb >= 0) CHECK(rss_after - rss_before <= rss_tolerance_kb);

    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    CHECK(exited_with(master.wait(), 0));
    reports.wait_eof();
    const std::string json = reports.lines_starting("json ").at(0);
    INFO(json);
    CHECK(total_restarts(json) == static_cast<unsigned long long>(crashes));
    CHECK(reap_leftovers() == 0);
    MESSAGE("crashes: " << crashes << " in " << took << " ms; master fds " << fds_before << " -> "
                        << fds_after << ", RssAnon " << rss_before << " -> " << rss_after << " kB");
}

// ---- the example daemon under load ----

TEST_CASE(
    "daemon under load, a random worker SIGKILLed every 100 ms: only in-flight requests fail") {
    constexpr int workers = 4;
    constexpr int kills_wanted = 30;
    // A slot killed again soon after its restart waits a back-off; one that
    // lived 100 ms starts afresh, so back-offs stay short at this pace.
    daemon_process daemon(with_local({"--workers", "4", "--strategy", "one_for_one",
                                      "--max-restarts", "1000", "--restart-period", "100"}));
    const int port = daemon.start();
    wait_until_workers_run(daemon, request_stats(daemon, workers));

    load clients(port, 3, 60s);
    REQUIRE(clients.replies.wait_for(30));
    std::mt19937 random(12345);
    int kills = 0;
    std::int64_t last_kill = 0;
    for (int round = 0; round < kills_wanted; ++round) {
        clients.replies.read_for(100ms);
        const std::vector<pid_t> alive = children_of(daemon.pid());
        if (alive.empty()) continue;  // every slot is coming back
        const pid_t victim = alive[random() % alive.size()];
        REQUIRE(victim > 0);
        if (::kill(victim, SIGKILL) == 0) {
            ++kills;
            last_kill = now_ms();
        }
    }
    INFO("stderr:\n" << daemon.err.text());
    CHECK(daemon.running());
    const stats_table back = wait_for_full_pool(daemon, workers);
    REQUIRE(back.workers.size() == static_cast<std::size_t>(workers));
    for (const pid_t pid : back.workers) CHECK(pid > 0);
    // Still answering after the last kill.
    CHECK(clients.replies.wait_for(30, last_kill));
    clients.stop();

    const std::size_t requests = clients.replies.all().size();
    const std::size_t failed = clients.failures();
    // A worker holds one connection at a time; queued connections belong to
    // the listening socket, which the master keeps: a kill loses one request
    // at most.
    CHECK(failed <= static_cast<std::size_t>(kills));
    CHECK(kills >= kills_wanted / 2);
    MESSAGE("SIGKILL under load: " << kills << " kills, " << requests << " requests, " << failed
                                   << " failed");
    CHECK(exited_with(daemon.terminate(), 0));
    CHECK(no_child_left());
}

TEST_CASE("daemon under load, three rolling reloads in a row: no request fails") {
    daemon_process daemon(with_local({"--preset", "nginx", "--workers", "4"}));
    const int port = daemon.start();
    request_stats(daemon, 4, SIGUSR2);

    load clients(port, 3, 60s);
    REQUIRE(clients.replies.wait_for(30));
    constexpr int reloads = 3;
    for (int reload = 1; reload <= reloads; ++reload) {
        CAPTURE(reload);
        daemon.signal(SIGHUP);
        const std::int64_t deadline = now_ms() + patience.count();
        while (daemon.err.occurrences("rolling reload done") < reload && now_ms() < deadline) {
            clients.replies.read_for(10ms);
            daemon.err.wait_until([] { return false; }, 10ms);
        }
        REQUIRE_MESSAGE(daemon.err.occurrences("rolling reload done") == reload, daemon.err.text());
        // Every retiree of this reload gone before the next one begins.
        while (daemon.err.occurrences(", retired) exited with status 0") < 4 * reload &&
               now_ms() < deadline) {
            clients.replies.read_for(10ms);
            daemon.err.wait_until([] { return false; }, 10ms);
        }
        REQUIRE(daemon.err.occurrences(", retired) exited with status 0") == 4 * reload);
    }
    const std::int64_t done = now_ms();
    CHECK(clients.replies.wait_for(30, done));
    clients.stop();
    INFO("stderr:\n" << daemon.err.text());
    for (const auto& r : clients.replies.all()) {
        if (!r.ok) FAIL_CHECK(r.line);
    }
    CHECK(clients.failures() == 0);
    // Twelve workers replaced, each retiree stopped gracefully (status 0).
    CHECK(daemon.err.occurrences("killed by signal") == 0);
    MESSAGE("rolling reloads under load: " << reloads << " reloads (" << 4 * reloads
                                           << " workers replaced), " << clients.replies.all().size()
                                           << " requests, " << clients.failures() << " failed");
    daemon.signal(SIGQUIT);
    CHECK(exited_with(daemon.wait_exit(), 0));
    CHECK(no_child_left());
}

TEST_CASE("daemon under load, the master SIGKILLed: no worker runs 100 ms later") {
    daemon_process daemon(with_local({"--workers", "4"}));
    const int port = daemon.start();
    const stats_table table = request_stats(daemon, 4);
    // A worker still starting checks getppid() after prctl() and exits by
    // itself; these are all past that point, serving.
    wait_until_workers_run(daemon, table);

    load clients(port, 3, 60s);
    REQUIRE(clients.replies.wait_for(30));
    daemon.signal(SIGKILL);
    REQUIRE(killed_by(daemon.wait_exit(), SIGKILL));
    // The master is gone; its workers got PR_SET_PDEATHSIG as it exited and
    // came back to this process (a subreaper) to be reaped.
    const std::int64_t master_gone = now_ms();
    for (const pid_t worker : table.workers) {
        CAPTURE(worker);
        const std::int64_t left = std::max<std::int64_t>(0, master_gone + 100 - now_ms());
        const std::optional<int> status = wait_exit(worker, milliseconds(left));
        CHECK_MESSAGE(killed_by(status, SIGKILL), describe_status(status));
    }
    const std::int64_t all_gone = now_ms() - master_gone;
    clients.stop();
    MESSAGE("master SIGKILLed under load: last of 4 workers gone after "
            << all_gone << " ms, " << clients.replies.all().size() << " requests");
}

// ---- a storm of signals ----

TEST_CASE(
    "a 5 s storm of USR1, HUP, TTIN, TTOU and crashing workers, then TERM: clean and counted") {
    pipe_pair stats;
    reader tables(stats.read_fd);
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd, stats.write_fd);
        opts.min_workers = 1;
        opts.max_workers = 6;
        opts.max_restarts = 100000;
        opts.restart_delay = 0ms;
        opts.restart_delay_max = 0ms;
        auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                         supervise::nginx_worker_signals, supervise::one_for_one>(
            [fd = report_fd](supervise::worker_context& ctx) {
                // One worker in four crashes after a while (exit 3 or
                // SIGKILL), unless asked to stop first; the line is written
                // before the crash, so every crash is counted.
                std::minstd_rand random(static_cast<unsigned>(::getpid()));
                const bool crashes = random() % 4 == 0;
                const auto life = std::chrono::milliseconds(random() % 200);
                if (crashes && ctx.sleep_for(life)) {
                    const bool by_signal = random() % 2 == 0;
                    say(fd, "crash " + std::to_string(::getpid()) + (by_signal ? " 9" : " 3"));
                    if (by_signal) ::raise(SIGKILL);
                    return 3;
                }
                while (ctx.sleep_for(-1ms)) {
                    ctx.take_signal(SIGUSR1);
                }
                return 0;
            },
            opts);
        say_json_on_destroy(pool, "statistics", report_fd);
        return pool.run().exit_status;
    });
    stats.close_write();
    REQUIRE(master.logs.wait_for("started 2 workers"));

    // Each signal is sent only while the previous one of its kind is no
    // longer pending: standard signals merge, and a merged one would not be
    // counted by the master, which must then have counted every one sent.
    const int storm[] = {SIGUSR1, SIGHUP, SIGTTIN, SIGTTOU};
    int sent[4] = {0, 0, 0, 0};
    std::mt19937 random(4242);
    const int storm_ms = env_count("CHAOS_STORM_MS", 5000);
    const std::int64_t end = now_ms() + storm_ms;
    while (now_ms() < end) {
        const int which = static_cast<int>(random() % 4);
        if (!pending(master.pid(), storm[which])) {
            REQUIRE(::kill(master.pid(), storm[which]) == 0);
            ++sent[which];
        }
        // Drain the pipes (a full one would stall the master or a worker)
        // and pace the storm.
        master.logs.wait_until([] { return false; }, 1ms);
        master.reports.wait_until([] { return false; }, 0ms);
        tables.wait_until([] { return false; }, 0ms);
    }
    // Everything sent so far is acted on once the table for this USR2 comes:
    // the master takes all pending bits in one pass, and USR2 came last.
    for (const int sig : storm) {
        const std::int64_t deadline = now_ms() + patience.count();
        while (pending(master.pid(), sig) && now_ms() < deadline)
            master.logs.wait_until([] { return false; }, 1ms);
    }
    REQUIRE(::kill(master.pid(), SIGUSR2) == 0);
    REQUIRE(tables.wait_for("statistics: master pid"));
    REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    const std::optional<int> status = master.finish();
    master.reports.wait_eof();
    INFO(describe_status(status));
    CHECK(exited_with(status, 0));
    CHECK(master.logs.line_with("stopped (SIGTERM received); exit status 0"));

    const std::string json = master.reports.lines_starting("json ").at(0);
    const auto count_of = [&](const std::string& name) {
        const std::size_t at = json.find("\"" + name + "\":");
        return at == std::string::npos ? 0 : std::stoi(json.substr(at + name.size() + 3));
    };
    INFO(json);
    const char* names[] = {"SIGUSR1", "SIGHUP", "SIGTTIN", "SIGTTOU"};
    int total = 0;
    for (int i = 0; i < 4; ++i) {
        CAPTURE(names[i]);
        CHECK(count_of(names[i]) == sent[i]);
        total += sent[i];
    }
    CHECK(count_of("SIGUSR2") == 1);
    CHECK(count_of("SIGTERM") == 1);
    // The master acted on each kind: one log line per pass of the loop that
    // found its bit set. Several deliveries between two passes set the bit
    // once (one bit per signal, like the kernel's own pending set), so
    // there are at most as many lines as signals, and at least one.
    const char* acted[] = {"SIGHUP received", "SIGTTIN received", "SIGTTOU received"};
    for (int i = 0; i < 3; ++i) {
        CAPTURE(acted[i]);
        CHECK(master.logs.occurrences(acted[i]) <= sent[i + 1]);
        CHECK(master.logs.occurrences(acted[i]) > 0);
    }

    // Every crash was seen once, and each is either restarted, or was a
    // retiree's (a reload or scale-down had replaced it), or came as the
    // pool stopped.
    const std::vector<std::string> crash_lines = master.reports.lines_starting("crash ");
    int restarted = 0;
    int retired = 0;
    int during_stop = 0;
    for (const std::string& line : crash_lines) {
        std::istringstream fields(line.substr(6));
        long pid = 0;
        int how = 0;
        fields >> pid >> how;
        const std::string ended =
            how == 9 ? "killed by signal 9 (SIGKILL)" : "exited with status 3";
        const std::string as_worker = "(pid " + std::to_string(pid) + ") " + ended;
        const std::string as_retiree = "(pid " + std::to_string(pid) + ", retired) " + ended;
        CAPTURE(line);
        CHECK(master.logs.occurrences(as_worker) + master.logs.occurrences(as_retiree) == 1);
        if (const auto logged = master.logs.line_with(as_worker)) {
            if (logged->find("; restarting worker ") != std::string::npos) {
                ++restarted;
            } else {
                ++during_stop;
            }
        } else {
            ++retired;
        }
    }
    CHECK(master.logs.occurrences("; restarting worker ") == restarted);
    CHECK(crash_lines.size() > 0);
    CHECK(reap_leftovers() == 0);
    MESSAGE("signal storm: " << total << " signals (USR1 " << sent[0] << ", HUP " << sent[1]
                             << ", TTIN " << sent[2] << ", TTOU " << sent[3] << "), "
                             << crash_lines.size() << " crashes (" << restarted << " restarted, "
                             << retired << " retired, " << during_stop << " during the stop)");
}

// ---- descendants in subreaper mode ----

namespace {

// A worker whose first generation leaves descendants behind and exits 3: one
// that stops on SIGTERM, one that ignores it, and one that has a child of its
// own. The descendants report "descendant <pid>".
auto leaving_worker(int report_fd) {
    return [report_fd](supervise::worker_context& ctx) {
        if (ctx.generation() > 0) {
            say(report_fd, "steady " + std::to_string(::getpid()));
            while (ctx.sleep_for(-1ms)) {
            }
            return 0;
        }
        // The worker exits only once all four have reported: a stop that
        // came sooner could end one before it said who it is.
        int reported[2];
        if (::pipe2(reported, O_CLOEXEC) != 0) return 90;
        const auto descendant = [report_fd, &reported](bool ignore_term, bool fork_again) {
            if (::fork() != 0) return;
            // The worker's handlers and mask are not a plain program's.
            ::signal(SIGTERM, ignore_term ? SIG_IGN : SIG_DFL);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            const auto report = [&] {
                say(report_fd, "descendant " + std::to_string(::getpid()));
                if (::write(reported[1], "x", 1) != 1) ::_exit(91);
                for (;;) ::pause();
            };
            if (fork_again && ::fork() == 0) report();
            report();
        };
        descendant(false, false);
        descendant(true, false);
        descendant(false, true);
        ::close(reported[1]);
        for (int seen = 0; seen < 4;) {
            char byte;
            const ssize_t n = ::read(reported[0], &byte, 1);
            if (n == 1) ++seen;
            if (n == 0 || (n < 0 && errno != EINTR)) return 92;
        }
        return 3;
    };
}

// Runs a subreaper pool of one leaving_worker under Strategy in a child that,
// after run(), reports how many children it still has ("after run: N").
template <class Strategy>
void check_nothing_left(bool stop_with_term) {
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.subreaper = true;
        opts.shutdown_timeout = 300ms;
        auto pool =
            supervise::make_pool<supervise::seed_master_signals, supervise::seed_worker_signals,
                                 Strategy>(leaving_worker(report_fd), opts);
        const auto result = pool.run();
        int status = 0;
        const bool none = ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
        say(report_fd, std::string("after run: ") + (none ? "no child" : "children left"));
        return result.exit_status;
    });
    REQUIRE(master.reports.wait_for("descendant ", 4));
    if (stop_with_term) {
        REQUIRE(master.reports.wait_for("steady "));
        REQUIRE(::kill(master.pid(), SIGTERM) == 0);
    }
    const std::optional<int> status = master.finish();
    INFO(master.logs.text());
    CHECK(exited_with(status, stop_with_term ? 0 : 1));
    CHECK(master.reports.wait_for("after run: no child"));
    for (const std::string& line : master.reports.lines_starting("descendant ")) {
        const std::string pid = line.substr(11);
        CAPTURE(pid);
        CHECK(master.logs.line_with("reaped orphan pid " + pid + ", "));
    }
    CHECK(master.logs.line_with("orphans still running after 300 ms; sending SIGKILL"));
    // Had any outlived the master, it would have come to this subreaper.
    CHECK(reap_leftovers() == 0);
}

}  // namespace

TEST_CASE("subreaper mode: a worker's descendants do not outlive run() when the pool fails") {
    check_nothing_left<supervise::shutdown_all>(false);
}

TEST_CASE("subreaper mode: adopted descendants are stopped when the pool is stopped") {
    check_nothing_left<supervise::one_for_one>(true);
}

TEST_CASE("subreaper mode: a child the program had before run() is left alone") {
    master_process master([&](int log_fd, int report_fd) {
        const pid_t own = ::fork();
        if (own == 0) {
            for (;;) ::pause();
        }
        auto opts = test_options(1, log_fd);
        opts.subreaper = true;
        auto pool = supervise::make_pool(reporting_worker(report_fd), opts);
        pool.on_ready([] { ::raise(SIGTERM); });
        const auto result = pool.run();
        int status = 0;
        const bool running = ::waitpid(own, &status, WNOHANG) == 0;
        say(report_fd, running ? "own child running" : "own child stopped");
        ::kill(own, SIGKILL);
        ::waitpid(own, &status, 0);
        return result.exit_status;
    });
    CHECK(exited_with(master.wait(), 0));
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("own child running") == 1);
    CHECK(reap_leftovers() == 0);
}
