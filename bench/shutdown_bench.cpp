// shutdown_bench: times how fast a supervisor's whole process tree goes away,
// and how fast it replaces a worker that died.
//
// One driver for every peer: each "side" is a command that starts a master
// with its workers. For each repetition and each side in turn (interleaved:
// A, B, A, B, ...) the driver
//   1. forks and execs the side's command in a new process group,
//   2. waits until the tree is ready (see below), then lets it settle,
//   3. at t0 either sends SIGTERM to the master (--scenario term) or SIGKILL
//      to one worker (--scenario kill and respawn; --victim says which: the
//      master's first-forked child, or the middle one in fork order),
//   4. term and kill: records when the master exited (its pidfd became
//      readable) and when the whole tree was gone: the driver is a child
//      subreaper (PR_SET_CHILD_SUBREAPER), so any process the master leaves
//      behind is re-parented to it; it reaps everything until waitpid() says
//      ECHILD.
//      respawn: records when the replacement said it is ready (see below),
//      checks that the tree is whole again (the victim gone, exactly one new
//      child of the master, every process sleeping), then sends SIGTERM to
//      the master and waits, bounded, until the tree is gone before the next
//      trial. Every trial starts a fresh tree, so every kill is the slot's
//      first death (no back-off, no restart intensity carried over).
//      burst (--scenario burst --burst K): SIGKILL to K workers at t0, one
//      kill() after the other (spread evenly over the fork order: every
//      N/K-th child; K = N is every worker), then as respawn, with K
//      replacement bytes instead of one: records the first and the last
//      (respawn_first_us, respawn_byte_us: all K replacements running) and
//      how long the K kill() calls took (kills_us); the tree is whole again
//      when K new children replace the K victims.
//
// Ready means, in this order and all within --ready-timeout-ms:
//   - if --ready-fd N: the side wrote --ready-bytes bytes (default 1) to its
//     descriptor N (a pipe); or, if --ready-fifo PATH: that many bytes came
//     through the FIFO at PATH, which the driver creates for each trial and
//     holds open (for processes that are started by a supervisor of commands
//     and so cannot inherit a descriptor from the driver);
//   - if --probe-sip-udp HOST:PORT: a SIP OPTIONS request sent there got a
//     "SIP/2.0 200" answer;
//   - the tree (master included) has exactly --procs processes and every one
//     of them is sleeping (state S in /proc/PID/stat), i.e. idle.
// The time from the fork of the master to that moment is reported as
// ready_us (the start-up benchmark). --settle-ms on a side overrides the
// run's settle time for that side.
//
// The replacement is ready (respawn), within --stop-timeout-ms of t0, when
// every signal the side offers has arrived:
//   - --respawn-byte: one more byte on its --ready-fd pipe (written by the new
//     worker itself);
//   - --respawn-line TEXT: a line containing TEXT on its --log-pipe-fd pipe
//     (written by the master, e.g. supervise's "is back, generation 1").
// Each is timed separately (respawn_byte_us, respawn_line_us).
//
// When the master is reaped, wait4() gives the rusage of its whole tree (the
// master and every child it reaped itself): tree_cpu_us (user + system) and
// tree_minflt (minor page faults) over the tree's life, start to end, plus
// the orphans the driver reaped. Both are about the tree only: the driver's
// own work (its /proc scans) is not in them. ready_cpu_us is the tree's CPU
// time when it was found ready (the sum of /proc/PID/schedstat over its
// processes): the start-up's share of tree_cpu_us.
//
// Output: one tab-separated line per measured trial on stdout (header first;
// "-" where a column does not apply to the scenario), a short summary on
// stderr. Each line also says how busy the whole machine was
// (busy_before_pct) during the settle time before t0, while the tree was
// idle: a high value means another program was competing for the CPUs. With
// --quiet-pct P the driver keeps settling until a settle period finds the
// machine at most P % busy (bounded by --quiet-wait-ms); quiet_waits counts
// the extra periods. --nice N runs the driver and every side at that
// scheduling priority (a negative N needs root), which shields the measured
// trees from other programs equally for every side.
//
// Every wait is bounded; on any error or on SIGINT/SIGTERM/SIGHUP every
// descendant is SIGKILLed and reaped before the driver exits, so no process
// outlives a run.
//
//   shutdown_bench --scenario term --reps 30
//       --side ours --procs 15 --ready-fd 3 --cmd ./idle_pool --workers 14 --ready-fd 3 --end
//       --side kamailio --procs 15 --probe-sip-udp 127.0.0.1:5099 --cmd kamailio -DD -E ... --end
//   shutdown_bench --scenario respawn --victim middle --reps 30
//       --side ours --procs 5 --ready-fd 3 --respawn-byte --log-pipe-fd 4
//            --respawn-line "is back, generation 1"
//            --cmd ./idle_pool --workers 4 --ready-fd 3 --strategy one_for_one --log-fd 4 --end
//       --side floor --procs 5 --ready-fd 3 --respawn-byte
//            --cmd ./floor_pool --workers 4 --ready-fd 3 --respawn --end
// (one command line each; bench/run.py builds the real ones).

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

enum class scenario { term, kill, respawn, burst };

struct side {
    std::string name;
    int procs = 0;                  // processes expected in the tree, master included
    int ready_fd = -1;              // descriptor number the side writes its ready byte to
    std::string ready_fifo;         // or: a FIFO the side's processes open by name and write to
    int ready_bytes = 1;            // bytes that say the whole tree is up (one per worker, say)
    int settle_ms = -1;             // this side's settle time; -1: the run's --settle-ms
    std::string probe;              // HOST:PORT for a SIP OPTIONS probe over UDP
    std::string log = "/dev/null";  // stdout and stderr of the whole tree
    int log_pipe_fd = -1;           // descriptor number that is a pipe the driver reads
    bool respawn_byte = false;      // respawn: the replacement writes a byte to ready_fd
    std::string respawn_line;       // respawn: the master logs a line with this on log_pipe_fd
    std::vector<std::string> argv;
};

