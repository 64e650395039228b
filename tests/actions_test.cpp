// The actions of a signal map, on the nginx presets, with real processes:
// graceful_stop and its bounds, rolling_reload, scale_up / scale_down,
// stop_workers, forward<SIG> with deliver.
//
// The master's log, a record of every signal it sends and every fork it makes,
// and the workers' reports all go to ONE pipe, so the order of lines in it is
// the order in which things happened: the master writes its own lines in
// program order, and a worker writes after the signal that made it write.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <sstream>

#include "harness.hpp"

using namespace harness;

namespace {

// The pid a pidfd refers to, from /proc/self/fdinfo, or -1.
pid_t pid_behind(int pidfd) {
    pid_t pid = -1;
    if (FILE* f = std::fopen(("/proc/self/fdinfo/" + std::to_string(pidfd)).c_str(), "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, f) != nullptr) {
            long value = 0;
            if (std::sscanf(line, "Pid: %ld", &value) == 1) pid = static_cast<pid_t>(value);
        }
        std::fclose(f);
    }
    return pid;
}

// The operating-system seam, recording what the master does on the shared
// stream just before doing it: "kill <pid> <SIGNAME>" for a signal sent by pid
// or by pidfd, and "fork <pid>" once a fork returned in the master.
struct recording_system : supervise::posix_system {
    static inline int fd = -1;
    static void record(pid_t pid, int sig) {
        say(fd, "kill " + std::to_string(pid) + " " + supervise::signal_name(sig));
    }
    static int kill(pid_t pid, int sig) noexcept {
        record(pid, sig);
        return supervise::posix_system::kill(pid, sig);
    }
    static int pidfd_send_signal(int pidfd, int sig) noexcept {
        record(pid_behind(pidfd), sig);
        return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
    }
    static pid_t fork() noexcept {
        const pid_t pid = supervise::posix_system::fork();
        if (pid > 0) say(fd, "fork " + std::to_string(pid));
        return pid;
    }
};

// What a worker does when its first stop request is graceful. A fast one
// always makes it return at once.
enum class on_graceful {
    finish,             // return at once
    finish_if_hurried,  // keep working until the stop turns fast, then return
    hold_until_killed,  // keep working through the fast stop too: only SIGKILL ends it
};

// Blocks until the stop under way is no longer graceful: what
// wake_on::fast_stop is for (a worker finishing the work in hand).
void wait_until_hurried(supervise::worker_context& ctx) {
    while (ctx.wait_readable(-1, milliseconds(-1), supervise::wake_on::fast_stop) !=
           supervise::wait_status::stop_requested) {
    }
}

// Reports, one line per event:
//   up <index> <pid> <process group> <generation>     (as strategy_test's workers)
//   signalled <index> gen <g> first=<0|1> again=<0|1>   (take_signal(SIGUSR1) twice)
//   stopping <index> gen <g> <graceful|fast> <stop signal>
//   hurried <index> gen <g>                              (a held graceful stop turned fast)
//   exiting <index> gen <g>
struct scripted_worker {
    int fd;
    on_graceful mode = on_graceful::finish;
    int notify_fd = -1;  // options::notify_fd: ready once a byte is written there
    int operator()(supervise::worker_context& ctx) const {
        const std::string me =
            std::to_string(ctx.index()) + " gen " + std::to_string(ctx.generation());
        if (notify_fd >= 0 && ::write(notify_fd, "\n", 1) != 1) return 3;
        say_up(fd, ctx);
        for (;;) {
            const supervise::wait_status status = ctx.wait_readable(-1);
            if (status == supervise::wait_status::stop_requested) break;
            if (status == supervise::wait_status::signalled) {
                const bool first = ctx.take_signal(SIGUSR1);
                const bool again = ctx.take_signal(SIGUSR1);
                say(fd, "signalled " + me + " first=" + (first ? "1" : "0") +
                            " again=" + (again ? "1" : "0"));
            }
        }
        const bool graceful = ctx.stop_is_graceful();
        say(fd, "stopping " + me + (graceful ? " graceful " : " fast ") +
                    supervise::signal_name(ctx.stop_signal()));
        if (graceful && mode != on_graceful::finish) {
            wait_until_hurried(ctx);
            say(fd, "hurried " + me);
            if (mode == on_graceful::hold_until_killed) {
                for (;;) ::pause();
            }
        }
        say(fd, "exiting " + me);
        return 0;
    }
};

struct setup {
    int workers = 3;
    int min_workers = 1;
    int max_workers = SUPERVISE_CONFIG_MAX_WORKERS;
    // Long by default: nothing in a test happens because a timeout ran out
    // unless the test sets a short one to see exactly that.
    milliseconds shutdown_timeout = std::chrono::hours(24);
    milliseconds drain_delay{0};
    on_graceful mode = on_graceful::finish;
    int notify_fd = -1;
    std::function<void()> on_ready;
};

// Workers that do `mode` on a graceful stop.
setup with_mode(on_graceful mode) {
    setup how;
    how.mode = mode;
    return how;
}

// Two workers, scaled between `min_workers` and `max_workers`.
setup scaling(int min_workers, int max_workers) {
    setup how;
    how.workers = 2;
    how.min_workers = min_workers;
    how.max_workers = max_workers;
    return how;
}

// A master on nginx_master_signals / nginx_worker_signals (QUIT graceful,
// HUP rolling reload, USR1 forwarded and delivered, TTIN/TTOU scale, WINCH
// stop workers, USR2 statistics).
struct nginx_pool {
    pipe_pair events, stats;
    reader stream{events.read_fd}, tables{stats.read_fd};
    std::optional<child> master;
    int tables_asked = 0;

