// Failures injected through the system-call seam (posix_system): every fault
// ends in a clear error or a correct retry, with no process left behind, the
// destroy hooks run where documented and the signal state restored.
//
// faulty_system fails chosen calls of chosen functions with a chosen errno.
// Its rules and call counts are per process (a worker inherits the master's
// rules and counts its own calls from its fork); how many failures were
// injected, in any process, is counted in memory shared by all of them and
// printed as a table when the test binary ends (docs/reliability-faults.md).
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <tuple>

#include "harness.hpp"

namespace {

using namespace harness;

enum call_id : int {
    c_fork,
    c_kill,
    c_pidfd_send_signal,
    c_pidfd_open,
    c_waitpid,
    c_sigaction,
    c_sigmask,
    c_ppoll,
    c_sigtimedwait,
    c_pipe2,
    c_close,
    c_read,
    c_write,
    c_sendto,
    c_dup2,
    c_open,
    c_mmap,
    c_pdeathsig,
    c_get_subreaper,
    c_socket,
    c_close_range,
    c_timerfd_create,
    c_capbset_drop,
    c_no_new_privs,
    c_count
};

const char* const call_names[c_count] = {
    "fork",  "kill",  "pidfd_send_signal", "pidfd_open", "waitpid", "sigaction",
    "pthread_sigmask", "ppoll", "sigtimedwait", "pipe2", "close", "read", "write",
    "sendto", "dup2", "open", "mmap", "prctl(PR_SET_PDEATHSIG)", "prctl(PR_GET_CHILD_SUBREAPER)", "socket", "close_range",
    "timerfd_create", "prctl(PR_CAPBSET_DROP)", "prctl(PR_SET_NO_NEW_PRIVS)"};

enum class where { anywhere, master, workers };

// Fail calls number first..last of one function (counted among the calls that
// match `fd` and `in`), or, with once_each, the first attempt of every call:
// an attempt fails unless the one before it failed with the same key (fd,
// pid), so each retry succeeds and each new call fails again.
struct rule {
    bool on = false;
    int err = 0;
    int first = 1;
    int last = 1;
    bool once_each = false;
    int fd = -1;  // -1: any descriptor
    where in = where::anywhere;
};

struct per_process {
    rule rules[c_count];
    int calls[c_count] = {};
    long last_key[c_count] = {};
    bool last_failed[c_count] = {};
    bool in_worker = false;
    // setgroups and setgid succeed without doing anything: linux-sandbox's
    // user namespace denies setgroups, and what a privilege drop does after
    // them must be reachable there too.
    bool pretend_group_changes = false;
};
per_process state;

// Counts shared by the test, its masters and their workers: made before the
// first fork, never unmapped.
struct shared_counts {
    std::atomic<int> injected[c_count];
    std::atomic<int> attempts[c_count];
};
shared_counts* shared() {
    static shared_counts* counts = [] {
        void* memory = ::mmap(nullptr, sizeof(shared_counts), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) std::abort();
        return new (memory) shared_counts{};
    }();
    return counts;
}

void reset_counts() {
    for (int i = 0; i < c_count; ++i) {
        shared()->injected[i].store(0);
        shared()->attempts[i].store(0);
    }
}

// errno to inject into this call, or 0.
int inject(call_id id, long key = 0, int fd = -1) noexcept {
    shared()->attempts[id].fetch_add(1);
    const rule& r = state.rules[id];
    if (!r.on) return 0;
    if ((r.in == where::master && state.in_worker) || (r.in == where::workers && !state.in_worker))
        return 0;
    if (r.fd >= 0 && fd != r.fd) return 0;
    bool fail;
    if (r.once_each) {
        fail = !(state.last_failed[id] && state.last_key[id] == key);
        state.last_failed[id] = fail;
        state.last_key[id] = key;
    } else {
        const int n = ++state.calls[id];
        fail = n >= r.first && n <= r.last;
    }
    if (!fail) return 0;
    shared()->injected[id].fetch_add(1);
    return r.err;
}

struct faulty_system : supervise::posix_system {
    using base = supervise::posix_system;
    static pid_t fork() noexcept {
        if (const int e = inject(c_fork)) return errno = e, -1;
        const pid_t pid = base::fork();
        if (pid == 0) {
            // A worker counts its own calls.
            const per_process inherited = state;
            state = per_process{};
            std::copy(std::begin(inherited.rules), std::end(inherited.rules), state.rules);
            state.in_worker = true;
            state.pretend_group_changes = inherited.pretend_group_changes;
        }
        return pid;
    }
    static int kill(pid_t pid, int sig) noexcept {
        if (const int e = inject(c_kill, pid)) return errno = e, -1;
        return base::kill(pid, sig);
    }
    static int pidfd_send_signal(int pidfd, int sig) noexcept {
        if (const int e = inject(c_pidfd_send_signal, pidfd, pidfd)) return errno = e, -1;
        return base::pidfd_send_signal(pidfd, sig);
    }
    static int pidfd_open(pid_t pid) noexcept {
        if (const int e = inject(c_pidfd_open, pid)) return errno = e, -1;
        return base::pidfd_open(pid);
    }
    static pid_t waitpid(pid_t pid, int* status, int flags) noexcept {
        if (const int e = inject(c_waitpid, pid)) return errno = e, -1;
        return base::waitpid(pid, status, flags);
    }
    static int sigaction(int sig, const struct ::sigaction* act, struct ::sigaction* old) noexcept {
        if (const int e = inject(c_sigaction, sig)) return errno = e, -1;
        return base::sigaction(sig, act, old);
    }
    static int thread_sigmask(int how, const sigset_t* set, sigset_t* old) noexcept {
        if (const int e = inject(c_sigmask, how)) return errno = e, -1;
        return base::thread_sigmask(how, set, old);
    }
    static int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                     const sigset_t* mask) noexcept {
        if (const int e = inject(c_ppoll)) return errno = e, -1;
        return base::ppoll(fds, n, timeout, mask);
    }
    static int sigtimedwait(const sigset_t* set, const struct timespec* timeout) noexcept {
        if (const int e = inject(c_sigtimedwait)) return errno = e, -1;
        return base::sigtimedwait(set, timeout);
    }
    static int pipe2(int fds[2], int flags) noexcept {
        if (const int e = inject(c_pipe2)) return errno = e, -1;
        return base::pipe2(fds, flags);
    }
    // Linux releases the descriptor even when close(2) reports EINTR, so the
    // injected error comes after the real close.
    static int close(int fd) noexcept {
        const int e = inject(c_close, fd, fd);
        const int rc = base::close(fd);
        if (e != 0) return errno = e, -1;
        return rc;
    }
    static int close_range(unsigned first, unsigned last) noexcept {
        if (const int e = inject(c_close_range)) return errno = e, -1;
        return base::close_range(first, last);
    }
    static ssize_t read(int fd, void* data, std::size_t size) noexcept {
        if (const int e = inject(c_read, fd, fd)) return errno = e, -1;
        return base::read(fd, data, size);
    }
    static ssize_t write(int fd, const void* data, std::size_t size) noexcept {
        if (const int e = inject(c_write, fd, fd)) return errno = e, -1;
        return base::write(fd, data, size);
    }
    static ssize_t sendto(int fd, const void* data, std::size_t size, const struct sockaddr* to,
                          socklen_t to_size) noexcept {
        if (const int e = inject(c_sendto, fd, fd)) return errno = e, -1;
        return base::sendto(fd, data, size, to, to_size);
    }
    static int dup2(int from, int to) noexcept {
        if (const int e = inject(c_dup2, to, to)) return errno = e, -1;
        return base::dup2(from, to);
    }
    static int open(const char* path, int flags) noexcept {
        if (const int e = inject(c_open)) return errno = e, -1;
        return base::open(path, flags);
    }
    static void* mmap(std::size_t size) noexcept {
        if (const int e = inject(c_mmap)) return errno = e, MAP_FAILED;
        return base::mmap(size);
    }
    static int set_parent_death_signal(int sig) noexcept {
        if (const int e = inject(c_pdeathsig)) return errno = e, -1;
        return base::set_parent_death_signal(sig);
    }
    static int socket(int domain, int type, int protocol) noexcept {
        if (const int e = inject(c_socket)) return errno = e, -1;
        return base::socket(domain, type, protocol);
    }
    static int timerfd_create(int clock, int flags) noexcept {
        if (const int e = inject(c_timerfd_create)) return errno = e, -1;
        return base::timerfd_create(clock, flags);
    }
    static int get_child_subreaper(int* on) noexcept {
        if (const int e = inject(c_get_subreaper)) return errno = e, -1;
        return base::get_child_subreaper(on);
    }
    static int setgroups(std::size_t count, const gid_t* groups) noexcept {
        if (state.pretend_group_changes) return 0;
        return base::setgroups(count, groups);
    }
    static int setgid(gid_t gid) noexcept {
        if (state.pretend_group_changes) return 0;
        return base::setgid(gid);
    }
    static int drop_bounding_capability(int cap) noexcept {
        if (const int e = inject(c_capbset_drop, cap)) return errno = e, -1;
        return base::drop_bounding_capability(cap);
    }
    static int set_no_new_privileges() noexcept {
        if (const int e = inject(c_no_new_privs)) return errno = e, -1;
        return base::set_no_new_privileges();
    }
};