struct config {
    scenario what = scenario::term;
    bool victim_middle = false;  // kill/respawn: the middle child in fork order, not the first
    int burst = 0;               // burst: how many workers are SIGKILLed at t0
    int reps = 10;
    int warmup = 1;
    int settle_ms = 100;
    int ready_timeout_ms = 15000;
    int stop_timeout_ms = 10000;
    int max_failures = 3;
    int quiet_pct = -1;  // wait for the machine to be at most this busy before t0; -1: do not
    int quiet_wait_ms = 30000;
    bool set_nice = false;
    int nice = 0;  // scheduling priority of the driver and every side (setpriority)
    std::vector<side> sides;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(
        stderr,
        "shutdown_bench: %s\n"
        "usage: shutdown_bench --scenario term|kill|respawn|burst --reps N [--warmup N]\n"
        "           [--victim first|middle] [--burst K] [--settle-ms N]\n"
        "           [--ready-timeout-ms N] [--stop-timeout-ms N] [--max-failures N]\n"
        "           [--quiet-pct P [--quiet-wait-ms N]] [--nice N]\n"
        "           --side NAME --procs N [--ready-fd N | --ready-fifo PATH] [--ready-bytes K]\n"
        "                [--probe-sip-udp HOST:PORT] [--settle-ms N]\n"
        "                [--log FILE] [--log-pipe-fd N] [--respawn-byte]\n"
        "                [--respawn-line TEXT] --cmd PROGRAM [ARG...] --end\n"
        "           [--side ...]\n",
        why.c_str());
    std::exit(2);
}

int parse_int(const char* text, int low, int high, const char* what) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < low || value > high) {
        usage(std::string("bad value for ") + what + ": " + text);
    }
    return static_cast<int>(value);
}

config parse_args(int argc, char** argv) {
    config cfg;
    int i = 1;
    auto next = [&](const char* what) -> const char* {
        if (i + 1 >= argc) usage(std::string(what) + " needs a value");
        return argv[++i];
    };
    for (; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--scenario") {
            const std::string v = next("--scenario");
            if (v == "term") {
                cfg.what = scenario::term;
            } else if (v == "kill") {
                cfg.what = scenario::kill;
            } else if (v == "respawn") {
                cfg.what = scenario::respawn;
            } else if (v == "burst") {
                cfg.what = scenario::burst;
            } else {
                usage("--scenario is term, kill, respawn or burst");
            }
        } else if (arg == "--burst") {
            cfg.burst = parse_int(next("--burst"), 1, 100000, "--burst");
        } else if (arg == "--victim") {
            const std::string v = next("--victim");
            if (v != "first" && v != "middle") usage("--victim is first or middle");
            cfg.victim_middle = v == "middle";
        } else if (arg == "--reps") {
            cfg.reps = parse_int(next("--reps"), 1, 100000, "--reps");
        } else if (arg == "--warmup") {
            cfg.warmup = parse_int(next("--warmup"), 0, 1000, "--warmup");
        } else if (arg == "--settle-ms") {
            cfg.settle_ms = parse_int(next("--settle-ms"), 0, 60000, "--settle-ms");
        } else if (arg == "--ready-timeout-ms") {
            cfg.ready_timeout_ms = parse_int(next("--ready-timeout-ms"), 1, 600000, arg.c_str());
        } else if (arg == "--stop-timeout-ms") {
            cfg.stop_timeout_ms = parse_int(next("--stop-timeout-ms"), 1, 600000, arg.c_str());
        } else if (arg == "--nice") {
            cfg.set_nice = true;
            cfg.nice = parse_int(next("--nice"), -20, 19, arg.c_str());
        } else if (arg == "--quiet-pct") {
            cfg.quiet_pct = parse_int(next("--quiet-pct"), 0, 100, arg.c_str());
        } else if (arg == "--quiet-wait-ms") {
            cfg.quiet_wait_ms = parse_int(next("--quiet-wait-ms"), 0, 3600000, arg.c_str());
        } else if (arg == "--max-failures") {
            cfg.max_failures = parse_int(next("--max-failures"), 1, 100000, arg.c_str());
        } else if (arg == "--side") {
            side s;
            s.name = next("--side");
            for (++i; i < argc; ++i) {
                const std::string opt = argv[i];
                if (opt == "--procs") {
                    s.procs = parse_int(next("--procs"), 1, 100000, "--procs");
                } else if (opt == "--ready-fd") {
                    s.ready_fd = parse_int(next("--ready-fd"), 3, 1000, "--ready-fd");
                } else if (opt == "--ready-fifo") {
                    s.ready_fifo = next("--ready-fifo");
                } else if (opt == "--ready-bytes") {
                    s.ready_bytes = parse_int(next("--ready-bytes"), 1, 100000, "--ready-bytes");
                } else if (opt == "--settle-ms") {
                    s.settle_ms = parse_int(next("--settle-ms"), 0, 60000, "--settle-ms");
                } else if (opt == "--probe-sip-udp") {
                    s.probe = next("--probe-sip-udp");
                } else if (opt == "--log") {
                    s.log = next("--log");
                } else if (opt == "--log-pipe-fd") {
                    s.log_pipe_fd = parse_int(next("--log-pipe-fd"), 1, 1000, "--log-pipe-fd");
                } else if (opt == "--respawn-byte") {
                    s.respawn_byte = true;
                } else if (opt == "--respawn-line") {
                    s.respawn_line = next("--respawn-line");
                } else if (opt == "--cmd") {
                    for (++i; i < argc && std::string(argv[i]) != "--end"; ++i) {
                        s.argv.push_back(argv[i]);
                    }
                    if (i >= argc) usage("--cmd of side " + s.name + " is not closed by --end");
                    break;
                } else {
                    usage("unknown side option " + opt);
                }
            }
            if (s.procs == 0) usage("side " + s.name + " needs --procs");
            if (s.argv.empty()) usage("side " + s.name + " needs --cmd PROGRAM ... --end");
            if (s.log_pipe_fd >= 0 && s.log_pipe_fd == s.ready_fd) {
                usage("side " + s.name + ": --log-pipe-fd and --ready-fd must differ");
            }
            if (s.ready_fd >= 0 && !s.ready_fifo.empty()) {
                usage("side " + s.name + ": --ready-fd and --ready-fifo exclude each other");
            }
            if (s.respawn_byte && s.ready_fd < 0 && s.ready_fifo.empty()) {
                usage("side " + s.name + ": --respawn-byte needs --ready-fd or --ready-fifo");
            }
            if (!s.respawn_line.empty() && s.log_pipe_fd < 0) {
                usage("side " + s.name + ": --respawn-line needs --log-pipe-fd");
            }
            cfg.sides.push_back(std::move(s));
        } else {
            usage("unknown argument " + arg);
        }
    }
    if (cfg.sides.empty()) usage("at least one --side is needed");
    if (cfg.what == scenario::burst) {
        if (cfg.burst < 1) usage("--scenario burst needs --burst K");
        for (const side& s : cfg.sides) {
            if (!s.respawn_byte || s.ready_fd < 0) {
                usage("side " + s.name + ": --scenario burst needs --ready-fd and --respawn-byte");
            }
            if (s.procs - 1 < cfg.burst) {
                usage("side " + s.name + ": --burst is more than its workers");
            }
        }
    }
    if (cfg.what == scenario::respawn) {
        for (const side& s : cfg.sides) {
            if (!s.respawn_byte && s.respawn_line.empty()) {
                usage("side " + s.name + ": --scenario respawn needs --respawn-byte and/or "
                      "--respawn-line");
            }
        }
    }
    return cfg;
}