    void start(const setup& how) {
        master.emplace([&] {
            recording_system::fd = events.write_fd;
            supervise::options opts = test_options(how.workers, events.write_fd, stats.write_fd);
            opts.min_workers = how.min_workers;
            opts.max_workers = how.max_workers;
            opts.shutdown_timeout = how.shutdown_timeout;
            opts.drain_delay = how.drain_delay;
            opts.notify_fd = how.notify_fd;
            auto pool = supervise::make_pool<supervise::nginx_master_signals,
                                             supervise::nginx_worker_signals,
                                             supervise::shutdown_all, recording_system>(
                scripted_worker{events.write_fd, how.mode, how.notify_fd}, opts);
            if (how.on_ready) pool.on_ready(how.on_ready);
            return pool.run().exit_status;
        });
        events.close_write();
        stats.close_write();
    }

    // Starts the pool as `how` says; true once all its workers are up.
    bool start_all_up(const setup& how = {}) {
        start(how);
        return all_up(how.workers);
    }

    void signal(int sig) { REQUIRE(::kill(master->pid(), sig) == 0); }

    std::optional<int> finish() {
        const auto status = master->wait();
        stream.wait_eof();
        tables.wait_eof();
        return status;
    }

    std::optional<int> terminate() {
        signal(SIGTERM);
        return finish();
    }

    // Complete lines of the stream that start with `prefix`.
    std::vector<std::string> lines(std::string_view prefix) const {
        std::vector<std::string> found;
        const std::string& text = stream.text();
        std::size_t start = 0;
        for (std::size_t end; (end = text.find('\n', start)) != std::string::npos;
             start = end + 1) {
            if (text.compare(start, prefix.size(), prefix) == 0) {
                found.push_back(text.substr(start, end - start));
            }
        }
        return found;
    }

    // Waits, bounded, until `n` complete lines start with `prefix`.
    bool wait_lines(std::string_view prefix, std::size_t n) {
        return stream.wait_until([&] { return lines(prefix).size() >= n; });
    }

    bool all_up(int n) { return wait_lines("up ", static_cast<std::size_t>(n)); }

    // Field 1 (pid) or 2 (process group) of worker (index, generation)'s
    // "up" line, or -1.
    pid_t up_field(int index, unsigned generation, int field) const {
        for (const std::string& line : lines("up ")) {
            int i = -1;
            long ids[2] = {0, 0};
            unsigned g = 0;
            if (std::sscanf(line.c_str(), "up %d %ld %ld %u", &i, &ids[0], &ids[1], &g) == 4 &&
                i == index && g == generation) {
                return static_cast<pid_t>(ids[field - 1]);
            }
        }
        return -1;
    }
    pid_t pid_of(int index, unsigned generation) const { return up_field(index, generation, 1); }
    pid_t pgid_of(int index, unsigned generation) const { return up_field(index, generation, 2); }