// ---- the totals table ----

struct tally {
    // (fault, test case) -> failures injected
    std::map<std::pair<std::string, std::string>, int> rows;
    ~tally() {
        if (rows.empty()) return;
        std::string table = "| fault | injected | test case |\n|---|---|---|\n";
        int total = 0;
        for (const auto& [key, count] : rows) {
            table += "| " + key.first + " | " + std::to_string(count) + " | " + key.second + " |\n";
            total += count;
        }
        table += "| total | " + std::to_string(total) + " | |\n";
        std::printf("\nfailures injected in this run:\n%s", table.c_str());
        if (const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
            if (FILE* f = std::fopen((std::string(dir) + "/fault_totals.md").c_str(), "w")) {
                std::fputs(table.c_str(), f);
                std::fclose(f);
            }
        }
    }
};
tally totals;

// Records (and returns) how many `id` failures the last run injected.
int record(const std::string& fault, call_id id) {
    const int n = shared()->injected[id].load();
    totals.rows[{fault, doctest::getContextOptions()->currentTest != nullptr
                            ? doctest::getContextOptions()->currentTest->m_name
                            : "?"}] += n;
    return n;
}

// ---- the program's signal state, which run() must give back ----

struct signal_snapshot {
    struct ::sigaction actions[supervise::detail::max_signal + 1];
    sigset_t mask;
};