// ---------------------------------------------------------------------------
// Time, signals, processes
// ---------------------------------------------------------------------------

std::int64_t now_ns() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

constexpr std::int64_t ms_to_ns(std::int64_t ms) { return ms * 1000000; }

void sleep_ns(std::int64_t ns) {
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// SIGCHLD and the signals that end the run arrive through one signalfd, so
// every wait of the driver is a poll() that also sees them.
int g_sigfd = -1;
bool g_interrupted = false;

void setup_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
        std::perror("shutdown_bench: sigprocmask");
        std::exit(1);
    }
    g_sigfd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g_sigfd < 0) {
        std::perror("shutdown_bench: signalfd");
        std::exit(1);
    }
}

void drain_signals() {
    struct signalfd_siginfo info {};
    while (::read(g_sigfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo != SIGCHLD) g_interrupted = true;
    }
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

struct proc_entry {
    pid_t pid = 0;
    pid_t ppid = 0;
    char state = '?';
    unsigned long long start = 0;  // clock ticks after boot
};

// Every process in /proc, read from /proc/PID/stat. A process that vanishes
// while the directory is read is simply not listed.
std::vector<proc_entry> read_proc_table() {
    std::vector<proc_entry> table;
    DIR* dir = ::opendir("/proc");
    if (dir == nullptr) return table;
    while (const struct dirent* entry = ::readdir(dir)) {
        const char* name = entry->d_name;
        if (name[0] < '0' || name[0] > '9') continue;
        const std::string path = std::string("/proc/") + name + "/stat";
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[1024];
        const ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        // "pid (comm) state ppid ..." and comm may contain anything: parse
        // from the last ')'.
        const char* p = std::strrchr(buf, ')');
        if (p == nullptr) continue;
        proc_entry e;
        e.pid = static_cast<pid_t>(std::atol(name));
        char* cursor = const_cast<char*>(p + 1);
        // Fields after comm: 3 state, 4 ppid, ..., 22 starttime.
        for (int field = 3; field <= 22; ++field) {
            while (*cursor == ' ') ++cursor;
            if (*cursor == '\0') break;
            char* end = cursor;
            while (*end != ' ' && *end != '\0') ++end;
            if (field == 3) e.state = *cursor;
            if (field == 4) e.ppid = static_cast<pid_t>(std::strtol(cursor, nullptr, 10));
            if (field == 22) e.start = std::strtoull(cursor, nullptr, 10);
            cursor = end;
        }
        table.push_back(e);
    }
    ::closedir(dir);
    return table;
}

// All processes below root (root itself not included), in /proc order.
std::vector<proc_entry> descendants(pid_t root, const std::vector<proc_entry>& table) {
    std::multimap<pid_t, const proc_entry*> by_parent;
    for (const proc_entry& e : table) by_parent.emplace(e.ppid, &e);
    std::vector<proc_entry> out;
    std::vector<pid_t> todo{root};
    while (!todo.empty()) {
        const pid_t parent = todo.back();
        todo.pop_back();
        auto range = by_parent.equal_range(parent);
        for (auto it = range.first; it != range.second; ++it) {
            out.push_back(*it->second);
            todo.push_back(it->second->pid);
        }
    }
    return out;
}

// Reaps whatever has exited; true once the driver has no child left.
bool reap_available() {
    for (;;) {
        const pid_t rc = ::waitpid(-1, nullptr, WNOHANG);
        if (rc > 0) continue;
        return rc < 0 && errno == ECHILD;
    }
}

// The emergency brake: SIGKILL every descendant of the driver (re-parented
// orphans included, thanks to the subreaper flag) until none is left.
bool kill_everything() {
    const std::int64_t deadline = now_ns() + ms_to_ns(5000);
    while (now_ns() < deadline) {
        const std::vector<proc_entry> mine = descendants(::getpid(), read_proc_table());
        for (const proc_entry& e : mine) ::kill(e.pid, SIGKILL);
        if (reap_available()) return true;
        sleep_ns(ms_to_ns(5));
    }
    std::fprintf(stderr, "shutdown_bench: could not reap every descendant within 5 s\n");
    return false;
}

// Busy and total CPU time of the whole machine so far, in clock ticks, from the
// first line of /proc/stat.
struct cpu_ticks {
    unsigned long long busy = 0;
    unsigned long long total = 0;
};

cpu_ticks read_cpu_ticks() {
    cpu_ticks t;
    FILE* f = std::fopen("/proc/stat", "re");
    if (f == nullptr) return t;
    unsigned long long v[10] = {};
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                    &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
        for (int i = 0; i < 8; ++i) t.total += v[i];  // guest time is already in user
        t.busy = t.total - v[3] - v[4];               // minus idle and iowait
    }
    std::fclose(f);
    return t;
}

// ---------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------

// True if the pidfd says the process has exited.
bool has_exited(int pidfd) {
    struct pollfd p {};
    p.fd = pidfd;
    p.events = POLLIN;
    return ::poll(&p, 1, 0) > 0;
}