    int count(const std::string& needle) const { return stream.occurrences(needle); }

    // True when every needle is in the stream, each after the one before.
    bool in_order(const std::vector<std::string>& needles) const {
        std::size_t previous = 0;
        bool first = true;
        for (const std::string& needle : needles) {
            const std::size_t at = stream.text().find(needle);
            if (at == std::string::npos || (!first && at <= previous)) return false;
            previous = at;
            first = false;
        }
        return true;
    }

    // Asks for a statistics table (USR2) and returns its rows as
    // "<index> <pid> <state>".
    std::vector<std::string> table() {
        signal(SIGUSR2);
        ++tables_asked;
        if (!tables.wait_for("statistics:", tables_asked)) return {"no table"};
        const std::string& text = tables.text();
        std::istringstream rows(text.substr(text.rfind("statistics:")));
        std::vector<std::string> found;
        for (std::string row; std::getline(rows, row);) {
            int index = -1;
            char pid[32] = {};
            char state[32] = {};
            if (std::sscanf(row.c_str(), " %d %31s %31s", &index, pid, state) == 3) {
                found.push_back(std::to_string(index) + " " + pid + " " + state);
            }
        }
        return found;
    }

    // What table() shows when slots 0 to workers - 1 each run their worker of
    // `generation`.
    std::vector<std::string> running(unsigned generation, int workers) const {
        std::vector<std::string> rows;
        for (int i = 0; i < workers; ++i) {
            rows.push_back(std::to_string(i) + " " + std::to_string(pid_of(i, generation)) +
                           " running");
        }
        return rows;
    }
};

std::string kill_line(pid_t pid, const char* sig) {
    return "kill " + std::to_string(pid) + " " + sig;
}

// A signal that asks a worker to end, then the SIGCONT that follows it (a
// stopped worker acts on it too): the two kill lines.
std::vector<std::string> end_lines(pid_t pid, const char* sig) {
    return {kill_line(pid, sig), kill_line(pid, "SIGCONT")};
}
void add_end_lines(std::vector<std::string>& lines, pid_t pid, const char* sig) {
    for (std::string& line : end_lines(pid, sig)) lines.push_back(std::move(line));
}

std::string worker_line(int index, pid_t pid, const std::string& what) {
    return "worker " + std::to_string(index) + " (pid " + std::to_string(pid) + ") " + what;
}

std::string retired_line(int index, pid_t pid, const std::string& what) {
    return "worker " + std::to_string(index) + " (pid " + std::to_string(pid) + ", retired) " +
           what;
}

}  // namespace