signal_snapshot snapshot() {
    signal_snapshot s{};
    for (int sig = 1; sig <= supervise::detail::max_signal; ++sig) {
        ::sigaction(sig, nullptr, &s.actions[sig]);  // fails (EINVAL) for libc's own: stays zero
    }
    ::pthread_sigmask(SIG_BLOCK, nullptr, &s.mask);
    return s;
}

std::string differences(const signal_snapshot& a, const signal_snapshot& b) {
    std::string diff;
    for (int sig = 1; sig <= supervise::detail::max_signal; ++sig) {
        // glibc adds SA_RESTORER (its return trampoline, 0x04000000 on
        // Linux) to every disposition it installs; it says nothing of ours.
        constexpr int restorer = 0x04000000;
        if (a.actions[sig].sa_handler != b.actions[sig].sa_handler ||
            (a.actions[sig].sa_flags & ~restorer) != (b.actions[sig].sa_flags & ~restorer)) {
            diff += " disposition of " + supervise::signal_name(sig);
        }
        if (sigismember(&a.mask, sig) != sigismember(&b.mask, sig)) {
            diff += " mask bit of " + supervise::signal_name(sig);
        }
    }
    return diff;
}

void program_handler(int) {}

int subreaper_setting() {
    int on = -1;
    ::prctl(PR_GET_CHILD_SUBREAPER, &on, 0UL, 0UL, 0UL);
    return on;
}

// A NOTIFY_SOCKET for the master, in the abstract namespace.
struct notify_socket {
    int fd = -1;
    std::string name;
    notify_socket() {
        char dir[] = "/tmp/supervise-XXXXXX";
        if (::mkdtemp(dir) == nullptr) return;
        directory = dir;
        const std::string id = "supervise-fault-" + directory.substr(15);
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un address {};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path + 1, id.data(), id.size());
        const auto size = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + id.size());
        if (::bind(fd, reinterpret_cast<struct sockaddr*>(&address), size) == 0) name = "@" + id;
    }
    ~notify_socket() {
        if (fd >= 0) ::close(fd);
        if (!directory.empty()) ::rmdir(directory.c_str());
    }
    // Every datagram that has arrived, each followed by "|".
    std::string received() {
        std::string all;
        char buf[512];
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0) return all;
            all.append(buf, static_cast<std::size_t>(n)).append("|");
        }
    }
    std::string directory;
};

// ---- one run of a pool on faulty_system ----

struct scenario {
    int workers = 2;
    std::chrono::milliseconds shutdown_timeout = 5s;
    int notify_fd = -1;
    std::string notify_socket;
    bool heartbeats = false;
    bool subreaper = false;
    int subreaper_before = 0;  // the program's own setting
    int fatal_exit_code = 125;
    bool real_epipe_stats = false;  // stats on a pipe nobody reads
    std::string user;               // options::user
    int crash_worker = -1;          // SIGKILL this worker once the pool is ready
    bool event_loop = false;        // the workers wait on ctx.events_fd() in poll(2)
    // Sets the rules, in the master, right before run().
    std::function<void()> arm;
};

struct result {
    std::optional<int> status;
    std::string log, report, stats;
    std::vector<pid_t> workers;
    int leftovers = 0;
    bool workers_gone = true;
    int fd_change = 0;
};

// The statistics descriptor of the run under way (the same number in the
// test and in the master it forks).
int stats_fd_of_run = -1;