// Waits for one byte on fd, bounded by deadline and by the master's death.
bool wait_ready_byte(int fd, int pidfd, std::int64_t deadline, std::string& error) {
    for (;;) {
        struct pollfd p[2]{};
        p[0].fd = fd;
        p[0].events = POLLIN;
        p[1].fd = g_sigfd;
        p[1].events = POLLIN;
        const std::int64_t left = deadline - now_ns();
        if (left <= 0) {
            error = "no ready byte before the timeout";
            return false;
        }
        const int rc = ::poll(p, 2, static_cast<int>(left / 1000000) + 1);
        if (rc < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (p[1].revents != 0) drain_signals();
        if (g_interrupted) {
            error = "interrupted";
            return false;
        }
        if (p[0].revents != 0) {
            char byte = 0;
            const ssize_t n = ::read(fd, &byte, 1);
            if (n == 1) return true;
            error = has_exited(pidfd) ? "the master exited before it was ready"
                                      : "the ready descriptor was closed without a byte";
            return false;
        }
    }
}

// One SIP OPTIONS request to HOST:PORT over UDP; true if "SIP/2.0 200" came
// back within 100 ms.
bool sip_options_probe(const std::string& target, unsigned attempt, std::string& error) {
    const std::size_t colon = target.rfind(':');
    if (colon == std::string::npos) {
        error = "--probe-sip-udp wants HOST:PORT";
        return false;
    }
    struct sockaddr_in to {};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(std::atoi(target.c_str() + colon + 1)));
    if (::inet_pton(AF_INET, target.substr(0, colon).c_str(), &to.sin_addr) != 1) {
        error = "--probe-sip-udp wants an IPv4 address";
        return false;
    }
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    bool ok = false;
    struct sockaddr_in me {};
    me.sin_family = AF_INET;
    me.sin_addr = to.sin_addr;
    socklen_t len = sizeof me;
    if (::bind(sock, reinterpret_cast<struct sockaddr*>(&me), sizeof me) == 0 &&
        ::getsockname(sock, reinterpret_cast<struct sockaddr*>(&me), &len) == 0 &&
        ::connect(sock, reinterpret_cast<struct sockaddr*>(&to), sizeof to) == 0) {
        const std::string host = target.substr(0, colon);
        const std::string local = host + ":" + std::to_string(ntohs(me.sin_port));
        const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(attempt);
        const std::string request = "OPTIONS sip:ping@" + target + " SIP/2.0\r\n" +
                                    "Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-bench-" + tag +
                                    ";rport\r\n" + "Max-Forwards: 70\r\n" + "From: <sip:bench@" +
                                    local + ">;tag=" + tag + "\r\n" + "To: <sip:ping@" + target +
                                    ">\r\n" + "Call-ID: bench-" + tag + "@" + host + "\r\n" +
                                    "CSeq: 1 OPTIONS\r\n" + "Content-Length: 0\r\n\r\n";
        if (::send(sock, request.data(), request.size(), 0) ==
            static_cast<ssize_t>(request.size())) {
            struct pollfd p {};
            p.fd = sock;
            p.events = POLLIN;
            if (::poll(&p, 1, 100) > 0) {
                char reply[2048];
                const ssize_t n = ::recv(sock, reply, sizeof reply - 1, 0);
                ok = n >= 11 && std::memcmp(reply, "SIP/2.0 200", 11) == 0;
            }
        }
    }
    ::close(sock);
    return ok;
}

struct tree_snapshot {
    int procs = 0;  // master included
    bool all_sleeping = false;
    // The master's children in fork order: start time (clock ticks, coarse),
    // then pid (increasing, unless pid numbers wrapped around in between).
    std::vector<pid_t> children;
    std::vector<pid_t> all;  // every process of the tree, master first
};

// CPU time the processes have used so far (/proc/PID/schedstat, first field:
// nanoseconds on the CPU); a process that is gone counts nothing.
std::int64_t cpu_so_far_ns(const std::vector<pid_t>& pids) {
    std::int64_t total = 0;
    for (const pid_t pid : pids) {
        const std::string path = "/proc/" + std::to_string(pid) + "/schedstat";
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[128];
        const ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        total += std::strtoll(buf, nullptr, 10);
    }
    return total;
}

tree_snapshot snapshot_tree(pid_t master) {
    const std::vector<proc_entry> table = read_proc_table();
    const std::vector<proc_entry> below = descendants(master, table);
    tree_snapshot snap;
    snap.procs = 1 + static_cast<int>(below.size());
    snap.all_sleeping = true;
    snap.all.push_back(master);
    for (const proc_entry& e : below) snap.all.push_back(e.pid);
    for (const proc_entry& e : table) {
        if (e.pid == master && e.state != 'S') snap.all_sleeping = false;
    }
    std::vector<const proc_entry*> kids;
    for (const proc_entry& e : below) {
        if (e.state != 'S') snap.all_sleeping = false;
        if (e.ppid == master) kids.push_back(&e);
    }
    std::sort(kids.begin(), kids.end(), [](const proc_entry* a, const proc_entry* b) {
        return a->start != b->start ? a->start < b->start : a->pid < b->pid;
    });
    for (const proc_entry* e : kids) snap.children.push_back(e->pid);
    return snap;
}

// The side's log pipe (--log-pipe-fd), read without blocking. The driver keeps
// it drained so a chatty side never blocks on a full pipe.
struct log_reader {
    int fd = -1;
    bool eof = false;      // every writer has closed it
    std::string partial;  // an unfinished last line

    // Reads everything available; true if a complete line containing
    // `wanted` arrived (never, for an empty `wanted`: the data is discarded).
    bool drain(const std::string& wanted) {
        if (fd < 0) return false;
        bool found = false;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                if (wanted.empty()) continue;
                partial.append(buf, static_cast<std::size_t>(n));
                for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
                    if (partial.substr(0, nl).find(wanted) != std::string::npos) found = true;
                    partial.erase(0, nl + 1);
                }
                continue;
            }
            if (n == 0) eof = true;
            if (n < 0 && errno == EINTR) continue;
            return found;
        }
    }
};