TEST_CASE("graceful_stop: SIGQUIT lets every worker finish; no SIGTERM or SIGKILL is needed") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    pool.signal(SIGQUIT);
    const auto status = pool.finish();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("stopping gracefully: SIGQUIT received") == 1);
    std::vector<std::string> quits;
    for (int i = 2; i >= 0; --i) {
        CAPTURE(i);
        const std::string me = std::to_string(i) + " gen 0";
        CHECK(pool.lines("stopping " + me) ==
              std::vector<std::string>{"stopping " + me + " graceful SIGQUIT"});
        CHECK(pool.count("exiting " + me) == 1);
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 0), "exited with status 0")) == 1);
        add_end_lines(quits, pool.pid_of(i, 0), "SIGQUIT");
    }
    // The graceful signal (and its SIGCONT) only, once per worker, newest first.
    CHECK(pool.lines("kill ") == quits);
    CHECK(pool.count("sending SIGTERM") == 0);
    CHECK(pool.count("sending SIGKILL") == 0);
    CHECK(pool.count("stopped (SIGQUIT received); exit status 0") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE(
    "drain_delay: a graceful stop serves on for the delay, then stops every worker gracefully") {
    nginx_pool pool;
    setup how;
    how.drain_delay = 300ms;
    REQUIRE(pool.start_all_up(how));
    pool.signal(SIGQUIT);
    REQUIRE(pool.stream.wait_for("draining for 300 ms first, still serving"));
    // During the delay the workers are still serving: a delivered signal
    // reaches them and is answered (no stop came with it).
    pool.signal(SIGUSR1);
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.stream.wait_for("signalled " + std::to_string(i) + " gen 0 first=1"));
    }
    const auto status = pool.finish();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("drain delay over; stopping the workers gracefully") == 1);
    for (int i = 0; i < 3; ++i) {
        const std::string me = std::to_string(i) + " gen 0";
        CHECK(pool.lines("stopping " + me) ==
              std::vector<std::string>{"stopping " + me + " graceful SIGQUIT"});
    }
    // The delay came first: no worker heard of the stop before it was over.
    CHECK(pool.stream.text().find("drain delay over") <
          pool.stream.text().find("stopping 0 gen 0"));
    CHECK(pool.count("sending SIGTERM") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("drain_delay: a fast stop during the delay stops every worker at once") {
    nginx_pool pool;
    setup how;
    how.drain_delay = std::chrono::hours(1);
    REQUIRE(pool.start_all_up(how));
    pool.signal(SIGQUIT);
    REQUIRE(pool.stream.wait_for("draining for 3600000 ms first, still serving"));
    pool.signal(SIGTERM);
    const auto status = pool.finish();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("SIGTERM received; fast stop") == 1);
    for (int i = 0; i < 3; ++i) {
        const std::string me = std::to_string(i) + " gen 0";
        CHECK(pool.lines("stopping " + me) ==
              std::vector<std::string>{"stopping " + me + " fast SIGTERM"});
    }
    CHECK(pool.count("drain delay over") == 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("graceful_stop is bounded: workers still busy after shutdown_timeout get SIGTERM") {
    nginx_pool pool;
    setup how;
    how.shutdown_timeout = 500ms;
    how.mode = on_graceful::finish_if_hurried;  // ignores the graceful stop, obeys the fast one
    REQUIRE(pool.start_all_up(how));
    pool.signal(SIGQUIT);
    const auto status = pool.finish();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("stopping gracefully: SIGQUIT received") == 1);
    // Each worker's deadline runs from its own SIGQUIT, so the line may come
    // once per pass of the master that found deadlines due.
    CHECK(pool.count("workers still busy after 500 ms of graceful stop; sending SIGTERM") >= 1);
    CHECK(pool.count("sending SIGKILL") == 0);
    std::vector<std::string> kills;
    for (const char* sig : {"SIGQUIT", "SIGTERM"}) {
        for (int i = 2; i >= 0; --i) add_end_lines(kills, pool.pid_of(i, 0), sig);
    }
    CHECK(pool.lines("kill ") == kills);
    for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        const std::string me = std::to_string(i) + " gen 0";
        // SIGQUIT was the stop asked for first, whenever the worker looked.
        const auto stopping = pool.lines("stopping " + me);
        REQUIRE(stopping.size() == 1);
        CHECK(stopping[0].find(" SIGQUIT") != std::string::npos);
        CHECK(pool.count("exiting " + me) == 1);
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 0), "exited with status 0")) == 1);
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a terminate signal during a graceful stop hurries it at once; one more sends SIGKILL") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up(with_mode(on_graceful::hold_until_killed)));
    pool.signal(SIGQUIT);
    REQUIRE(pool.wait_lines("stopping ", 3));
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.count("stopping " + std::to_string(i) + " gen 0 graceful SIGQUIT") == 1);
    }
    pool.signal(SIGTERM);
    REQUIRE(pool.stream.wait_for("SIGTERM received; fast stop"));
    REQUIRE(pool.wait_lines("hurried ", 3));
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("stopping gracefully: SIGQUIT received") == 1);
    CHECK(pool.count("SIGTERM received; fast stop") == 1);
    CHECK(pool.count("SIGTERM received again; sending SIGKILL") == 1);
    // Both steps came from the signals, not from the (day-long) timeout.
    CHECK(pool.count("ms of graceful stop") == 0);
    CHECK(pool.count("ms; sending SIGKILL") == 0);
    std::vector<std::string> kills;
    for (const char* sig : {"SIGQUIT", "SIGTERM"}) {
        for (int i = 2; i >= 0; --i) add_end_lines(kills, pool.pid_of(i, 0), sig);
    }
    for (int i = 2; i >= 0; --i) kills.push_back(kill_line(pool.pid_of(i, 0), "SIGKILL"));
    CHECK(pool.lines("kill ") == kills);
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 0), "killed by signal 9 (SIGKILL)")) == 1);
    }
    CHECK(pool.lines("exiting ").empty());
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("rolling_reload: one slot at a time, each successor up before its predecessor stops") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    REQUIRE(pool.stream.wait_for("started 3 workers"));
    pool.signal(SIGHUP);
    REQUIRE(pool.stream.wait_for("rolling reload done"));
    REQUIRE(pool.stream.wait_for(", retired) exited with status 0", 3));
    REQUIRE(pool.all_up(6));
    {
        INFO(pool.stream.text());
        CHECK(pool.count("SIGHUP received; rolling reload of 3 workers") == 1);
        for (int i = 0; i < 3; ++i) {
            CAPTURE(i);
            const pid_t old = pool.pid_of(i, 0);
            const pid_t successor = pool.pid_of(i, 1);
            REQUIRE(successor > 0);
            CHECK(successor != old);
            // The successor is forked and reports in (its start-up record,
            // logged as "is back") before its predecessor is sent SIGQUIT;
            // the predecessor sees a graceful stop and ends by itself.
            CHECK(pool.in_order({"fork " + std::to_string(successor),
                                 worker_line(i, successor, "is back, generation 1"),
                                 kill_line(old, "SIGQUIT"),
                                 "stopping " + std::to_string(i) + " gen 0 graceful SIGQUIT",
                                 "exiting " + std::to_string(i) + " gen 0",
                                 retired_line(i, old, "exited with status 0")}));
            // One slot at a time: the next successor is forked only once
            // this predecessor was asked to stop.
            if (i < 2) {
                CHECK(pool.in_order(
                    {kill_line(old, "SIGQUIT"), "fork " + std::to_string(pool.pid_of(i + 1, 1))}));
            }
            CHECK(pool.count("up " + std::to_string(i) + " ") == 2);
        }
        CHECK(pool.in_order(
            {worker_line(2, pool.pid_of(2, 1), "is back, generation 1"), "rolling reload done"}));
        // Workers serving along the stream: +1 when a successor reports in,
        // -1 when a predecessor is asked to stop. Never below the pool's size,
        // never more than one above it.
        std::vector<std::string> retiring;
        for (int i = 0; i < 3; ++i) retiring.push_back(kill_line(pool.pid_of(i, 0), "SIGQUIT"));
        int serving = 3;
        int lowest = serving;
        int highest = serving;
        std::istringstream in(pool.stream.text());
        for (std::string line; std::getline(in, line);) {
            if (line.find("is back, generation 1") != std::string::npos) ++serving;
            if (std::find(retiring.begin(), retiring.end(), line) != retiring.end()) --serving;
            lowest = std::min(lowest, serving);
            highest = std::max(highest, serving);
        }
        CHECK(lowest == 3);
        CHECK(highest == 4);
        CHECK(serving == 3);
    }
    // The pool keeps running on the new generation.
    CHECK(pool.table() == pool.running(1, 3));
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 1), "exited with status 0")) == 1);
        CHECK(pool.count("stopping " + std::to_string(i) + " gen 1 fast SIGTERM") == 1);
    }
    CHECK(pool.count("sending SIGKILL") == 0);
    CHECK(reap_leftovers() == 0);
}