// The master signals "pool ready" from on_ready; the test then asks it for
// statistics and a stop, as an operator would.
template <class Strategy = supervise::shutdown_all>
result run_scenario(const scenario& s) {
    reset_counts();
    pipe_pair stats;
    reader statistics(stats.read_fd);
    if (s.real_epipe_stats) stats.close_read();
    stats_fd_of_run = stats.write_fd;
    master_process master([&](int log_fd, int report_fd) {
        if (!s.notify_socket.empty()) ::setenv("NOTIFY_SOCKET", s.notify_socket.c_str(), 1);
        // A program with its own signal state for run() to give back.
        ::signal(SIGUSR2, program_handler);
        ::signal(SIGHUP, SIG_IGN);
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGWINCH);
        ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
        ::prctl(PR_SET_CHILD_SUBREAPER, static_cast<unsigned long>(s.subreaper_before), 0UL, 0UL,
                0UL);

        supervise::options opts = test_options(s.workers, log_fd, stats.write_fd);
        opts.shutdown_timeout = s.shutdown_timeout;
        opts.notify_fd = s.notify_fd;
        opts.subreaper = s.subreaper;
        opts.fatal_exit_code = s.fatal_exit_code;
        opts.user = s.user;
        if (s.heartbeats) opts.heartbeat_timeout = 5s;
        const int fd = report_fd;
        const int notify = s.notify_fd;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, Strategy,
                                         faulty_system>(
            [fd, notify, loop = s.event_loop](supervise::worker_context& ctx) {
                // Before "up": a worker whose events_fd() throws never says it.
                const int events = loop ? ctx.events_fd() : -1;
                say(fd, "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()));
                say(fd, "descriptors " + std::to_string(ctx.index()) + " " +
                            std::to_string(count_open_fds()));
                if (notify >= 0 && ::write(notify, "\n", 1) != 1) return 3;
                if (loop) {
                    struct pollfd p {
                        events, POLLIN, 0
                    };
                    while (!ctx.take_events().stop) ::poll(&p, 1, -1);
                    return 0;
                }
                while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
                }
                return 0;
            },
            opts);
        pool.on_ready([fd] { say(fd, "pool ready"); });
        pool.on_destroy("note", [fd] {
            say(fd, "hook ran");
            // Left pending for run() to discard: under the program's default
            // disposition it would kill it.
            ::kill(::getpid(), SIGUSR1);
        });
        const signal_snapshot before = snapshot();
        const int fds_before = count_open_fds();
        if (s.arm) s.arm();
        int code;
        try {
            const supervise::outcome o = pool.run();
            say(fd, "outcome " + std::to_string(o.exit_status) + " " + o.detail);
            code = o.exit_status;
        } catch (const std::exception& e) {
            say(fd, std::string("threw ") + e.what());
            code = 97;
        }
        state = per_process{};
        const std::string diff = differences(before, snapshot());
        say(fd, diff.empty() ? "signals restored" : "signals changed:" + diff);
        say(fd, "subreaper " + std::to_string(subreaper_setting()));
        say(fd, "fds " + std::to_string(count_open_fds() - fds_before));
        return code;
    });
    stats.close_write();
    master.reports.wait_until([&] {
        return master.reports.occurrences("pool ready\n") > 0 ||
               master.reports.occurrences("fds ") > 0;
    });
    if (master.reports.occurrences("pool ready\n") > 0 && s.crash_worker >= 0) {
        // A crash for the strategy to handle; what follows is up to the master.
        // "pool ready" can come before the worker's own "up" line. Never
        // kill(-1) or kill(0): that would reach every process we may signal.
        master.reports.wait_until([&] { return worker_pid(master.reports, s.crash_worker) > 1; });
        const pid_t victim = worker_pid(master.reports, s.crash_worker);
        REQUIRE(victim > 1);
        ::kill(victim, SIGKILL);
    } else if (master.reports.occurrences("pool ready\n") > 0) {
        ::kill(master.pid(), SIGUSR1);
        ::kill(master.pid(), SIGTERM);
    }
    result r;
    r.status = master.finish();
    master.reports.wait_eof();
    if (!s.real_epipe_stats) statistics.wait_eof();
    r.log = master.logs.text();
    r.report = master.reports.text();
    r.stats = statistics.text();
    for (const std::string& line : master.reports.lines_starting("up ")) {
        int index = 0;
        long pid = 0;
        if (std::sscanf(line.c_str(), "up %d %ld", &index, &pid) == 2) {
            r.workers.push_back(static_cast<pid_t>(pid));
        }
    }
    if (const auto fds = master.reports.line_with("fds "))
        r.fd_change = std::atoi(fds->c_str() + 4);
    r.leftovers = reap_leftovers();
    for (pid_t pid : r.workers) {
        if (pid <= 1 || ::kill(pid, 0) == 0 || errno != ESRCH) r.workers_gone = false;
    }
    return r;
}

// What every run must show, whatever was injected.
void check_clean(const result& r, int subreaper_before = 0) {
    INFO(r.log);
    INFO(r.report);
    CHECK(r.report.find("signals restored\n") != std::string::npos);
    CHECK(r.report.find("subreaper " + std::to_string(subreaper_before) + "\n") !=
          std::string::npos);
    CHECK(r.fd_change == 0);
    CHECK(r.leftovers == 0);
    CHECK(r.workers_gone);
}