// ---------------------------------------------------------------------------
// One trial
// ---------------------------------------------------------------------------

struct trial {
    bool ok = false;
    std::string error;
    int procs = 0;
    std::int64_t master_exit_ns = 0;  // from t0
    std::int64_t tree_gone_ns = 0;    // from t0
    int exit_code = -1;
    int term_signal = 0;
    int orphans = 0;  // processes the driver reaped besides the master
    // CPU use of the whole machine while the tree sat idle just before t0:
    // anything well above 0 is another program competing for the CPUs.
    double busy_before_pct = 0;
    int quiet_waits = 0;  // extra settle periods spent waiting for a quiet machine
    int victim = -1;      // kill/respawn: fork-order position of the killed child
    std::int64_t respawn_byte_ns = -1;  // respawn: the replacement's byte, from t0
    std::int64_t respawn_line_ns = -1;  // respawn: the master's line, from t0
    std::int64_t ready_ns = 0;          // start-up: from the fork of the master to ready
    std::int64_t respawn_first_ns = -1;  // burst: the first replacement's byte, from t0
    std::int64_t kills_ns = -1;          // burst: the K kill() calls, from t0
    int burst = 0;                       // burst: workers SIGKILLed at t0
    std::int64_t ready_cpu_ns = -1;      // CPU time of the tree when it was ready (schedstat)
    std::int64_t tree_cpu_ns = -1;       // user + system time of the tree (wait4 rusage)
    long tree_minflt = -1;               // minor page faults of the tree (wait4 rusage)
};

std::int64_t rusage_cpu_ns(const struct rusage& ru) {
    return (static_cast<std::int64_t>(ru.ru_utime.tv_sec) + ru.ru_stime.tv_sec) * 1000000000 +
           (static_cast<std::int64_t>(ru.ru_utime.tv_usec) + ru.ru_stime.tv_usec) * 1000;
}

// Moves a descriptor out of the way of every target number (1..1000); -1 if
// that fails (RLIMIT_NOFILE below 1002).
int move_high(int fd) { return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 1001); }

[[noreturn]] void exec_side(const side& s, int ready_write, int log_write) {
    ::setpgid(0, 0);
    // Should the driver die, take the master with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    }
    // The driver blocks SIGCHLD and the stop signals for its signalfd; the
    // side starts with nothing blocked, as from a shell.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // First out of the way, so no dup2 below lands on a pipe not yet moved.
    if ((ready_write >= 0 && (ready_write = move_high(ready_write)) < 0) ||
        (log_write >= 0 && (log_write = move_high(log_write)) < 0)) {
        ::_exit(126);
    }
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) ::_exit(126);
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    // dup2 leaves FD_CLOEXEC off on the copies: they survive exec.
    if (ready_write >= 0 && ::dup2(ready_write, s.ready_fd) < 0) ::_exit(126);
    if (log_write >= 0 && ::dup2(log_write, s.log_pipe_fd) < 0) ::_exit(126);
    std::vector<char*> args;
    for (const std::string& a : s.argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
}

// After t0 of term and kill, and after the SIGTERM that ends a respawn trial:
// waits until the master exited and every process of its tree is reaped.
// Records both times from `since`, the master's status and the orphans.
bool wait_tree_gone(const config& cfg, pid_t master, int pidfd, std::int64_t since,
                    log_reader& logs, trial& t, std::string& error) {
    const std::int64_t deadline = since + ms_to_ns(cfg.stop_timeout_ms);
    struct pollfd p[3]{};
    p[0].fd = pidfd;
    p[0].events = POLLIN;
    p[1].fd = g_sigfd;
    p[1].events = POLLIN;
    p[2].fd = logs.fd;
    p[2].events = POLLIN;
    for (;;) {
        const std::int64_t left = deadline - now_ns();
        if (left <= 0) {
            error = "tree still alive " + std::to_string(cfg.stop_timeout_ms) +
                    " ms after the signal";
            return false;
        }
        if (logs.eof) p[2].fd = -1;
        const int n = ::poll(p, 3, static_cast<int>(left / 1000000) + 1);
        const std::int64_t woke = now_ns();
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (p[0].revents != 0 && t.master_exit_ns == 0) {
            t.master_exit_ns = woke - since;
            p[0].fd = -1;  // stays readable: stop watching it
        }
        if (p[1].revents != 0) drain_signals();
        if (p[2].revents != 0) logs.drain(std::string());
        if (g_interrupted) {
            error = "interrupted";
            return false;
        }
        for (;;) {
            int status = 0;
            struct rusage ru {};
            const pid_t r = ::wait4(-1, &status, WNOHANG, &ru);
            if (r > 0) {
                // The master's rusage covers every child it reaped itself.
                t.tree_cpu_ns = std::max<std::int64_t>(t.tree_cpu_ns, 0) + rusage_cpu_ns(ru);
                t.tree_minflt = std::max(t.tree_minflt, 0L) + ru.ru_minflt;
                if (r == master) {
                    if (t.master_exit_ns == 0) t.master_exit_ns = woke - since;
                    if (WIFEXITED(status)) t.exit_code = WEXITSTATUS(status);
                    if (WIFSIGNALED(status)) t.term_signal = WTERMSIG(status);
                } else {
                    ++t.orphans;
                }
                continue;
            }
            if (r < 0 && errno == ECHILD) {
                t.tree_gone_ns = now_ns() - since;
                return true;
            }
            break;
        }
    }
}