// A successor's start-up pipe is created while its predecessor still runs;
// the new worker must close the master's descriptors for the others, and
// never its own pipe (whose numbers can fall between them).
TEST_CASE("rolling_reload with notify_fd: every successor keeps its own start-up pipe") {
    nginx_pool pool;
    setup how;
    how.notify_fd = 50;
    REQUIRE(pool.start_all_up(how));
    REQUIRE(pool.stream.wait_for("started 3 workers"));
    for (int round = 1; round <= 2; ++round) {
        CAPTURE(round);
        pool.signal(SIGHUP);
        REQUIRE(pool.stream.wait_for("rolling reload done", round));
        REQUIRE(pool.all_up(3 * (round + 1)));
    }
    INFO(pool.stream.text());
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 2), "is back, generation 2")) == 1);
    }
    CHECK(pool.count("dup2") == 0);
    const auto status = pool.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("scale_up adds worker N; scale_down retires the newest worker gracefully") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up(scaling(1, 3)));
    pool.signal(SIGTTIN);
    REQUIRE(pool.stream.wait_for("SIGTTIN received; adding worker 2"));
    REQUIRE(pool.all_up(3));
    const pid_t added = pool.pid_of(2, 0);
    REQUIRE(added > 0);
    CHECK(pool.table() == pool.running(0, 3));
    pool.signal(SIGTTOU);
    REQUIRE(pool.stream.wait_for("SIGTTOU received; removing worker 2"));
    REQUIRE(pool.stream.wait_for(retired_line(2, added, "exited with status 0")));
    {
        INFO(pool.stream.text());
        CHECK(pool.lines("stopping ") == std::vector<std::string>{"stopping 2 gen 0 graceful "
                                                                  "SIGQUIT"});
        CHECK(pool.lines("kill ") == end_lines(added, "SIGQUIT"));
    }
    CHECK(pool.table() == pool.running(0, 2));
    // Room again: TTIN adds a fresh worker 2.
    pool.signal(SIGTTIN);
    REQUIRE(pool.all_up(4));
    const auto ups = pool.lines("up ");
    CHECK(ups.back().rfind("up 2 ", 0) == 0);
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("SIGTTIN received; adding worker 2") == 2);
    CHECK(pool.count(") exited with status 0") == 4);  // three in the pool, one retired
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("scale_up and scale_down stop at max_workers and min_workers") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up(scaling(2, 2)));
    pool.signal(SIGTTIN);
    REQUIRE(pool.stream.wait_for("SIGTTIN received; already at max_workers (2)"));
    pool.signal(SIGTTOU);
    REQUIRE(pool.stream.wait_for("SIGTTOU received; already at min_workers (2)"));
    CHECK(pool.table() == pool.running(0, 2));
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.lines("up ").size() == 2);
    CHECK(pool.count("adding worker") == 0);
    CHECK(pool.count("removing worker") == 0);
    // The only signals sent were the final stop's.
    std::vector<std::string> terms = end_lines(pool.pid_of(1, 0), "SIGTERM");
    add_end_lines(terms, pool.pid_of(0, 0), "SIGTERM");
    CHECK(pool.lines("kill ") == terms);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("stop_workers parks every worker, the master stays; rolling_reload brings them back") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    pool.signal(SIGWINCH);
    REQUIRE(pool.stream.wait_for("SIGWINCH received; stopping every worker, the master stays"));
    REQUIRE(pool.stream.wait_for(", retired) exited with status 0", 3));
    {
        INFO(pool.stream.text());
        std::vector<std::string> quits;
        for (int i = 2; i >= 0; --i) {
            CHECK(pool.count(retired_line(i, pool.pid_of(i, 0), "exited with status 0")) == 1);
            CHECK(pool.count("stopping " + std::to_string(i) + " gen 0 graceful SIGQUIT") == 1);
            add_end_lines(quits, pool.pid_of(i, 0), "SIGQUIT");
        }
        CHECK(pool.lines("kill ") == quits);
    }
    CHECK(pool.table() == std::vector<std::string>{"0 - parked", "1 - parked", "2 - parked"});
    pool.signal(SIGHUP);
    REQUIRE(pool.stream.wait_for("rolling reload done"));
    REQUIRE(pool.all_up(6));
    CHECK(pool.table() == pool.running(1, 3));
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("SIGHUP received; rolling reload of 3 workers") == 1);
    for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 1), "is back, generation 1")) == 1);
        CHECK(pool.count(worker_line(i, pool.pid_of(i, 1), "exited with status 0")) == 1);
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("forward<SIGUSR1> reaches every worker, which takes it once with take_signal") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    pool.signal(SIGUSR1);
    REQUIRE(pool.wait_lines("signalled ", 3));
    for (int i = 0; i < 3; ++i) {
        CHECK(
            pool.lines("signalled " + std::to_string(i) + " ") ==
            std::vector<std::string>{"signalled " + std::to_string(i) + " gen 0 first=1 again=0"});
    }
    // Once taken it is gone; the next USR1 is a new delivery.
    pool.signal(SIGUSR1);
    REQUIRE(pool.wait_lines("signalled ", 6));
    for (int i = 0; i < 3; ++i) {
        CHECK(pool.count("signalled " + std::to_string(i) + " gen 0 first=1 again=0") == 2);
        CHECK(pool.count(kill_line(pool.pid_of(i, 0), "SIGUSR1")) == 2);
    }
    CHECK(pool.lines("stopping ").empty());
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count(") exited with status 0") == 3);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a stop waits for a worker that scale_down retired and that is still finishing") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up(with_mode(on_graceful::hold_until_killed)));
    const pid_t retired = pool.pid_of(2, 0);
    pool.signal(SIGTTOU);
    REQUIRE(pool.stream.wait_for("stopping 2 gen 0 graceful SIGQUIT"));
    // Workers 0 and 1 get a fast stop and leave; worker 2, retired, holds on.
    pool.signal(SIGTERM);
    REQUIRE(pool.stream.wait_for(") exited with status 0", 2));
    pool.signal(SIGTERM);  // hurries whatever is left: SIGKILL
    const auto status = pool.finish();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.in_order({retired_line(2, retired, "killed by signal 9 (SIGKILL)"), "stopped ("}));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("stop_workers during a rolling reload also stops the worker awaiting its successor") {
    nginx_pool pool;
    setup how;
    // Both pending at once, so they are taken in one pass, in the map's row
    // order: HUP starts the reload of slot 0, WINCH comes before its
    // successor can report in.
    how.on_ready = [] {
        ::raise(SIGHUP);
        ::raise(SIGWINCH);
    };
    REQUIRE(pool.start_all_up(how));
    REQUIRE(pool.stream.wait_for("SIGWINCH received; stopping every worker, the master stays"));
    const pid_t predecessor = pool.pid_of(0, 0);
    const bool asked = pool.stream.wait_for(kill_line(predecessor, "SIGQUIT"));
    CHECK_MESSAGE(asked, "worker 0 of generation 0 was never asked to stop");
    if (asked) CHECK(pool.stream.wait_for(retired_line(0, predecessor, "exited with status 0")));
    CHECK(pool.table() == std::vector<std::string>{"0 - parked", "1 - parked", "2 - parked"});
    const auto status = pool.terminate();
    INFO(pool.stream.text());
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(pool.count("stopping 0 gen 0 graceful SIGQUIT") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("scale_up after stop_workers brings a parked worker back instead of adding a slot") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    pool.signal(SIGWINCH);
    REQUIRE(pool.stream.wait_for(", retired) exited with status 0", 3));
    pool.signal(SIGTTIN);
    REQUIRE(pool.all_up(4));
    const auto rows = pool.table();
    INFO(pool.stream.text());
    CHECK(rows.size() == 3);
    CHECK(std::count_if(rows.begin(), rows.end(), [](const std::string& r) {
              return r.find(" running") != std::string::npos;
          }) == 1);
    CHECK(pool.pid_of(3, 0) == -1);
    const auto status = pool.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("workers started after stop_workers get a process group of their own again") {
    nginx_pool pool;
    REQUIRE(pool.start_all_up());
    const pid_t first_group = pool.pgid_of(0, 0);
    CHECK(first_group == pool.pid_of(0, 0));
    CHECK(first_group != pool.master->pid());
    pool.signal(SIGWINCH);
    REQUIRE(pool.stream.wait_for(", retired) exited with status 0", 3));
    // Every member of the first group is gone, and with it the group.
    pool.signal(SIGHUP);
    REQUIRE(pool.stream.wait_for("rolling reload done"));
    REQUIRE(pool.all_up(6));
    {
        INFO(pool.stream.text());
        const pid_t group = pool.pgid_of(0, 1);
        // Not the master's group (the launcher's, where a terminal's Ctrl-C lands).
        CHECK(group != pool.master->pid());
        CHECK(group == pool.pid_of(0, 1));
        CHECK(pool.pgid_of(1, 1) == group);
        CHECK(pool.pgid_of(2, 1) == group);
        CHECK(pool.count("setpgid") == 0);
    }
    const auto status = pool.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status));
    CHECK(reap_leftovers() == 0);
}