// A run that started, served, was asked to stop and stopped cleanly.
void check_full_life(const result& r, int workers) {
    INFO(r.log);
    INFO(r.report);
    CHECK_MESSAGE(exited_with(r.status, 0), describe_status(r.status));
    CHECK(r.report.find("pool ready\n") != std::string::npos);
    CHECK(r.report.find("outcome 0 SIGTERM received\n") != std::string::npos);
    CHECK(r.report.find("hook ran\n") != std::string::npos);
    CHECK(static_cast<int>(r.workers.size()) == workers);
    CHECK(r.log.find("started " + std::to_string(workers) + " workers") != std::string::npos);
    check_clean(r);
}

// A run that could not start: the failure named, the hooks run, nothing left.
void check_failed_start(const result& r, const std::string& detail) {
    INFO(r.log);
    INFO(r.report);
    CHECK_MESSAGE(exited_with(r.status, 1), describe_status(r.status));
    CHECK(r.report.find("outcome 1 " + detail) != std::string::npos);
    CHECK(r.report.find("hook ran\n") != std::string::npos);
    CHECK(r.report.find("pool ready\n") == std::string::npos);
    check_clean(r);
}

// run() threw before anything started: the error names the call, nothing
// was forked, the program's state is as it was.
void check_threw(const result& r, const std::string& what, int subreaper_before = 0) {
    INFO(r.log);
    INFO(r.report);
    CHECK_MESSAGE(exited_with(r.status, 97), describe_status(r.status));
    CHECK(r.report.find("threw " + what) != std::string::npos);
    CHECK(shared()->attempts[c_fork].load() == 0);
    CHECK(r.report.find("hook ran\n") == std::string::npos);
    check_clean(r, subreaper_before);
}

std::function<void()> failing(call_id id, int err, int first = 1, int last = 1,
                              where in = where::anywhere) {
    return [=] {
        rule& r = state.rules[id];
        r.on = true;
        r.err = err;
        r.first = first;
        r.last = last;
        r.in = in;
    };
}

// The `nth` call of `id` in the master fails with `err`, that call only:
// run() throws `what` (check_threw), and the fault counts once, as `fault`.
// With `subreaper_before` 1 the program had the child-subreaper setting on
// and asks for subreaper mode: the setting must survive the failure.
void check_run_throws(call_id id, int err, int nth, const std::string& what,
                      const std::string& fault, int subreaper_before = 0) {
    scenario s;
    s.subreaper = subreaper_before != 0;
    s.subreaper_before = subreaper_before;
    s.arm = failing(id, err, nth, nth);
    check_threw(run_scenario(s), what, subreaper_before);
    CHECK_MESSAGE(record(fault, id) == 1, fault);
}

}  // namespace

TEST_CASE("fork fails with EAGAIN or ENOMEM at the first, a middle and the last worker") {
    for (const int err : {EAGAIN, ENOMEM}) {
        for (const int at : {1, 3, 5}) {
            CAPTURE(err);
            CAPTURE(at);
            scenario s;
            s.workers = 5;
            s.arm = failing(c_fork, err, at, at);
            const result r = run_scenario(s);
            check_failed_start(r, "cannot start worker " + std::to_string(at - 1) +
                                      ": fork: " + std::strerror(err));
            // Those started before the failure ran, and were stopped and reaped.
            CHECK(static_cast<int>(r.workers.size()) == at - 1);
            CHECK(record(std::string(err == EAGAIN ? "EAGAIN" : "ENOMEM") + " on fork", c_fork) ==
                  1);
        }
    }
}

TEST_CASE("fork fails when a crashed worker is restarted: the pool stops with worker_failed") {
    for (const int err : {EAGAIN, ENOMEM}) {
        CAPTURE(err);
        scenario s;
        s.workers = 3;
        s.crash_worker = 1;
        s.arm = failing(c_fork, err, 4, 4);  // the first restart
        const result r = run_scenario<supervise::one_for_one>(s);
        INFO(r.log);
        INFO(r.report);
        CHECK_MESSAGE(exited_with(r.status, 1), describe_status(r.status));
        CHECK(r.report.find("pool ready\n") != std::string::npos);
        CHECK(r.report.find("outcome 1 cannot start worker 1: fork: " +
                            std::string(std::strerror(err))) != std::string::npos);
        CHECK(r.report.find("hook ran\n") != std::string::npos);
        CHECK(r.workers.size() == 3);
        check_clean(r);
        CHECK(record(std::string(err == EAGAIN ? "EAGAIN" : "ENOMEM") + " on fork (restart)",
                     c_fork) == 1);
    }
}

TEST_CASE("EINTR on the first attempt of every call where it can appear") {
    notify_socket systemd;
    REQUIRE(!systemd.name.empty());
    for (const call_id id : {c_waitpid, c_ppoll, c_sigtimedwait, c_read, c_write, c_sendto, c_dup2,
                             c_close, c_open}) {
        CAPTURE(call_names[id]);
        scenario s;
        s.workers = 3;
        s.notify_fd = 50;  // dup2 in each worker, the master reads the pipes
        s.notify_socket = systemd.name;
        s.arm = [id] {
            rule& r = state.rules[id];
            r.on = true;
            r.err = EINTR;
            r.once_each = true;
        };
        const result r = run_scenario(s);
        check_full_life(r, 3);
        CHECK(r.stats.find("statistics: master pid") != std::string::npos);
        const std::string datagrams = systemd.received();
        CHECK(datagrams.find("READY=1\nMAINPID=") != std::string::npos);
        CHECK(record(std::string("EINTR on ") + call_names[id], id) > 0);
    }
}