// After t0 of respawn: waits for every signal the side gives that the
// replacement is ready, and times each from t0.
bool wait_replacement(const config& cfg, const side& s, int ready_read, int pidfd, std::int64_t t0,
                      log_reader& logs, trial& t, std::string& error) {
    const std::int64_t deadline = t0 + ms_to_ns(cfg.stop_timeout_ms);
    bool need_byte = s.respawn_byte;
    bool need_line = !s.respawn_line.empty();
    while (need_byte || need_line) {
        struct pollfd p[4]{};
        p[0].fd = need_byte ? ready_read : -1;
        p[0].events = POLLIN;
        p[1].fd = logs.eof ? -1 : logs.fd;
        p[1].events = POLLIN;
        p[2].fd = pidfd;
        p[2].events = POLLIN;
        p[3].fd = g_sigfd;
        p[3].events = POLLIN;
        const std::int64_t left = deadline - now_ns();
        if (left <= 0) {
            error = std::string("no ") + (need_byte ? "byte from the replacement" : "") +
                    (need_byte && need_line ? " and no " : "") +
                    (need_line ? "line \"" + s.respawn_line + "\"" : "") + " within " +
                    std::to_string(cfg.stop_timeout_ms) + " ms of the kill";
            return false;
        }
        const int n = ::poll(p, 4, static_cast<int>(left / 1000000) + 1);
        const std::int64_t woke = now_ns();
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (p[3].revents != 0) drain_signals();
        if (g_interrupted) {
            error = "interrupted";
            return false;
        }
        if (p[0].revents != 0) {
            char byte = 0;
            const ssize_t r = ::read(ready_read, &byte, 1);
            if (r == 1) {
                t.respawn_byte_ns = woke - t0;
                need_byte = false;
            } else if (r == 0) {
                error = "the ready descriptor was closed before the replacement wrote its byte";
                return false;
            }
        }
        if (p[1].revents != 0 && logs.drain(need_line ? s.respawn_line : std::string())) {
            t.respawn_line_ns = woke - t0;
            need_line = false;
        }
        if (need_line && logs.eof) {
            error = "the log pipe was closed before the line \"" + s.respawn_line + "\"";
            return false;
        }
        if (p[2].revents != 0) {
            error = "the master exited after the kill instead of replacing the worker";
            return false;
        }
    }
    return true;
}

// After burst's K kills: waits for K bytes on the ready pipe, one from each
// replacement, and times the first and the last from t0.
bool wait_burst(const config& cfg, int ready_read, int pidfd, std::int64_t t0, trial& t,
                std::string& error) {
    const std::int64_t deadline = t0 + ms_to_ns(cfg.stop_timeout_ms);
    int got = 0;
    while (got < cfg.burst) {
        struct pollfd p[3]{};
        p[0].fd = ready_read;
        p[0].events = POLLIN;
        p[1].fd = pidfd;
        p[1].events = POLLIN;
        p[2].fd = g_sigfd;
        p[2].events = POLLIN;
        const std::int64_t left = deadline - now_ns();
        if (left <= 0) {
            error = std::to_string(got) + " of " + std::to_string(cfg.burst) +
                    " replacement bytes within " + std::to_string(cfg.stop_timeout_ms) +
                    " ms of the kills";
            return false;
        }
        const int n = ::poll(p, 3, static_cast<int>(left / 1000000) + 1);
        const std::int64_t woke = now_ns();
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (p[2].revents != 0) drain_signals();
        if (g_interrupted) {
            error = "interrupted";
            return false;
        }
        if (p[0].revents != 0) {
            char buf[4096];
            const std::size_t want = std::min<std::size_t>(sizeof buf, cfg.burst - got);
            const ssize_t r = ::read(ready_read, buf, want);
            if (r > 0) {
                if (got == 0) t.respawn_first_ns = woke - t0;
                got += static_cast<int>(r);
                if (got >= cfg.burst) t.respawn_byte_ns = woke - t0;
            } else if (r == 0) {
                error = "the ready descriptor was closed after " + std::to_string(got) + " of " +
                        std::to_string(cfg.burst) + " replacement bytes";
                return false;
            }
        }
        if (p[1].revents != 0 && got < cfg.burst) {
            error = "the master exited after the kills instead of replacing the workers (" +
                    std::to_string(got) + " of " + std::to_string(cfg.burst) + " came)";
            return false;
        }
    }
    return true;
}

// After the replacement said it is ready: the tree must be whole again (not
// timed): as many processes as before, all sleeping, the victims gone, and
// exactly one child of the master that was not there before for each victim.
bool wait_tree_whole(const config& cfg, const side& s, pid_t master, int pidfd,
                     const tree_snapshot& before, const std::vector<pid_t>& victims,
                     std::string& error) {
    const int expected = static_cast<int>(victims.size());
    const std::int64_t deadline = now_ns() + ms_to_ns(cfg.ready_timeout_ms);
    for (;;) {
        drain_signals();
        if (g_interrupted) {
            error = "interrupted";
            return false;
        }
        if (has_exited(pidfd)) {
            error = "the master exited after the replacement was ready";
            return false;
        }
        const tree_snapshot now = snapshot_tree(master);
        int fresh = 0;
        bool victim_there = false;
        for (const pid_t pid : now.children) {
            if (std::find(victims.begin(), victims.end(), pid) != victims.end()) {
                victim_there = true;
            } else if (std::find(before.children.begin(), before.children.end(), pid) ==
                       before.children.end()) {
                ++fresh;
            }
        }
        if (now.procs == s.procs && now.all_sleeping && !victim_there && fresh == expected) {
            return true;
        }
        if (now_ns() >= deadline) {
            error = "after the respawn the tree has " + std::to_string(now.procs) +
                    " processes (expected " + std::to_string(s.procs) + "), " +
                    std::to_string(fresh) + " new child(ren) of the master (expected " +
                    std::to_string(expected) + ")" +
                    (victim_there ? ", a killed worker not reaped" : "") +
                    (now.all_sleeping ? "" : ", not all of them sleeping");
            return false;
        }
        sleep_ns(ms_to_ns(2));
    }
}

trial run_trial(const config& cfg, const side& s) {
    trial t;
    int ready[2] = {-1, -1};
    int logp[2] = {-1, -1};
    auto close_pipes = [&] {
        for (int* fds : {ready, logp}) {
            for (int i = 0; i < 2; ++i) {
                if (fds[i] >= 0) ::close(fds[i]);
                fds[i] = -1;
            }
        }
    };
    if (!s.ready_fifo.empty()) {
        // A fresh FIFO per trial, held open for reading and writing by the
        // driver alone: a writer's open() never blocks and no stale byte of
        // an earlier trial is left in it.
        ::unlink(s.ready_fifo.c_str());
        if (::mkfifo(s.ready_fifo.c_str(), 0666) != 0 ||
            (ready[0] = ::open(s.ready_fifo.c_str(), O_RDWR | O_CLOEXEC)) < 0) {
            t.error = "FIFO " + s.ready_fifo + ": " + std::strerror(errno);
            return t;
        }
    }
    if ((s.ready_fd >= 0 && ::pipe2(ready, O_CLOEXEC) != 0) ||
        (s.log_pipe_fd >= 0 && ::pipe2(logp, O_CLOEXEC) != 0)) {
        t.error = std::string("pipe2: ") + std::strerror(errno);
        close_pipes();
        return t;
    }
    // Only the driver's end is non-blocking: the side writes as to any pipe.
    if (logp[0] >= 0) ::fcntl(logp[0], F_SETFL, O_NONBLOCK);
    const pid_t master = ::fork();
    if (master < 0) {
        t.error = std::string("fork: ") + std::strerror(errno);
        close_pipes();
        return t;
    }
    const std::int64_t started = now_ns();
    if (master == 0) exec_side(s, ready[1], logp[1]);
    ::setpgid(master, master);  // both sides call it: no race with exec
    for (int* fd : {&ready[1], &logp[1]}) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
    }
    const int pidfd = pidfd_open(master);
    log_reader logs;
    logs.fd = logp[0];

    auto fail = [&](const std::string& why) {
        t.ok = false;
        t.error = why;
        kill_everything();
        close_pipes();
        if (pidfd >= 0) ::close(pidfd);
        return t;
    };
    if (pidfd < 0) return fail(std::string("pidfd_open: ") + std::strerror(errno));

    // ---- ready ----
    const std::int64_t ready_deadline = now_ns() + ms_to_ns(cfg.ready_timeout_ms);
    std::string error;
    for (int b = 0; ready[0] >= 0 && b < s.ready_bytes; ++b) {
        if (!wait_ready_byte(ready[0], pidfd, ready_deadline, error)) {
            return fail(error + " (" + std::to_string(b) + " of " + std::to_string(s.ready_bytes) +
                        " bytes came)");
        }
    }
    if (!s.probe.empty()) {
        for (unsigned attempt = 0;; ++attempt) {
            drain_signals();
            logs.drain(std::string());
            if (g_interrupted) return fail("interrupted");
            if (has_exited(pidfd)) return fail("the master exited before it answered the probe");
            if (sip_options_probe(s.probe, attempt, error)) break;
            if (!error.empty()) return fail(error);
            if (now_ns() >= ready_deadline) return fail("no answer to the SIP OPTIONS probe");
        }
    }
    tree_snapshot snap;
    for (;;) {
        drain_signals();
        logs.drain(std::string());
        if (g_interrupted) return fail("interrupted");
        if (has_exited(pidfd)) return fail("the master exited before it was ready");
        const std::int64_t scan = now_ns();
        snap = snapshot_tree(master);
        if (snap.procs == s.procs && snap.all_sleeping) {
            t.ready_ns = now_ns() - started;
            t.ready_cpu_ns = cpu_so_far_ns(snap.all);
            break;
        }
        // Reading /proc costs more the more processes there are: poll no
        // faster than one scan in five, so the driver takes at most a fifth
        // of a CPU from the tree it waits for.
        const std::int64_t scan_ns = now_ns() - scan;
        if (scan_ns * 4 > ms_to_ns(2)) sleep_ns(scan_ns * 4 - ms_to_ns(2));
        if (now_ns() >= ready_deadline) {
            return fail("tree has " + std::to_string(snap.procs) + " processes (expected " +
                        std::to_string(s.procs) + ")" +
                        (snap.all_sleeping ? "" : ", not all of them sleeping"));
        }
        sleep_ns(ms_to_ns(2));
    }
    t.procs = snap.procs;
    std::vector<pid_t> victims;
    if (cfg.what == scenario::burst) {
        // Every N/K-th child in fork order (K = N: all of them).
        const std::size_t n = snap.children.size();
        const std::size_t k = static_cast<std::size_t>(cfg.burst);
        if (n < k) return fail("fewer workers than --burst");
        for (std::size_t i = 0; i < k; ++i) victims.push_back(snap.children[i * n / k]);
    } else if (cfg.what != scenario::term) {
        if (snap.children.empty()) return fail("no worker to kill");
        t.victim = cfg.victim_middle ? static_cast<int>(snap.children.size() / 2) : 0;
        victims.push_back(snap.children[static_cast<std::size_t>(t.victim)]);
    }

    // Settle; with --quiet-pct, settle again until a settle period finds the
    // machine quiet (bounded by --quiet-wait-ms, after which the trial runs
    // anyway and its busy_before_pct shows it).
    const std::int64_t quiet_deadline = now_ns() + ms_to_ns(cfg.quiet_wait_ms);
    for (;;) {
        const cpu_ticks before_settle = read_cpu_ticks();
        sleep_ns(ms_to_ns(s.settle_ms >= 0 ? s.settle_ms : cfg.settle_ms));
        const cpu_ticks after_settle = read_cpu_ticks();
        if (after_settle.total > before_settle.total) {
            t.busy_before_pct = 100.0 *
                                static_cast<double>(after_settle.busy - before_settle.busy) /
                                static_cast<double>(after_settle.total - before_settle.total);
        }
        drain_signals();
        logs.drain(std::string());
        if (g_interrupted || cfg.quiet_pct < 0 || t.busy_before_pct <= cfg.quiet_pct ||
            now_ns() >= quiet_deadline) {
            break;
        }
        ++t.quiet_waits;
    }
    if (g_interrupted) return fail("interrupted");
    // The tree must still be what was checked: nobody died while settling.
    const tree_snapshot again = snapshot_tree(master);
    if (again.procs != s.procs || again.children != snap.children) {
        return fail("the tree changed while settling");
    }
    // Whatever the side logged so far is not about the kill to come.
    logs.drain(std::string());
    logs.partial.clear();

    // ---- t0 ----
    const std::int64_t t0 = now_ns();
    int rc = 0;
    if (cfg.what == scenario::term) {
        rc = ::kill(master, SIGTERM);
    } else {
        for (const pid_t victim : victims) {
            if (::kill(victim, SIGKILL) != 0) rc = -1;
        }
        if (cfg.what == scenario::burst) t.kills_ns = now_ns() - t0;
    }
    if (rc != 0) return fail(std::string("kill: ") + std::strerror(errno));

    if (cfg.what == scenario::respawn || cfg.what == scenario::burst) {
        if (cfg.what == scenario::burst) {
            t.burst = cfg.burst;
            if (!wait_burst(cfg, ready[0], pidfd, t0, t, error)) return fail(error);
        } else if (!wait_replacement(cfg, s, ready[0], pidfd, t0, logs, t, error)) {
            return fail(error);
        }
        // ---- not timed: the tree is whole again, then it goes ----
        if (!wait_tree_whole(cfg, s, master, pidfd, snap, victims, error)) return fail(error);
        if (::kill(master, SIGTERM) != 0) {
            return fail(std::string("kill (end of trial): ") + std::strerror(errno));
        }
        if (!wait_tree_gone(cfg, master, pidfd, now_ns(), logs, t, error)) {
            return fail("end of trial: " + error);
        }
    } else if (!wait_tree_gone(cfg, master, pidfd, t0, logs, t, error)) {
        return fail(error);
    }
    t.ok = true;
    close_pipes();
    ::close(pidfd);
    return t;
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