TEST_CASE("ESRCH from the signal sends of a stop: the workers are still stopped and reaped") {
    for (const call_id id : {c_pidfd_send_signal, c_kill}) {
        CAPTURE(call_names[id]);
        scenario s;
        s.workers = 2;
        // The SIGKILL step is the behaviour under test: keep it short.
        s.shutdown_timeout = 200ms;
        s.arm = [id] {
            // Without pidfds the pool signals plain pids.
            if (id == c_kill) failing(c_pidfd_open, ENOSYS, 1, 1000)();
            failing(id, ESRCH, 1, 2)();  // the two SIGTERMs
        };
        const result r = run_scenario(s);
        check_full_life(r, 2);
        CHECK(r.log.find("sending SIGKILL") != std::string::npos);
        CHECK(r.log.find("killed by signal 9") != std::string::npos);
        CHECK(record(std::string("ESRCH on ") + call_names[id], id) == 2);
    }
}

TEST_CASE("pidfd_open fails: the pool falls back to plain pids") {
    scenario s;
    s.workers = 3;
    s.arm = failing(c_pidfd_open, ENOSYS, 1, 1000);
    const result r = run_scenario(s);
    check_full_life(r, 3);
    CHECK(r.log.find("exited with status 0") != std::string::npos);
    CHECK(shared()->attempts[c_kill].load() >= 3);
    CHECK(record("ENOSYS on pidfd_open", c_pidfd_open) == 3);
}

// A worker's descriptors beyond the program's own: the same for every worker
// however many siblings were forked before it, so none of the master's
// per-worker descriptors (pidfds, start-up pipes) was left open in it.
std::set<std::string> fd_counts(const result& r) {
    std::set<std::string> counts;
    std::size_t at = 0;
    while ((at = r.report.find("descriptors ", at)) != std::string::npos) {
        const std::size_t space = r.report.find(' ', at + 12);
        const std::size_t end = r.report.find('\n', at);
        counts.insert(r.report.substr(space + 1, end - space - 1));
        at = end;
    }
    return counts;
}

TEST_CASE("close_range fails: each worker closes its siblings' descriptors one by one") {
    // notify_fd gives every worker a start-up pipe, so the master holds two
    // descriptors per worker.
    for (const bool fail : {false, true}) {
        CAPTURE(fail);
        scenario s;
        s.workers = 5;
        s.notify_fd = 50;
        if (fail) s.arm = failing(c_close_range, ENOSYS, 1, 1000, where::workers);
        const result r = run_scenario(s);
        check_full_life(r, 5);
        CHECK(fd_counts(r).size() == 1);
        // Worker 1's siblings' descriptors are always one block (worker 0's);
        // later ones may find a hole (a start-up pipe closed once its worker
        // was ready) and close one by one without trying close_range.
        CHECK(shared()->attempts[c_close_range].load() >= 1);
        if (fail) CHECK(record("ENOSYS on close_range", c_close_range) >= 1);
    }
}

TEST_CASE("subreaper mode without /proc's children file: the stop says it cannot list orphans") {
    scenario s;
    s.subreaper = true;
    // The master's first open is the thread count; from the second on, the
    // children file (at the start of run() and when the pool stops).
    s.arm = failing(c_open, ENOENT, 2, 1000, where::master);
    const result r = run_scenario(s);
    check_full_life(r, 2);
    CHECK(r.log.find("cannot list orphans to stop them") != std::string::npos);
    CHECK(record("ENOENT on open (children file)", c_open) >= 2);
}

TEST_CASE("EPIPE and EAGAIN on the statistics output do not stop the pool") {
    SUBCASE("EAGAIN") {
        scenario s;
        // Every write to the statistics descriptor, and only there.
        s.arm = [] {
            failing(c_write, EAGAIN, 1, 1000, where::master)();
            state.rules[c_write].fd = stats_fd_of_run;
        };
        const result r = run_scenario(s);
        check_full_life(r, 2);
        // The lines were dropped, never retried forever, never fatal.
        CHECK(r.stats.find("statistics: master pid") == std::string::npos);
        CHECK(record("EAGAIN on write (statistics)", c_write) > 0);
    }
    SUBCASE("EPIPE, from a real pipe without a reader") {
        scenario s;
        s.real_epipe_stats = true;
        const result r = run_scenario(s);
        check_full_life(r, 2);
        CHECK(r.log.find("SIGPIPE") == std::string::npos);
        totals.rows[{"EPIPE (and SIGPIPE) on write (statistics)",
                     doctest::getContextOptions()->currentTest->m_name}] += 1;
    }
}

TEST_CASE("EAGAIN on a worker's start-up record: waited out and sent, not dropped") {
    scenario s;
    s.workers = 3;
    // The first write of each worker is its start-up record.
    s.arm = failing(c_write, EAGAIN, 1, 1, where::workers);
    const result r = run_scenario(s);
    check_full_life(r, 3);
    CHECK(record("EAGAIN on write (start-up record)", c_write) == 3);
}

TEST_CASE("ECONNREFUSED and EAGAIN on every systemd notification do not stop the pool") {
    notify_socket systemd;
    REQUIRE(!systemd.name.empty());
    for (const int err : {ECONNREFUSED, EAGAIN}) {
        CAPTURE(err);
        scenario s;
        s.notify_socket = systemd.name;
        s.arm = failing(c_sendto, err, 1, 1000);
        const result r = run_scenario(s);
        check_full_life(r, 2);
        CHECK(systemd.received().empty());
        CHECK(record(std::string(err == EAGAIN ? "EAGAIN" : "ECONNREFUSED") + " on sendto",
                     c_sendto) >= 2);
    }
}

TEST_CASE("socket for systemd fails: logged, the pool runs without notifications") {
    notify_socket systemd;
    REQUIRE(!systemd.name.empty());
    scenario s;
    s.notify_socket = systemd.name;
    s.arm = failing(c_socket, EMFILE);
    const result r = run_scenario(s);
    check_full_life(r, 2);
    CHECK(r.log.find("systemd notifications off: socket: Too many open files") !=
          std::string::npos);
    CHECK(systemd.received().empty());
    CHECK(record("EMFILE on socket (systemd)", c_socket) == 1);
}

TEST_CASE("mmap of the heartbeat table fails: run() throws, nothing started") {
    scenario s;
    s.heartbeats = true;
    s.subreaper = true;  // set before the mmap: must be put back
    s.arm = failing(c_mmap, ENOMEM);
    const result r = run_scenario(s);
    check_threw(r, "supervise: mmap (heartbeats): Cannot allocate memory");
    CHECK(record("ENOMEM on mmap (heartbeat table)", c_mmap) == 1);
}

TEST_CASE("mmap of the statistics page fails: run() throws, nothing started") {
    SUBCASE("the only mapping (watchdog off)") {
        scenario s;
        s.subreaper = true;  // set before the mmap: must be put back
        s.arm = failing(c_mmap, ENOMEM);
        const result r = run_scenario(s);
        check_threw(r, "supervise: mmap (statistics page): Cannot allocate memory");
        CHECK(record("ENOMEM on mmap (statistics page)", c_mmap) == 1);
    }
    SUBCASE("after the heartbeat table was mapped") {
        scenario s;
        s.heartbeats = true;
        s.arm = failing(c_mmap, ENOMEM, 2, 2);
        const result r = run_scenario(s);
        check_threw(r, "supervise: mmap (statistics page): Cannot allocate memory");
        CHECK(record("ENOMEM on mmap (statistics page, after the heartbeats)", c_mmap) == 1);
    }
}

TEST_CASE("pipe2 fails: the master's pipes, then a worker's notify pipe") {
    SUBCASE("the self-pipe") {
        check_run_throws(c_pipe2, EMFILE, 1, "supervise: pipe2: Too many open files",
                         "EMFILE on pipe2 (self-pipe)");
    }
    SUBCASE("the start-up pipe, after the self-pipe was made") {
        check_run_throws(c_pipe2, EMFILE, 2, "supervise: pipe2: Too many open files",
                         "EMFILE on pipe2 (start-up pipe)");
    }
    SUBCASE("the notify_fd pipe of the second worker") {
        scenario s;
        s.workers = 3;
        s.notify_fd = 50;
        s.arm = failing(c_pipe2, EMFILE, 4, 4);
        const result r = run_scenario(s);
        check_failed_start(r, "cannot start worker 1: pipe2: Too many open files");
        CHECK(r.workers.size() == 1);
        CHECK(record("EMFILE on pipe2 (notify_fd pipe)", c_pipe2) == 1);
    }
}

TEST_CASE("events_fd() cannot be made in a worker: the worker fails with the reason") {
    // Each worker's first pipe2 is events_fd()'s; with the watchdog on, its
    // timer follows. Both fail the way a worker out of descriptors would.
    for (const call_id id : {c_pipe2, c_timerfd_create}) {
        CAPTURE(call_names[id]);
        scenario s;
        s.event_loop = true;
        s.heartbeats = id == c_timerfd_create;
        s.arm = failing(id, EMFILE, 1, 1, where::workers);
        const result r = run_scenario(s);
        INFO(r.log);
        // The pool is ready before the workers' code runs, so the test's
        // SIGTERM may come first: the failure is in the log either way.
        CHECK(r.log.find(std::string("worker 0 threw: supervise: worker_context::events_fd(): ") +
                         (id == c_pipe2 ? "pipe2" : "timerfd_create") +
                         ": Too many open files") != std::string::npos);
        CHECK(r.log.find("worker 0 (pid") != std::string::npos);
        CHECK(r.log.find("exited with status 1") != std::string::npos);
        CHECK(r.workers.empty());
        check_clean(r);
        CHECK(record(std::string("EMFILE on ") + call_names[id] + " (events_fd)", id) >= 1);
    }
    SUBCASE("and where nothing fails, the same workers stop on SIGTERM") {
        scenario s;
        s.event_loop = true;
        s.heartbeats = true;
        const result r = run_scenario(s);
        INFO(r.log);
        CHECK_MESSAGE(exited_with(r.status, 0), describe_status(r.status));
        CHECK(r.workers.size() == 2);
        check_clean(r);
    }
}