double median_ms(std::vector<std::int64_t> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    const double mid = v.size() % 2
                           ? static_cast<double>(v[m])
                           : (static_cast<double>(v[m - 1]) + static_cast<double>(v[m])) / 2;
    return mid / 1e6;
}

// Microseconds with one decimal, or "-" for a time that was not measured.
std::string micros(std::int64_t ns, bool measured = true) {
    if (!measured || ns < 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(ns) / 1e3);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    const config cfg = parse_args(argc, argv);
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        std::perror("shutdown_bench: prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    // Inherited by every side.
    if (cfg.set_nice && ::setpriority(PRIO_PROCESS, 0, cfg.nice) != 0) {
        std::perror("shutdown_bench: setpriority");
        return 1;
    }
    setup_signals();
    if (!reap_available()) {
        std::fprintf(stderr, "shutdown_bench: the driver must start without children\n");
        return 1;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const bool burst = cfg.what == scenario::burst;
    const bool respawn = cfg.what == scenario::respawn || burst;
    const char* what = cfg.what == scenario::term    ? "term"
                       : cfg.what == scenario::kill  ? "kill"
                       : cfg.what == scenario::burst ? "burst"
                                                     : "respawn";
    // In respawn, the tree's end is the clean-up after the measurement: its
    // times are not reported, its exit status is (0: the master was still in
    // charge and stopped on request).
    std::printf(
        "scenario\tside\trep\tprocs\tmaster_exit_us\ttree_gone_us\texit_code\tsignal\t"
        "orphans_reaped\tbusy_before_pct\tquiet_waits\tvictim\trespawn_byte_us\t"
        "respawn_line_us\tready_us\tburst\trespawn_first_us\tkills_us\tready_cpu_us\t"
        "tree_cpu_us\ttree_minflt\n");

    std::vector<std::vector<std::int64_t>> tree(cfg.sides.size());
    std::vector<std::vector<std::int64_t>> line(cfg.sides.size());
    // A side that failed --max-failures times is dropped; the others go on.
    std::vector<int> failed(cfg.sides.size(), 0);
    int failures = 0;
    for (int rep = 1 - cfg.warmup; rep <= cfg.reps && !g_interrupted; ++rep) {
        for (std::size_t k = 0; k < cfg.sides.size() && !g_interrupted; ++k) {
            const side& s = cfg.sides[k];
            if (failed[k] >= cfg.max_failures) continue;
            const trial t = run_trial(cfg, s);
            if (!t.ok) {
                ++failures;
                ++failed[k];
                std::fprintf(stderr, "shutdown_bench: %s %s rep %d failed: %s\n", what,
                             s.name.c_str(), rep, t.error.c_str());
                if (failed[k] >= cfg.max_failures) {
                    std::fprintf(stderr, "shutdown_bench: %s %s: %d failures, side dropped\n",
                                 what, s.name.c_str(), failed[k]);
                }
                continue;
            }
            if (rep < 1) continue;  // warm-up: not reported
            tree[k].push_back(respawn ? t.respawn_byte_ns : t.tree_gone_ns);
            line[k].push_back(t.respawn_line_ns);
            std::printf("%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s"
                        "\t%s\t%s\n",
                        what,
                        s.name.c_str(), rep, t.procs, micros(t.master_exit_ns, !respawn).c_str(),
                        micros(t.tree_gone_ns, !respawn).c_str(), t.exit_code, t.term_signal,
                        t.orphans, t.busy_before_pct, t.quiet_waits,
                        t.victim < 0 ? "-" : std::to_string(t.victim).c_str(),
                        micros(t.respawn_byte_ns).c_str(), micros(t.respawn_line_ns).c_str(),
                        micros(t.ready_ns).c_str(),
                        burst ? std::to_string(t.burst).c_str() : "-",
                        micros(t.respawn_first_ns, burst).c_str(),
                        micros(t.kills_ns, burst).c_str(), micros(t.ready_cpu_ns).c_str(),
                        micros(t.tree_cpu_ns).c_str(),
                        t.tree_minflt < 0 ? "-" : std::to_string(t.tree_minflt).c_str());
        }
        if (std::count_if(failed.begin(), failed.end(),
                          [&](int f) { return f >= cfg.max_failures; }) ==
            static_cast<std::ptrdiff_t>(failed.size())) {
            break;
        }
    }
    kill_everything();
    for (std::size_t k = 0; k < cfg.sides.size(); ++k) {
        std::string extra;
        if (respawn && !line[k].empty() && line[k].front() >= 0) {
            char buf[64];
            std::snprintf(buf, sizeof buf, ", master's line %.3f ms", median_ms(line[k]));
            extra = buf;
        }
        std::fprintf(stderr, "shutdown_bench: %s %-12s n=%zu median %s %.3f ms%s\n", what,
                     cfg.sides[k].name.c_str(), tree[k].size(),
                     respawn ? "replacement's byte" : "tree gone", median_ms(tree[k]),
                     extra.c_str());
    }
    if (g_interrupted) return 130;
    return failures == 0 ? 0 : 1;
}