TEST_CASE("sigaction fails in the master: run() throws and puts back what it changed") {
    check_run_throws(c_sigaction, EINVAL, 3, "supervise: sigaction(SIGUSR1): Invalid argument",
                     "EINVAL on sigaction (master)", 1);
}

TEST_CASE("pthread_sigmask fails in the master: run() throws") {
    check_run_throws(c_sigmask, EINVAL, 1, "supervise: pthread_sigmask: Invalid argument",
                     "EINVAL on pthread_sigmask (master)");
}

TEST_CASE("the child-subreaper setting cannot be read: run() throws, the setting is kept") {
    check_run_throws(c_get_subreaper, EINVAL, 1,
                     "supervise: prctl(PR_GET_CHILD_SUBREAPER): Invalid argument",
                     "EINVAL on prctl(PR_GET_CHILD_SUBREAPER)", 1);
}

TEST_CASE("a pool without subreaper mode leaves the program's own setting as it was") {
    scenario s;
    s.subreaper_before = 1;  // the program is a subreaper; the pool is not asked to be one
    const result r = run_scenario(s);
    CHECK_MESSAGE(exited_with(r.status, 0), describe_status(r.status));
    check_clean(r, 1);
}

TEST_CASE("a worker whose set-up fails exits with the fatal status and the pool stops") {
    for (const call_id id : {c_sigaction, c_sigmask, c_pdeathsig, c_dup2}) {
        CAPTURE(call_names[id]);
        scenario s;
        s.workers = 2;
        if (id == c_dup2) s.notify_fd = 50;
        s.arm = failing(id, id == c_dup2 ? EBADF : EINVAL, 1, 1, where::workers);
        const result r = run_scenario(s);
        INFO(r.log);
        CHECK_MESSAGE(exited_with(r.status, 1), describe_status(r.status));
        CHECK(r.log.find(std::string(": ") + call_names[id] + ": ") != std::string::npos);
        CHECK(r.log.find("exited with status 125") != std::string::npos);
        // The worker's code never ran.
        CHECK(r.workers.empty());
        CHECK(r.report.find("hook ran\n") != std::string::npos);
        CHECK(r.report.find("outcome 1 ") != std::string::npos);
        check_clean(r);
        CHECK(record(std::string(id == c_dup2 ? "EBADF" : "EINVAL") + " on " + call_names[id] +
                         " (worker)",
                     id) >= 1);
    }
}

TEST_CASE(
    "a worker that cannot give up new privileges (bounding set, no_new_privs) exits before its "
    "code runs, and the pool stops") {
    if (::geteuid() != 0) {
        MESSAGE("a privilege drop needs a master running as root; skipped");
        return;
    }
    struct fault {
        call_id id;
        int nth;  // which call of it fails
        std::string logged;
    };
    const fault faults[] = {
        {c_capbset_drop, 1, "prctl(PR_CAPBSET_DROP) of capability 0: Operation not permitted"},
        {c_capbset_drop, 13, "prctl(PR_CAPBSET_DROP) of capability 12: Operation not permitted"},
        {c_no_new_privs, 1, "prctl(PR_SET_NO_NEW_PRIVS): Operation not permitted"},
    };
    for (const fault& f : faults) {
        CAPTURE(f.logged);
        scenario s;
        s.workers = 2;
        s.user = "nobody";
        s.arm = [&f] {
            failing(f.id, EPERM, f.nth, f.nth, where::workers)();
            state.pretend_group_changes = true;
        };
        const result r = run_scenario(s);
        INFO(r.log);
        CHECK_MESSAGE(exited_with(r.status, 1), describe_status(r.status));
        CHECK(r.log.find("worker 0: cannot drop privileges to 'nobody': " + f.logged) !=
              std::string::npos);
        CHECK(r.log.find("exited with status 125") != std::string::npos);
        // The worker's code never ran, as root or otherwise.
        CHECK(r.workers.empty());
        CHECK(r.report.find("hook ran\n") != std::string::npos);
        CHECK(r.report.find("outcome 1 ") != std::string::npos);
        check_clean(r);
        CHECK(record(std::string("EPERM on ") + call_names[f.id] + " (worker)", f.id) >= 1);
    }
}
