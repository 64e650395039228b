// supervise.hpp: turn a program into a pre-forking daemon with one include.
//
// A master process forks and watches a pool of workers, turns signals into
// actions chosen at compile time, and stops everything cleanly when asked to or
// when a worker fails. The process model is the one of SER/Kamailio's
// "server shutdown" document; docs/design.md maps every paragraph of it to the
// code below and lists where the mechanism deliberately differs.
//
// SPDX-License-Identifier: MIT
//
// The file reads top to bottom:
//   1. configuration   (SUPERVISE_CONFIG_* macros, version, platform checks)
//   2. the public API, whole: actions, signal_map and the presets, strategies,
//      options, worker_context, what run() reports, posix_system, pool
//   3. implementation  (supervise::detail: the master's parts and its cycle,
//      then the bodies of the public members)

#ifndef SUPERVISE_HPP
#define SUPERVISE_HPP

// ============================================================================
// 1. Configuration
// ============================================================================

#define SUPERVISE_VERSION_MAJOR 0
#define SUPERVISE_VERSION_MINOR 1
#define SUPERVISE_VERSION_PATCH 0
#define SUPERVISE_VERSION_STR "0.1.0"
#define SUPERVISE_VERSION \
    (SUPERVISE_VERSION_MAJOR * 10000 + SUPERVISE_VERSION_MINOR * 100 + SUPERVISE_VERSION_PATCH)

// Two different versions of this header in one program would share the
// process-wide signal state under one name and silently disagree about its
// layout; the versioned inline namespace turns that into a link error.
#define SUPERVISE_ABI_NAMESPACE v0_1

#if !defined(__linux__)
#error "supervise.hpp supports Linux only: it relies on prctl(PR_SET_PDEATHSIG), ppoll(2) and /proc"
#endif
#if !defined(__cplusplus) || __cplusplus < 201703L
#error "supervise.hpp needs C++17 or newer"
#endif

// Workers a pool starts when options::workers is not set.
#ifndef SUPERVISE_CONFIG_DEFAULT_WORKERS
#define SUPERVISE_CONFIG_DEFAULT_WORKERS 4
#endif

// Upper bound accepted for options::workers: a pool size above it is refused
// before anything starts, as are sizes above RLIMIT_NPROC.
#ifndef SUPERVISE_CONFIG_MAX_WORKERS
#define SUPERVISE_CONFIG_MAX_WORKERS 4096
#endif

// Time workers get between SIGTERM and SIGKILL (OTP's default child shutdown).
#ifndef SUPERVISE_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS
#define SUPERVISE_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS 5000
#endif

// Total time all destroy hooks together may take before the master gives up.
#ifndef SUPERVISE_CONFIG_DEFAULT_DESTROY_TIMEOUT_MS
#define SUPERVISE_CONFIG_DEFAULT_DESTROY_TIMEOUT_MS 5000
#endif

// Restart intensity: more than MAX restarts within PERIOD stops the pool
// (systemd's StartLimitBurst=5 in StartLimitIntervalSec=10 s).
#ifndef SUPERVISE_CONFIG_DEFAULT_MAX_RESTARTS
#define SUPERVISE_CONFIG_DEFAULT_MAX_RESTARTS 5
#endif
#ifndef SUPERVISE_CONFIG_DEFAULT_RESTART_PERIOD_MS
#define SUPERVISE_CONFIG_DEFAULT_RESTART_PERIOD_MS 10000
#endif

// Back-off between consecutive restarts of one slot: the first restart is
// immediate, then DELAY, 2*DELAY, 4*DELAY... capped at DELAY_MAX
// (systemd's RestartSec=100ms; runit waits 1 s).
#ifndef SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MS
#define SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MS 100
#endif
#ifndef SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MAX_MS
#define SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MAX_MS 5000
#endif

// A worker that was ready and lived this long is restarted at once, whatever
// came before it: the back-off is for workers that cannot start (supervisord's
// startsecs=1, PM2's min_uptime=1000 ms).
#ifndef SUPERVISE_CONFIG_DEFAULT_MIN_UPTIME_MS
#define SUPERVISE_CONFIG_DEFAULT_MIN_UPTIME_MS 1000
#endif

// Exit status by which a worker says "do not restart me, stop the pool"
// (s6's 125 means permanent failure).
#ifndef SUPERVISE_CONFIG_DEFAULT_FATAL_EXIT_CODE
#define SUPERVISE_CONFIG_DEFAULT_FATAL_EXIT_CODE 125
#endif

// Signal a worker receives when the master dies (prctl(2) PR_SET_PDEATHSIG).
#ifndef SUPERVISE_CONFIG_DEFAULT_PARENT_DEATH_SIGNAL
#define SUPERVISE_CONFIG_DEFAULT_PARENT_DEATH_SIGNAL SIGKILL
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

// ============================================================================
// 2. The public API
// ============================================================================

namespace supervise {
inline namespace SUPERVISE_ABI_NAMESPACE {

// The few pieces of supervise::detail that the public types below are spelled
// with; everything else of detail is in section 3.
namespace detail {
// The pending set is one 64-bit word: one bit per signal 1..64 (Linux has 64).
constexpr int max_signal = 64;
constexpr std::uint64_t signal_bit(int sig) noexcept {
    return (sig >= 1 && sig <= max_signal) ? (std::uint64_t{1} << (sig - 1)) : 0;
}
template <class Action>
struct is_action;
template <class Action>
struct is_master_action;
template <class Action>
struct is_worker_action;
template <int... Signals>
constexpr bool all_distinct() noexcept;
template <class T>
struct is_signal_map;
template <class Map, template <class> class Allowed>
struct all_rows_allowed;
template <class MasterSignals>
struct stops_cleanly;
template <class Strategy>
struct is_strategy;
// What a worker does with its signals, reduced to masks: the worker's side is
// not a template, so one worker_context serves every pool.
struct worker_signal_plan {
    std::uint64_t handled = 0;   // signals whose handler is on_signal
    std::uint64_t stop = 0;      // terminate
    std::uint64_t graceful = 0;  // graceful_stop
    std::uint64_t stats = 0;     // print_stats
    std::uint64_t deliver = 0;   // deliver
    std::uint64_t ignored = 0;   // ignore: SIG_IGN
};
// Who the workers become; resolved before anything starts, so an unknown
// user is a clear error instead of a worker dying at start-up.
struct credentials {
    bool drop = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    // The drop also gives up new privileges (options::allow_new_privileges):
    // the bounding set emptied, no_new_privs set.
    bool no_new_privileges = false;
    // The kernel's highest capability (/proc/sys/kernel/cap_last_cap), read
    // by the master; -1 where it could not: then up to the first the kernel
    // refuses as unknown (EINVAL).
    int last_capability = -1;
};
struct destroy_hook {
    std::string name;
    std::function<void()> run;
};
struct worker_calls;
struct context_init;
struct context_factory;
template <class System>
class master;
template <class System>
class listener_set;
// The pool's state in memory the master shares with its workers (section 3,
// "the pool's page"): where a worker_context finds it.
struct shared_header;
struct shared_slot;
struct pool_page {
    shared_header* header = nullptr;
    shared_slot* slots = nullptr;  // one per slot up to options::max_workers
    int capacity = 0;
};
}  // namespace detail

// ---- Actions: what a signal does. Used as the second argument of on<>. ----

// Master: fast stop (SIGTERM to every worker, SIGKILL after the shutdown
// timeout; a second terminate signal sends SIGKILL at once).
// Worker: ask the worker to stop (worker_context::stop_requested()).
struct terminate {};
// Master: write the statistics table. Worker: write the worker's own line.
struct print_stats {};
// Master: count it and carry on. Worker: SIG_IGN.
struct ignore {};
// Master: graceful stop: each worker gets the WorkerSignals row mapped to
// graceful_stop (SIGTERM if none) and shutdown_timeout to finish its current
// work, then the fast path (SIGTERM, SIGKILL). A terminate signal meanwhile
// takes the fast path at once.
// Worker: ask the worker to finish its current work and stop
// (worker_context::stop_requested() and stop_is_graceful()).
struct graceful_stop {};
// Master only: replace the workers one at a time; each new worker must be up
// before its predecessor is asked to stop gracefully, so capacity never drops.
struct rolling_reload {};
// Master only: one worker more / fewer, within options::min_workers and
// max_workers. The one removed is the newest slot, stopped gracefully.
struct scale_up {};
struct scale_down {};
// Master only: stop every worker gracefully and keep running without them
// (nginx's WINCH); a rolling_reload or scale_up brings them back.
struct stop_workers {};
// Master only: send Signal to every worker (e.g. log reopening).
template <int Signal>
struct forward {
    static constexpr int signal = Signal;
};
// Worker only: hand the signal to the worker code, which takes it with
// worker_context::take_signal(); wait_readable() returns wait_status::signalled.
struct deliver {};

// ---- Signal tables ----

// One row of a signal table: signal number and action.
template <int Signal, class Action>
struct on {
    static_assert(Signal >= 1 && Signal <= detail::max_signal,
                  "supervise: signal numbers must be between 1 and 64");
    static_assert(Signal != SIGKILL && Signal != SIGSTOP,
                  "supervise: SIGKILL and SIGSTOP cannot be caught, blocked or ignored "
                  "(signal(7)), so they cannot appear in a signal_map");
    static_assert(Signal != SIGSEGV && Signal != SIGBUS && Signal != SIGFPE && Signal != SIGILL,
                  "supervise: SIGSEGV, SIGBUS, SIGFPE and SIGILL report a fault of the running "
                  "thread; returning from their handler is undefined (signal(7)), so they "
                  "cannot appear in a signal_map");
    static_assert(Signal != SIGCHLD,
                  "supervise: SIGCHLD belongs to the pool: a worker's exit is handled by the "
                  "pool's Strategy, not by a signal_map row");
    static_assert(detail::is_action<Action>::value,
                  "supervise: the action of an on<> row must be one of supervise's actions "
                  "(terminate, graceful_stop, print_stats, ignore, rolling_reload, scale_up, "
                  "scale_down, stop_workers, forward<SIG>, deliver)");
    static constexpr int signal = Signal;
    using action = Action;
};

// A compile-time table of signals, one row per signal, e.g.
//   signal_map<on<SIGTERM, terminate>, on<SIGUSR1, print_stats>>
// When several mapped signals are pending at once, rows act in the order
// written.
template <class... Rows>
struct signal_map {
    static_assert(detail::all_distinct<Rows::signal...>(),
                  "supervise: a signal_map maps the same signal twice");

    // Bits of every mapped signal.
    static constexpr std::uint64_t mask = (detail::signal_bit(Rows::signal) | ... | 0);

    // Bits of the signals mapped to Action.
    template <class Action>
    static constexpr std::uint64_t mask_of =
        ((std::is_same_v<typename Rows::action, Action> ? detail::signal_bit(Rows::signal) : 0) |
         ... | 0);
};

// The defaults: the seed document's tables (SER/Kamailio's process model).
// Master: SIGINT, SIGPIPE, SIGTERM terminate; SIGUSR1 prints statistics;
// SIGHUP and SIGUSR2 are ignored. SIGCHLD belongs to the pool: a worker's exit
// is handed to the strategy, and the default strategy (shutdown_all)
// terminates, as the seed's SIGCHLD row does.
using default_master_signals = signal_map<on<SIGINT, terminate>,     //
                                          on<SIGPIPE, terminate>,    //
                                          on<SIGTERM, terminate>,    //
                                          on<SIGUSR1, print_stats>,  //
                                          on<SIGHUP, ignore>,        //
                                          on<SIGUSR2, ignore>>;

// Workers: SIGINT and SIGTERM stop the worker, SIGUSR1 prints its statistics
// line, SIGHUP, SIGUSR2 and SIGPIPE are ignored.
using default_worker_signals = signal_map<on<SIGINT, terminate>,     //
                                          on<SIGTERM, terminate>,    //
                                          on<SIGUSR1, print_stats>,  //
                                          on<SIGHUP, ignore>,        //
                                          on<SIGUSR2, ignore>,       //
                                          on<SIGPIPE, ignore>>;

// The names of the first version, kept: the seed document is where the
// default tables come from.
using seed_master_signals = default_master_signals;
using seed_worker_signals = default_worker_signals;

// nginx's table for the master: TERM and INT fast stop, QUIT graceful stop,
// HUP rolling reload (new workers first), USR1 forwarded to the workers (log
// reopening), TTIN/TTOU one worker more/fewer (as gunicorn), WINCH graceful
// stop of the workers while the master stays, USR2 statistics (nginx uses it
// for binary upgrade, which a library cannot do for its host program).
using nginx_master_signals = signal_map<on<SIGTERM, terminate>,         //
                                        on<SIGINT, terminate>,          //
                                        on<SIGQUIT, graceful_stop>,     //
                                        on<SIGHUP, rolling_reload>,     //
                                        on<SIGUSR1, forward<SIGUSR1>>,  //
                                        on<SIGTTIN, scale_up>,          //
                                        on<SIGTTOU, scale_down>,        //
                                        on<SIGWINCH, stop_workers>,     //
                                        on<SIGUSR2, print_stats>,       //
                                        on<SIGPIPE, ignore>>;

// nginx's workers: TERM and INT stop now, QUIT finishes the current work
// first, USR1 is handed to the worker code (take_signal), the rest ignored.
using nginx_worker_signals = signal_map<on<SIGTERM, terminate>,      //
                                        on<SIGINT, terminate>,       //
                                        on<SIGQUIT, graceful_stop>,  //
                                        on<SIGUSR1, deliver>,        //
                                        on<SIGHUP, ignore>,          //
                                        on<SIGWINCH, ignore>,        //
                                        on<SIGPIPE, ignore>>;

// ---- Strategies: what a worker's unrequested exit does. ----

// The seed: any worker that exits during normal operation shuts the whole
// pool down, and the master exits non-zero.
struct shutdown_all {};
// OTP's strategies: restart the worker that ended...
struct one_for_one {};
// ...every worker (the others are stopped first, then all start in order)...
struct one_for_all {};
// ...or the worker that ended and every worker started after it.
struct rest_for_one {};

// Which exits a restarting strategy restarts (OTP's restart types).
enum class restart_type {
    permanent,  // every exit
    transient,  // only an abnormal one: a non-zero status or a signal
    temporary,  // none
};

// ---- Listeners: listening sockets the pool owns (docs/listeners.md). ----

// One listening socket for the master to bind before anything starts
// (options::listeners). Bound by the pool's constructor, so a bad address or
// one in use is an exception with nothing started and nothing left open; the
// workers inherit it across fork and find it by name or index through their
// worker_context.
struct listener_spec {
    // How workers ask for it, and its name in LISTEN_FDNAMES: 1 to 255
    // printable ASCII characters, no ':' (the separator of LISTEN_FDNAMES),
    // unique in the pool.
    std::string name;
    // "HOST:PORT" (an IPv4 address, or * for every one), "[IPV6]:PORT"
    // ([::] for every one), "unix:/path" (a file, removed when the pool
    // goes) or "unix:@name" (Linux's abstract namespace, no file). PORT 0
    // lets the kernel choose; listening_socket::address says which it chose.
    std::string address;
    // listen(2)'s backlog (the kernel caps it at net.core.somaxconn).
    int backlog = SOMAXCONN;
    // SO_REUSEADDR, TCP only: a restarted program can bind its port while
    // connections of the one before are still in TIME_WAIT.
    bool reuse_addr = true;
    // IPV6_V6ONLY, [IPV6]:PORT only. Set either way, so [::]:PORT is
    // dual-stack (false) or IPv6 only (true) whatever net.ipv6.bindv6only
    // says.
    bool ipv6_only = false;
    // unix:/path only: the socket file's mode (e.g. 0660), applied before
    // listen(2), so no client connects while the umask's mode is in force.
    // -1 leaves the mode the umask gives.
    int unix_mode = -1;
};

// Whether the pool takes the listening sockets systemd hands over
// (sd_listen_fds(3): LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES).
enum class socket_activation_mode {
    // Taken when LISTEN_PID is this process, as every socket-activated
    // program does; ignored with a log line when it names another process.
    // Either way the three variables are unset, so no child sees them.
    automatic,
    // The variables and descriptors are left as they are, for the program.
    off,
};

// A listening socket the pool holds: one of options::listeners bound by the
// constructor, or one systemd handed over. Non-blocking (every worker waits
// on the same socket, and one that lost the race for a connection must not
// block in accept(2)) and close-on-exec. Open until the pool is destroyed:
// after run() returned, so after every worker exited and every destroy hook
// ran.
struct listening_socket {
    std::string name;
    int fd = -1;
    // Where it listens, read back from the socket (getsockname(2)):
    // "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock", "unix:@app".
    std::string address;
    // Handed over by systemd rather than bound here.
    bool inherited = false;
};

// ---- Options: the run-time knobs, checked before anything starts. ----

struct options {
    // Number of worker processes, 1..SUPERVISE_CONFIG_MAX_WORKERS.
    int workers = SUPERVISE_CONFIG_DEFAULT_WORKERS;
    // SIGTERM to SIGKILL grace period for workers.
    std::chrono::milliseconds shutdown_timeout{SUPERVISE_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS};
    // A requested graceful stop first drains for this long (docs/strategies.md,
    // "Draining for a load balancer"): the pool stops being ready at once
    // (STOPPING=1, statistics::ready()) while the workers keep serving, so a
    // load balancer that still sends traffic is answered; then the workers are
    // stopped gracefully. 0 (the default): no delay. 0..24 h.
    std::chrono::milliseconds drain_delay{0};
    // Bound on the total running time of the destroy hooks.
    std::chrono::milliseconds destroy_timeout{SUPERVISE_CONFIG_DEFAULT_DESTROY_TIMEOUT_MS};
    // The seed's dont_fork: run one worker inline, in this process.
    bool no_fork = false;
    // Run even when the process already has other threads (see docs/design.md).
    bool allow_threads = false;
    // Where the master's log lines go; -1 silences them.
    int log_fd = STDERR_FILENO;
    // Where statistics (the master's table, the workers' lines) go; -1 drops them.
    int stats_fd = STDERR_FILENO;
    // Prefix of every log line: "NAME[pid]: ...".
    std::string name = "supervise";
    // Signal a worker gets when the master dies; 0 turns it off.
    int parent_death_signal = SUPERVISE_CONFIG_DEFAULT_PARENT_DEATH_SIGNAL;

    // The rest applies to the restarting strategies (not to shutdown_all).
    restart_type restart = restart_type::permanent;
    // More than max_restarts restarts within restart_period stops the pool
    // with a failure status, as an OTP supervisor escalates.
    int max_restarts = SUPERVISE_CONFIG_DEFAULT_MAX_RESTARTS;
    std::chrono::milliseconds restart_period{SUPERVISE_CONFIG_DEFAULT_RESTART_PERIOD_MS};
    // Back-off for a slot that keeps failing: 0, delay, 2*delay, ... <= max.
    // A worker that ran for restart_period starts the sequence afresh.
    std::chrono::milliseconds restart_delay{SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MS};
    std::chrono::milliseconds restart_delay_max{SUPERVISE_CONFIG_DEFAULT_RESTART_DELAY_MAX_MS};
    // The back-off is for workers that cannot start: a worker that was ready
    // (as for on_ready) and lived at least this long ends the slot's run of
    // failures, so it is restarted at once, as nginx, gunicorn and OTP do.
    // The intensity limit (max_restarts) still counts its restart. 0: being
    // ready is enough. 0..24 h.
    std::chrono::milliseconds min_uptime{SUPERVISE_CONFIG_DEFAULT_MIN_UPTIME_MS};
    // A worker exiting with this status is not restarted: the pool stops
    // with a failure status. -1 turns it off.
    int fatal_exit_code = SUPERVISE_CONFIG_DEFAULT_FATAL_EXIT_CODE;

    // Watchdog: a worker whose last heartbeat (worker_context::heartbeat(), or
    // any of its service points) is older than this gets SIGABRT (so it can
    // dump core) and SIGCONT (a stopped one too), SIGKILL after
    // shutdown_timeout, and then the strategy decides. 0 turns it off, and
    // then the master never wakes when idle.
    std::chrono::milliseconds heartbeat_timeout{0};
    // A worker counts as ready when it calls worker_context::ready(); without
    // this, as soon as its signal handling is in place. Readiness drives
    // on_ready, systemd's READY=1 and rolling_reload.
    bool wait_for_ready = false;
    // s6's notification-fd, for workers that exec another program: each
    // worker gets the write end of a pipe of its own as this descriptor, and
    // is ready when a newline arrives on it. -1: off. Implies wait_for_ready.
    int notify_fd = -1;

    // Workers run as this user (name or number) when the master is root:
    // supplementary groups, then the group, then the user (setgroups(2),
    // setgid(2), setuid(2), in that order), and regaining root must fail.
    // Empty: no change. `group` defaults to the user's primary group.
    std::string user;
    std::string group;
    // A worker that drops to a user other than root also gives up every way
    // back through exec(2), before its setuid: its capability bounding set is
    // emptied (prctl PR_CAPBSET_DROP) and no_new_privs is set
    // (PR_SET_NO_NEW_PRIVS), so neither a setuid or setgid program nor file
    // capabilities give it or its children anything. true keeps both, for
    // workers that run setuid helpers (sudo, ping, ...). Needs `user`.
    bool allow_new_privileges = false;

    // Adopt orphaned grandchildren and reap them (prctl PR_SET_CHILD_SUBREAPER),
    // as a container's PID 1 must; on when the master is PID 1 anyway.
    bool subreaper = false;

    // Bounds for scale_up / scale_down (min_workers <= workers <= max_workers).
    int min_workers = 1;
    int max_workers = SUPERVISE_CONFIG_MAX_WORKERS;

    // Listening sockets the constructor binds, in this order (the workers'
    // listener(index)). Under socket activation the sockets are systemd's
    // instead, and each name here must be among them (docs/listeners.md).
    std::vector<listener_spec> listeners;
    // Whether systemd's sockets are taken (LISTEN_PID this process) or not.
    socket_activation_mode socket_activation = socket_activation_mode::automatic;
    // Readiness (statistics::ready(), docs/metrics.md): once every worker has
    // been ready (as for on_ready and READY=1), the pool is ready while at
    // least this many workers are ready and no stop is under way. 1 keeps a
    // pool ready while one crashed worker is being replaced; 0 means every
    // worker of the pool. 0..workers.
    int min_ready_workers = 1;
};

// ---- What a worker sees. ----

// What ends a worker_context::wait_readable() early.
enum class wake_on {
    any_stop,   // any stop request (the usual wait for new work)
    fast_stop,  // only a fast one: for finishing the work in hand after a graceful stop
    // As any_stop, and a fast stop (terminate) that arrives while the worker
    // is blocked in this very wait ends the process in the signal handler,
    // with _exit(0): no return to the worker's code, so no destructor runs and
    // no stdio buffer is flushed. For a worker parked with nothing in hand
    // and nothing to clean up; the master sees "exited with status 0", as
    // after a normal return (docs/design.md, "Leaving at once while parked").
    stop_exits,
};

enum class wait_status {
    ready,           // the descriptor is readable (or in error: the next call says which)
    stop_requested,  // a terminate or graceful_stop signal arrived
    timed_out,
    signalled,  // a `deliver` signal arrived: see worker_context::take_signal()
};

// What worker_context::take_events() found (docs/event-loops.md).
struct worker_events {
    // A stop is requested. It stays true in every later take, so a loop that
    // looks only here cannot miss one taken earlier by stop_requested().
    bool stop = false;
    // ... and it is graceful: stop accepting, finish the work in hand, close
    // idle connections, return (a fast stop that follows clears it).
    bool graceful = false;
    // The watchdog's half period passed with the loop idle; the take beat
    // the heartbeat already. Only with options::heartbeat_timeout.
    bool heartbeat_due = false;
    // The `deliver` signals that arrived since the last take, one bit each
    // (this take consumed them: take_signal() no longer reports them).
    std::uint64_t signals = 0;

    bool signalled(int sig) const noexcept { return (signals & detail::signal_bit(sig)) != 0; }
};

struct statistics;

// The worker's view of the pool, passed to the worker function. Only the pool
// makes one. Its service points (stop_requested, stop_is_graceful,
// take_signal, wait_readable, sleep_for, take_events) take the signals that
// arrived, carry out print_stats, and beat the heartbeat.
class worker_context {
  public:
    int index() const noexcept { return index_; }
    // How many times this slot was started before (0 for the first start).
    unsigned generation() const noexcept { return generation_; }
    pid_t master_pid() const noexcept { return master_pid_; }

    // True once a terminate or graceful_stop signal reached this worker.
    bool stop_requested() noexcept {
        take_pending_signals();
        return stop_signal_ != 0;
    }

    // The signal that requested the stop, or 0.
    int stop_signal() const noexcept { return stop_signal_; }

    // True when the stop asked for is graceful (finish the current work
    // first) and no fast stop came after it.
    bool stop_is_graceful() noexcept {
        take_pending_signals();
        return stop_signal_ != 0 && !fast_stop_;
    }

    // True (once) if `sig`, mapped to `deliver`, arrived since the last call.
    bool take_signal(int sig) noexcept {
        take_pending_signals();
        const std::uint64_t bit = detail::signal_bit(sig);
        const bool seen = (delivered_ & bit) != 0;
        delivered_ &= ~bit;
        return seen;
    }

    // Waits until fd is readable, a stop is requested or the timeout passes
    // (negative: no timeout). Race-free: signals are blocked while the flag is
    // checked and unblocked atomically by ppoll(2), so a signal arriving just
    // before the wait cannot be lost (the seed's pause() race). With
    // wake_on::fast_stop a graceful stop does not end the wait, so a worker
    // can finish reading the request it holds (still beating its heartbeat,
    // still woken by a fast stop).
    wait_status wait_readable(int fd,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(-1),
                              wake_on wake = wake_on::any_stop);

    // Sleeps, waking early on a stop request. Returns false if stopped.
    bool sleep_for(std::chrono::milliseconds duration) {
        return wait_readable(-1, duration) != wait_status::stop_requested;
    }

    // Tells the master this worker serves (with options::wait_for_ready).
    void ready() noexcept;

    // Proves to the watchdog that this worker is alive. Every service point
    // does it too, and wait_readable wakes by itself often enough while the
    // watchdog is on.
    void heartbeat() noexcept;

    // For a worker that runs its own event loop (epoll, poll, io_uring,
    // Boost.Asio, libuv): a descriptor that is readable, level-triggered,
    // while anything is pending for this worker (a stop, a `deliver` signal,
    // with the watchdog on a heartbeat due), until take_events() takes it.
    // Made on the first call (a pipe, or with the watchdog on an epoll set of
    // that pipe and a timerfd), owned by the context; the same number on
    // every call. Readable at once after the first call, so whatever arrived
    // before it is taken too. Throws std::system_error if it cannot be made.
    int events_fd();
    // Non-blocking: empties events_fd() and says what was pending.
    worker_events take_events() noexcept;

    // The pool's listening sockets (options::listeners, or systemd's), in
    // their order; open in every worker, non-blocking.
    const std::vector<listening_socket>& listeners() const noexcept;
    // The descriptor of the listener named `name`, or at `index`. An unknown
    // one throws std::out_of_range naming those there are: a name that does
    // not match is a configuration error, and -1 handed on to accept(2)
    // would fail far from its cause (a worker that lets it escape exits 1,
    // the message logged).
    int listener(std::string_view name) const;
    int listener(std::size_t index) const;
    // The whole pool (every slot, its restarts, last exit and readiness, the
    // stop under way, the master's signal counts), read from the memory the
    // master shares with its workers: no message to the master, which is not
    // woken. Each worker's record is read whole, as the master last wrote it;
    // counters never go backwards (docs/metrics.md, "Consistency").
    // Allocates (the vectors of statistics): not for a signal handler.
    statistics pool_statistics() const;

    // Counts one request handled, in this slot's counter in the shared memory
    // (supervise_requests_total): one relaxed atomic increment, nothing for a
    // worker that never calls it.
    void request_done() noexcept {
        if (requests_ != nullptr) requests_->fetch_add(1, std::memory_order_relaxed);
    }

  private:
    friend struct detail::context_factory;
    explicit worker_context(const detail::context_init& init) noexcept;
    void take_pending_signals() noexcept;
    void write_statistics_line() noexcept;

    int index_ = 0;
    unsigned generation_ = 0;
    pid_t master_pid_ = 0;
    int stats_fd_ = -1;
    std::int64_t started_ms_ = 0;
    detail::worker_signal_plan plan_;
    std::uint64_t signals_seen_ = 0;
    std::uint64_t delivered_ = 0;
    int stop_signal_ = 0;
    bool fast_stop_ = false;
    int report_fd_ = -1;
    bool reported_ready_ = false;
    std::atomic<std::int64_t>* beat_ = nullptr;
    std::int64_t heartbeat_ms_ = 0;
    // In no-fork mode the statistics are the master's table.
    void (*print_table_)(void*) = nullptr;
    void* owner_ = nullptr;
    // The pool's System, as a table (detail::worker_calls_of).
    const detail::worker_calls* calls_ = nullptr;
    // events_fd(): what the loop watches, the pipe the signal handler writes
    // to, and the watchdog's timer (-1 until made; no_fork lends the
    // master's self-pipe instead).
    int events_fd_ = -1;
    int events_pipe_ = -1;
    int events_timer_ = -1;
    int inline_wake_read_ = -1;
    int inline_wake_write_ = -1;
    // The pool's, in the master's memory (a worker's copy after fork).
    const std::vector<listening_socket>* listeners_ = nullptr;
    // pool_statistics(), request_done(): the pool's page, the heartbeats
    // (null with the watchdog off), the pool's name.
    detail::pool_page page_;
    std::atomic<std::uint64_t>* requests_ = nullptr;
    const std::atomic<std::int64_t>* beats_ = nullptr;
    const char* name_ = "";
};

// ---- What run() reports. ----

enum class stop_reason {
    requested,       // a terminate signal
    worker_failed,   // a worker exited on its own (the seed's SIGCHLD row), a fatal
                     // exit, or too many restarts
    startup_failed,  // a worker could not be started
    completed,       // every worker ended and none is to be restarted
};

struct exit_info {
    enum class kind { running, exited, killed, lost };
    kind how = kind::running;
    int code = 0;    // exit status when how == exited
    int signal = 0;  // signal number when how == killed
    bool core_dumped = false;
    // "exited with status 3", "killed by signal 9 (SIGKILL)", "killed by
    // signal 6 (SIGABRT), core dumped", "running".
    std::string describe() const;
};

enum class worker_state {
    idle,  // not started yet
    running,
    stopping,  // asked to stop (gracefully, then fast)
    exited,
    parked,  // stopped by stop_workers; back with rolling_reload or scale_up
};

// Where the pool as a whole stands.
enum class pool_phase {
    starting,  // not every worker has been ready yet
    running,   // every worker was ready once (on_ready, READY=1 were sent)
    draining,  // a graceful stop is under way
    stopping,  // a fast stop (a stop after a worker failure is one too)
};

struct worker_statistics {
    int index = 0;
    pid_t pid = 0;
    worker_state state = worker_state::idle;
    std::chrono::milliseconds uptime{0};
    unsigned generation = 0;
    // Restarts of this slot during the run (a slot that scale_down removed
    // and scale_up brought back goes on counting).
    unsigned restarts = 0;
    // Time since the last heartbeat; negative when the watchdog is off.
    std::chrono::milliseconds heartbeat_age{-1};
    exit_info last_exit;
    // Its process is ready: it called worker_context::ready() (with
    // options::wait_for_ready or notify_fd), or else its set-up is done.
    bool ready = false;
    // Requests the slot's processes, every generation, counted with
    // worker_context::request_done().
    std::uint64_t requests = 0;
};

struct statistics {
    pid_t master_pid = 0;
    std::chrono::milliseconds uptime{0};
    std::uint64_t signals_received = 0;
    // signals_by_number[s] counts deliveries of signal s (standard signals
    // coalesce in the kernel, so this counts deliveries, not kill() calls).
    std::vector<std::uint32_t> signals_by_number;
    std::vector<worker_statistics> workers;
    // The pool as a whole: its options::name, where it stands, the signal
    // that asked for the stop under way (0: none), a rolling reload under way.
    std::string name;
    pool_phase phase = pool_phase::starting;
    int stop_signal = 0;
    bool reloading = false;
    int min_ready_workers = 1;  // options::min_ready_workers
    // False when the worker that read these statistics found its master gone
    // (it is no longer the worker's parent).
    bool master_running = true;

    // Workers serving now: running, not asked to stop, and ready.
    int ready_workers() const noexcept;
    // Readiness (a Kubernetes readinessProbe, a load balancer's health
    // check): the master runs, the pool is `running` (every worker was ready
    // once, no stop under way) and ready_workers() reaches min_ready_workers
    // (0: every worker). docs/metrics.md, "Readiness and liveness".
    bool ready() const noexcept;
    // Liveness (a livenessProbe): the master runs. A worker that can answer
    // at all proves the rest; a draining pool is still live.
    bool live() const noexcept;

    // The table SIGUSR1 prints.
    std::string table() const;
    // The same as one JSON object (for a status endpoint or a log line):
    // {"master_pid":1,"uptime_ms":2,"signals_received":3,"signals":{"SIGUSR1":3},
    //  "workers":[{"index":0,"pid":4,"state":"running","uptime_ms":2,
    //  "generation":0,"restarts":0,"heartbeat_age_ms":null,"last_exit":null,
    //  "ready":true,"requests":0}]}
    std::string json() const;
    // The OpenMetrics 1.0 text exposition (what Prometheus scrapes; serve it
    // as application/openmetrics-text; version=1.0.0; charset=utf-8), ending
    // in "# EOF". Every metric is listed in docs/metrics.md.
    std::string openmetrics() const;
};

struct outcome {
    stop_reason reason = stop_reason::requested;
    int exit_status = 0;   // 0 only for a requested stop; pass it to exit()
    int signal = 0;        // the signal that requested the stop, if any
    std::string detail;    // one line: why the pool stopped
    int hooks_failed = 0;  // destroy hooks that threw
};

// "SIGTERM", "SIGRTMIN+3", "signal 99".
std::string signal_name(int sig);
// "idle", "running", "stopping", "exited", "parked".
const char* to_string(worker_state state) noexcept;
// "starting", "running", "draining", "stopping".
const char* to_string(pool_phase phase) noexcept;

// ---- The operating-system seam ----

// Every system call the pool makes, in the master and in its workers
// (worker_context included), goes through these static functions, so a test
// (or a user's test, docs/testing-your-daemon.md) can derive from
// posix_system, hide one of them and inject a failure. Each keeps the
// -1/errno convention. Outside the seam, on purpose:
// - signal handlers (on_signal, on_destroy_deadline): they must stay
//   async-signal-safe, and a user's replacement need not be;
// - calls that cannot fail in a way the pool could handle: getpid, geteuid,
//   getegid, clock_gettime(CLOCK_MONOTONIC), _exit;
// - the user database (getpwnam_r, getgrnam_r, getgrouplist) and getrlimit,
//   read once by the constructor to check options, before anything starts.
struct posix_system {
    static pid_t fork() noexcept { return ::fork(); }
    static int kill(pid_t pid, int sig) noexcept { return ::kill(pid, sig); }
    static pid_t waitpid(pid_t pid, int* status, int flags) noexcept {
        return ::waitpid(pid, status, flags);
    }
    static int waitid(idtype_t type, id_t id, siginfo_t* info, int flags) noexcept {
        return ::waitid(type, id, info, flags);
    }
    static int sigaction(int sig, const struct ::sigaction* act, struct ::sigaction* old) noexcept {
        return ::sigaction(sig, act, old);
    }
    // pthread_sigmask reports errors by return value; this keeps the -1/errno
    // convention of the other calls.
    static int thread_sigmask(int how, const sigset_t* set, sigset_t* old) noexcept {
        const int rc = ::pthread_sigmask(how, set, old);
        if (rc != 0) {
            errno = rc;
            return -1;
        }
        return 0;
    }
    static int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                     const sigset_t* mask) noexcept {
        return ::ppoll(fds, n, timeout, mask);
    }
    static int sigtimedwait(const sigset_t* set, const struct timespec* timeout) noexcept {
        return ::sigtimedwait(set, nullptr, timeout);
    }
    static int pipe2(int fds[2], int flags) noexcept { return ::pipe2(fds, flags); }
    static int close(int fd) noexcept { return ::close(fd); }
    // close_range(2) closes first..last in one call (Linux 5.9+); -1 with
    // ENOSYS where the kernel or the headers lack it, and callers fall back
    // to close() one by one.
    static int close_range(unsigned first, unsigned last) noexcept {
#ifdef SYS_close_range
        return static_cast<int>(::syscall(SYS_close_range, first, last, 0U));
#else
        (void)first;
        (void)last;
        errno = ENOSYS;
        return -1;
#endif
    }
    static ssize_t write(int fd, const void* data, std::size_t size) noexcept {
        return ::write(fd, data, size);
    }
    static ssize_t read(int fd, void* data, std::size_t size) noexcept {
        return ::read(fd, data, size);
    }
    static int setpgid(pid_t pid, pid_t pgid) noexcept { return ::setpgid(pid, pgid); }
    static int set_parent_death_signal(int sig) noexcept {
        return ::prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig), 0UL, 0UL, 0UL);
    }
    static pid_t getppid() noexcept { return ::getppid(); }
    static void* mmap(std::size_t size) noexcept {
        return ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    static int munmap(void* address, std::size_t size) noexcept { return ::munmap(address, size); }
    static int socket(int domain, int type, int protocol) noexcept {
        return ::socket(domain, type, protocol);
    }
    static ssize_t sendto(int fd, const void* data, std::size_t size, const struct sockaddr* to,
                          socklen_t to_size) noexcept {
        return ::sendto(fd, data, size, MSG_NOSIGNAL, to, to_size);
    }
    // Listeners (options::listeners): bound, checked and, for a unix socket
    // the pool created, removed by the master, never by a worker.
    static int bind(int fd, const struct sockaddr* address, socklen_t size) noexcept {
        return ::bind(fd, address, size);
    }
    static int listen(int fd, int backlog) noexcept { return ::listen(fd, backlog); }
    static int setsockopt(int fd, int level, int name, const void* value, socklen_t size) noexcept {
        return ::setsockopt(fd, level, name, value, size);
    }
    static int getsockopt(int fd, int level, int name, void* value, socklen_t* size) noexcept {
        return ::getsockopt(fd, level, name, value, size);
    }
    static int getsockname(int fd, struct sockaddr* address, socklen_t* size) noexcept {
        return ::getsockname(fd, address, size);
    }
    static int fstat(int fd, struct ::stat* info) noexcept { return ::fstat(fd, info); }
    static int stat(const char* path, struct ::stat* info) noexcept { return ::stat(path, info); }
    static int chmod(const char* path, mode_t mode) noexcept { return ::chmod(path, mode); }
    static int unlink(const char* path) noexcept { return ::unlink(path); }
    // pidfds (Linux 5.3+) name a process, not a number: a signal through one
    // can never reach a process that reused the pid. -1 where unsupported.
    static int pidfd_open(pid_t pid) noexcept {
        return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    }
    static int pidfd_send_signal(int pidfd, int sig) noexcept {
        return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
    }
    // epoll(7) over the workers' pidfds names the ones that ended: a pidfd
    // is readable once its process has exited (pidfd_open(2)).
    static int epoll_create1(int flags) noexcept { return ::epoll_create1(flags); }
    static int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) noexcept {
        return ::epoll_ctl(epfd, op, fd, event);
    }
    static int epoll_wait(int epfd, struct epoll_event* events, int max, int timeout) noexcept {
        return ::epoll_wait(epfd, events, max, timeout);
    }
    // The watchdog's beat for a worker that waits in its own event loop
    // (worker_context::events_fd()).
    static int timerfd_create(int clock, int flags) noexcept {
        return ::timerfd_create(clock, flags);
    }
    static int timerfd_settime(int fd, int flags, const struct itimerspec* value,
                               struct itimerspec* old) noexcept {
        return ::timerfd_settime(fd, flags, value, old);
    }
    static int set_child_subreaper(bool on) noexcept {
        return ::prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL);
    }
    static int get_child_subreaper(int* on) noexcept {
        return ::prctl(PR_GET_CHILD_SUBREAPER, on, 0UL, 0UL, 0UL);
    }
    static int open(const char* path, int flags) noexcept { return ::open(path, flags); }
    static int fcntl(int fd, int command, int argument) noexcept {
        return ::fcntl(fd, command, argument);
    }
    static int dup2(int from, int to) noexcept { return ::dup2(from, to); }
    static int setgroups(std::size_t count, const gid_t* groups) noexcept {
        return ::setgroups(count, groups);
    }
    static int setgid(gid_t gid) noexcept { return ::setgid(gid); }
    static int setuid(uid_t uid) noexcept { return ::setuid(uid); }
    // What a worker that drops privileges gives up besides root (prctl(2)):
    // one capability of its bounding set, and, with no_new_privs, whatever
    // an exec could grant (setuid and setgid bits, file capabilities).
    static int drop_bounding_capability(int cap) noexcept {
        return ::prctl(PR_CAPBSET_DROP, static_cast<unsigned long>(cap), 0UL, 0UL, 0UL);
    }
    static int set_no_new_privileges() noexcept {
        return ::prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL);
    }
    static int setitimer(int which, const struct itimerval* value, struct itimerval* old) noexcept {
        return ::setitimer(which, value, old);
    }
};

// ---- The pool: a master and its workers. ----

//   Worker          callable as void(worker_context&) or int(worker_context&)
//   MasterSignals   signal_map for the master; it must map SIGTERM to
//                   terminate or graceful_stop (docs/signals.md)
//   WorkerSignals   signal_map for each worker
//   Strategy        shutdown_all, one_for_one, one_for_all or rest_for_one
//   System          posix_system, or a type derived from it (tests)
template <class Worker, class MasterSignals = default_master_signals,
          class WorkerSignals = default_worker_signals, class Strategy = shutdown_all,
          class System = posix_system>
class pool {
    static_assert(detail::is_signal_map<MasterSignals>::value,
                  "supervise: MasterSignals must be a supervise::signal_map<...>");
    static_assert(detail::is_signal_map<WorkerSignals>::value,
                  "supervise: WorkerSignals must be a supervise::signal_map<...>");
    static_assert(detail::stops_cleanly<MasterSignals>::value,
                  "supervise: the master's signal_map must map SIGTERM to terminate or "
                  "graceful_stop: SIGTERM is how systemd, Kubernetes, docker stop and kill(1) "
                  "stop a service, and without that row the master dies of the default action "
                  "(exit 143) with no destroy hook run and its workers left to the "
                  "parent-death signal");
    static_assert(detail::all_rows_allowed<MasterSignals, detail::is_master_action>::value,
                  "supervise: deliver is a worker action: it cannot appear in MasterSignals");
    static_assert(detail::all_rows_allowed<WorkerSignals, detail::is_worker_action>::value,
                  "supervise: rolling_reload, scale_up, scale_down, stop_workers and forward<> "
                  "are master actions: they cannot appear in WorkerSignals");
    static_assert(detail::is_strategy<Strategy>::value,
                  "supervise: the strategy must be shutdown_all, one_for_one, one_for_all or "
                  "rest_for_one");
    static_assert(std::is_base_of_v<posix_system, System>,
                  "supervise: System must be posix_system or derive from it");
    static_assert(std::is_invocable_v<Worker&, worker_context&>,
                  "supervise: the worker must be callable as worker(worker_context&)");

  public:
    // Checks the options (std::invalid_argument with the reason) and opens
    // the listeners: binds options::listeners, or takes systemd's sockets
    // (std::invalid_argument, std::system_error or std::runtime_error, with
    // nothing left open: docs/listeners.md). Starts no process.
    explicit pool(Worker worker, options opts = {});

    // Registers a destroy hook (the seed's module destroy functions). Hooks
    // run once, in reverse order of registration, after every worker has been
    // reaped, on every way the pool stops.
    void on_destroy(std::string name, std::function<void()> hook) {
        hooks_.push_back(detail::destroy_hook{std::move(name), std::move(hook)});
    }

    // Called in the master once, when every worker is ready: it has its
    // signal handling in place (each worker reports it through a pipe, so a
    // signal sent from here on reaches a worker that acts on it), and, with
    // options::wait_for_ready or notify_fd, it said so itself. The example
    // daemon prints its "ready" line here; systemd gets READY=1 just before.
    void on_ready(std::function<void()> hook) { ready_hook_ = std::move(hook); }

    // Supervises until the pool stops; returns why. Throws std::logic_error
    // before starting anything if another pool is running in this process or
    // if other threads exist and options::allow_threads is false.
    outcome run();

    // The pool as it is (from a hook or the ready callback during run()), or
    // as it was when the last run() ended.
    statistics snapshot() const;

    const options& settings() const noexcept { return opts_; }

    // The listening sockets, as the workers see them (worker_context's
    // members of the same names), for the program that embeds the pool.
    // They stay open until the pool is destroyed.
    const std::vector<listening_socket>& listeners() const noexcept;
    int listener(std::string_view name) const;
    int listener(std::size_t index) const;

  private:
    Worker worker_;
    options opts_;
    detail::credentials credentials_;
    // Open from the constructor until the pool goes, across run()s.
    detail::listener_set<System> listeners_;
    std::vector<detail::destroy_hook> hooks_;
    std::function<void()> ready_hook_;
    const detail::master<System>* running_ = nullptr;
    statistics last_run_;
};

// `supervise::pool pool{worker, opts};` takes the default maps and strategy.
template <class Worker>
pool(Worker) -> pool<Worker>;
template <class Worker>
pool(Worker, options) -> pool<Worker>;

// Spells the maps and strategy without naming the worker's (lambda) type:
//   auto p = supervise::make_pool<my_master_map>(worker, opts);
template <class MasterSignals = default_master_signals,
          class WorkerSignals = default_worker_signals, class Strategy = shutdown_all,
          class System = posix_system, class Worker>
pool<Worker, MasterSignals, WorkerSignals, Strategy, System> make_pool(Worker worker,
                                                                       options opts = {}) {
    return pool<Worker, MasterSignals, WorkerSignals, Strategy, System>(std::move(worker),
                                                                        std::move(opts));
}

}  // namespace SUPERVISE_ABI_NAMESPACE
}  // namespace supervise

// ============================================================================
// 3. Implementation
// ============================================================================
//
// supervise::detail, in the order a master uses it:
//   signal state and the handlers      what a signal handler may touch
//   compile-time tables                signal maps checked and turned into values
//   small helpers                      time, text, EINTR, the worker's seam
//   descriptors                        unique_fd, one owner per descriptor
//   options, credentials, systemd      checked before anything starts
//   listeners                          bound or taken from systemd by the pool's constructor
//   the master's parts                 signal_scope, subreaper_scope,
//                                      heartbeat_table, restart_policy,
//                                      process_table, worker_launch, cleanup
//   the master's cycle                 master<System>: one run() of a pool
// then the bodies of the public members (worker_context, statistics, pool).

namespace supervise {
inline namespace SUPERVISE_ABI_NAMESPACE {
namespace detail {

// ---- signal state and the handlers ----

// Everything a signal handler touches. A handler may only use lock-free
// atomics (C++17 [support.signal]): a lock inside std::atomic would deadlock
// when the signal interrupts the thread holding it.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "supervise: the pending-signal set must be a lock-free atomic");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "supervise: signal counters must be lock-free atomics");
static_assert(std::atomic<int>::is_always_lock_free,
              "supervise: the wake-up descriptor must be a lock-free atomic");

// Heartbeats live in memory shared with the workers (mmap before fork); a
// lock-free atomic is address-free, so it works across processes.
static_assert(std::atomic<std::int64_t>::is_always_lock_free,
              "supervise: heartbeats must be lock-free atomics to be shared between processes");

struct signal_state {
    // One bit per signal, set by the handler, taken by the loop. Unlike
    // Kamailio's single `sig_flag`, two different signals never overwrite
    // each other.
    std::atomic<std::uint64_t> pending{0};
    // Write end of the master's self-pipe, or -1. Lets a signal taken by any
    // thread wake the master (see docs/design.md, "Threads").
    std::atomic<int> wake_fd{-1};
    // Where the destroy-hook deadline handler writes its one line.
    std::atomic<int> deadline_fd{-1};
    // Handlers between their load of wake_fd and the end of their write:
    // the pipe is closed only once none is (signal_scope's restore), or a
    // handler in another thread could write its byte into whatever file
    // took the number next.
    std::atomic<int> writing{0};
    std::atomic<std::uint32_t> received[max_signal + 1]{};
    // The signals that end this process in the handler: set by a worker
    // only while it is blocked in wait_readable(..., wake_on::stop_exits).
    std::atomic<std::uint64_t> exit_now{0};
};

// Constant-initialised (no guard variable, no constructor running at load
// time), so it is usable from a handler at any moment, and one object for the
// whole program however many translation units include this header.
#if defined(__cpp_constinit)
constinit
#endif
    inline signal_state process_signals{};

// _exit(0) without libc: the exit_group system call itself, for the handler.
// A worker's first call of ::_exit would bind the symbol lazily (the dynamic
// linker's lookup, several page faults in every worker); the bare system
// call needs nothing, and a system call is as async-signal-safe as anything
// can be. Elsewhere it is ::_exit, which signal-safety(7) lists.
[[noreturn]] inline void exit_in_handler() noexcept {
#if defined(__x86_64__)
    __asm__ volatile("syscall" : : "a"(SYS_exit_group), "D"(0) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long number __asm__("x8") = SYS_exit_group;
    register long status __asm__("x0") = 0;
    __asm__ volatile("svc 0" : : "r"(number), "r"(status) : "memory");
#endif
    ::_exit(0);
}

// The one handler of every mapped signal: record, wake, nothing else.
// Everything it calls is on the signal-safety(7) list;
// tests/compile/handler_safety_test.sh disassembles it to prove that.
inline void on_signal(int sig) noexcept {
    const int saved_errno = errno;
    // Nothing of the worker's is in hand: leave as the kernel's default
    // action would, but with status 0.
    if ((process_signals.exit_now.load(std::memory_order_relaxed) & signal_bit(sig)) != 0) {
        exit_in_handler();
    }
    if (sig >= 1 && sig <= max_signal) {
        process_signals.received[sig].fetch_add(1, std::memory_order_relaxed);
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        process_signals.writing.fetch_add(1, std::memory_order_seq_cst);
        const int fd = process_signals.wake_fd.load(std::memory_order_seq_cst);
        if (fd >= 0) {
            // static: an address-taken local would get a stack canary, and a
            // call to __stack_chk_fail, under -fstack-protector-strong.
            static const char byte = 0;
            // A full pipe (EAGAIN) already holds a wake-up: nothing is lost.
            if (::write(fd, &byte, 1) < 0) {
            }
        }
        process_signals.writing.fetch_sub(1, std::memory_order_release);
    }
    errno = saved_errno;
}

// SIGALRM handler while destroy hooks run: a hook that hangs cannot be
// interrupted any other way, so the master leaves (Kamailio abort()s here).
// write(2) and _exit(2) are both async-signal-safe.
[[noreturn]] inline void on_destroy_deadline(int) noexcept {
    static const char message[] =
        "supervise: destroy hooks exceeded destroy_timeout; exiting with status 1\n";
    const int fd = process_signals.deadline_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
        if (::write(fd, message, sizeof message - 1) < 0) {
        }
    }
    ::_exit(EXIT_FAILURE);
}

// A process-wide guard: the signal state above is global, so only one pool
// may supervise at a time.
inline std::atomic<bool> pool_running{false};

// ---- compile-time tables ----

// Which actions a master map and a worker map may use.
template <class Action>
struct is_master_action
    : std::bool_constant<std::is_same_v<Action, terminate> || std::is_same_v<Action, print_stats> ||
                         std::is_same_v<Action, ignore> || std::is_same_v<Action, graceful_stop> ||
                         std::is_same_v<Action, rolling_reload> ||
                         std::is_same_v<Action, scale_up> || std::is_same_v<Action, scale_down> ||
                         std::is_same_v<Action, stop_workers>> {};
template <int Signal>
struct is_master_action<forward<Signal>> : std::true_type {};
template <class Action>
struct is_worker_action
    : std::bool_constant<std::is_same_v<Action, terminate> || std::is_same_v<Action, print_stats> ||
                         std::is_same_v<Action, ignore> || std::is_same_v<Action, graceful_stop> ||
                         std::is_same_v<Action, deliver>> {};
template <class Action>
struct is_action
    : std::bool_constant<is_master_action<Action>::value || is_worker_action<Action>::value> {};

template <class Action>
struct is_forward : std::false_type {};
template <int Signal>
struct is_forward<forward<Signal>> : std::true_type {};

template <class... Rows, template <class> class Allowed>
struct all_rows_allowed<signal_map<Rows...>, Allowed>
    : std::bool_constant<(Allowed<typename Rows::action>::value && ...)> {};

template <int... Signals>
constexpr bool all_distinct() noexcept {
    constexpr int list[] = {Signals..., 0};
    for (std::size_t i = 0; i < sizeof...(Signals); ++i) {
        for (std::size_t j = i + 1; j < sizeof...(Signals); ++j) {
            if (list[i] == list[j]) return false;
        }
    }
    return true;
}

template <class T>
struct is_signal_map : std::false_type {};
template <class... Rows>
struct is_signal_map<signal_map<Rows...>> : std::true_type {};

// A master that cannot be stopped by SIGTERM dies of it. Anything that is not
// a signal_map passes here: the assertion before this one names that error.
template <class MasterSignals>
struct stops_cleanly : std::true_type {};
template <class... Rows>
struct stops_cleanly<signal_map<Rows...>>
    : std::bool_constant<((signal_map<Rows...>::template mask_of<terminate> |
                           signal_map<Rows...>::template mask_of<graceful_stop>)&signal_bit(
                              SIGTERM)) != 0> {};

template <class Strategy>
struct is_strategy
    : std::bool_constant<std::is_same_v<Strategy, shutdown_all> ||
                         std::is_same_v<Strategy, one_for_one> ||
                         std::is_same_v<Strategy, one_for_all> ||
                         std::is_same_v<Strategy, rest_for_one>> {};

// What the master does with a signal: a new master action is one enumerator
// here, one line in master_row_of and one `case` in master::perform.
enum class master_action : std::uint8_t {
    ignore,
    terminate,
    graceful_stop,
    print_stats,
    rolling_reload,
    scale_up,
    scale_down,
    stop_workers,
    forward,
};
struct master_row {
    int signal;
    master_action action;
    int forwarded;  // forward<SIG>'s SIG, else 0
};
template <class Action>
constexpr master_row master_row_of(int sig) noexcept {
    if constexpr (std::is_same_v<Action, terminate>) return {sig, master_action::terminate, 0};
    if constexpr (std::is_same_v<Action, graceful_stop>) {
        return {sig, master_action::graceful_stop, 0};
    }
    if constexpr (std::is_same_v<Action, print_stats>) return {sig, master_action::print_stats, 0};
    if constexpr (std::is_same_v<Action, rolling_reload>) {
        return {sig, master_action::rolling_reload, 0};
    }
    if constexpr (std::is_same_v<Action, scale_up>) return {sig, master_action::scale_up, 0};
    if constexpr (std::is_same_v<Action, scale_down>) return {sig, master_action::scale_down, 0};
    if constexpr (std::is_same_v<Action, stop_workers>) {
        return {sig, master_action::stop_workers, 0};
    }
    if constexpr (is_forward<Action>::value) return {sig, master_action::forward, Action::signal};
    if constexpr (std::is_same_v<Action, ignore>) return {sig, master_action::ignore, 0};
}

// The master's map as rows in the order written (the order in which pending
// signals act).
template <class Map>
struct master_rows;
template <class... Rows>
struct master_rows<signal_map<Rows...>> {
    static constexpr std::array<master_row, sizeof...(Rows)> rows{
        {master_row_of<typename Rows::action>(Rows::signal)...}};
};

enum class strategy_kind { shutdown_all, one_for_one, one_for_all, rest_for_one };
template <class Strategy>
constexpr strategy_kind strategy_of() noexcept {
    if constexpr (std::is_same_v<Strategy, one_for_one>) return strategy_kind::one_for_one;
    if constexpr (std::is_same_v<Strategy, one_for_all>) return strategy_kind::one_for_all;
    if constexpr (std::is_same_v<Strategy, rest_for_one>) return strategy_kind::rest_for_one;
    return strategy_kind::shutdown_all;
}

// A pool's template arguments as values: what master<System> needs of them.
struct pool_plan {
    const master_row* rows;
    std::size_t row_count;
    std::uint64_t master_mask;  // the mapped signals, SIGCHLD not included
    worker_signal_plan worker;
    // The signal a graceful stop sends: the worker map's graceful_stop row
    // (the lowest-numbered one), or SIGTERM when it has none.
    int graceful_signal;
    strategy_kind strategy;
    // The master's own rows as a worker plan, for no_fork (the worker is the
    // master itself).
    worker_signal_plan inline_worker;
};

constexpr int lowest_signal(std::uint64_t mask, int otherwise) noexcept {
    for (int sig = 1; sig <= max_signal; ++sig) {
        if (mask & signal_bit(sig)) return sig;
    }
    return otherwise;
}

template <class Map>
constexpr worker_signal_plan worker_plan_of() noexcept {
    worker_signal_plan plan;
    plan.stop = Map::template mask_of<terminate>;
    plan.graceful = Map::template mask_of<graceful_stop>;
    plan.stats = Map::template mask_of<print_stats>;
    plan.deliver = Map::template mask_of<deliver>;
    plan.handled = plan.stop | plan.graceful | plan.stats | plan.deliver;
    plan.ignored = Map::template mask_of<ignore>;
    return plan;
}

template <class MasterSignals, class WorkerSignals, class Strategy>
constexpr pool_plan plan_of() noexcept {
    worker_signal_plan inline_worker = worker_plan_of<MasterSignals>();
    inline_worker.handled = MasterSignals::mask;
    inline_worker.ignored = 0;
    return pool_plan{master_rows<MasterSignals>::rows.data(),
                     master_rows<MasterSignals>::rows.size(),
                     MasterSignals::mask,
                     worker_plan_of<WorkerSignals>(),
                     lowest_signal(WorkerSignals::template mask_of<graceful_stop>, SIGTERM),
                     strategy_of<Strategy>(),
                     inline_worker};
}

// A worker function behind one signature, so the master's code is not a
// template on the worker's type.
struct worker_entry {
    void* object;
    int (*call)(void* object, worker_context& context);
};
template <class Worker>
int call_worker(void* object, worker_context& context) {
    Worker& worker = *static_cast<Worker*>(object);
    if constexpr (std::is_convertible_v<std::invoke_result_t<Worker&, worker_context&>, int>) {
        return worker(context);
    } else {
        worker(context);
        return EXIT_SUCCESS;
    }
}

// Inside a catch block: ": what()" of a std::exception, else `otherwise`, so
// that every "... failed" and "... threw" line is worded alike.
inline std::string describe_thrown(const char* otherwise) {
    try {
        throw;
    } catch (const std::exception& e) {
        return std::string(": ") + e.what();
    } catch (...) {
        return otherwise;
    }
}

// The one place a worker's code runs, forked or inline: its exit status, or
// why it threw.
struct worker_result {
    int code = EXIT_SUCCESS;
    std::string failure;  // empty unless it threw
};
inline worker_result run_worker_code(const worker_entry& entry, worker_context& context,
                                     int index) noexcept {
    worker_result result;
    try {
        try {
            result.code = entry.call(entry.object, context);
        } catch (...) {
            result.code = EXIT_FAILURE;
            result.failure = "worker " + std::to_string(index) + " threw" +
                             describe_thrown(" a non-standard exception");
        }
    } catch (...) {
        // No memory left for the message: the status still says it failed.
        result.code = EXIT_FAILURE;
    }
    return result;
}

// ---- small helpers ----

// EINTR is retried in one place rather than at every call site.
template <class Call>
auto retry_on_eintr(Call call) noexcept -> decltype(call()) {
    decltype(call()) rc;
    do {
        rc = call();
    } while (rc == -1 && errno == EINTR);
    return rc;
}

inline std::int64_t monotonic_ms() noexcept {
    struct timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

inline struct timespec to_timespec(std::int64_t ms) noexcept {
    if (ms < 0) ms = 0;
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(ms / 1000);
    ts.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
    return ts;
}

// Appends a decimal number to buf without allocating (used from the worker's
// statistics line, which must not allocate either).
inline std::size_t append_number(char* buf, std::size_t pos, std::size_t cap,
                                 std::int64_t value) noexcept {
    char digits[24];
    std::size_t n = 0;
    const bool negative = value < 0;
    std::uint64_t v =
        negative ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (negative && pos < cap) buf[pos++] = '-';
    while (n > 0 && pos < cap) buf[pos++] = digits[--n];
    return pos;
}

inline std::size_t append_text(char* buf, std::size_t pos, std::size_t cap,
                               const char* text) noexcept {
    while (*text != '\0' && pos < cap) buf[pos++] = *text++;
    return pos;
}

// The system calls a worker_context makes. worker_context is not a template
// (one type serves every pool), so the pool hands it this table, filled from
// its System: a failure injected through the seam reaches the worker's side
// too. Plain function pointers: a user's System need not declare noexcept.
struct worker_calls {
    ssize_t (*write)(int, const void*, std::size_t);
    int (*thread_sigmask)(int, const sigset_t*, sigset_t*);
    int (*ppoll)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*);
    int (*sigtimedwait)(const sigset_t*, const struct timespec*);
    // worker_context::events_fd() and take_events()
    ssize_t (*read)(int, void*, std::size_t);
    int (*pipe2)(int*, int);
    int (*close)(int);
    int (*epoll_create1)(int);
    int (*epoll_ctl)(int, int, int, struct epoll_event*);
    int (*timerfd_create)(int, int);
    int (*timerfd_settime)(int, int, const struct itimerspec*, struct itimerspec*);
    // worker_context::pool_statistics(): is the master still the parent?
    pid_t (*getppid)();
};

template <class System>
const worker_calls& worker_calls_of() noexcept {
    static constexpr worker_calls table{
        &System::write,          &System::thread_sigmask, &System::ppoll,
        &System::sigtimedwait,   &System::read,           &System::pipe2,
        &System::close,          &System::epoll_create1,  &System::epoll_ctl,
        &System::timerfd_create, &System::timerfd_settime, &System::getppid};
    return table;
}

inline void write_all(const worker_calls& calls, int fd, const char* data,
                      std::size_t size) noexcept {
    if (fd < 0) return;
    while (size > 0) {
        const ssize_t n = retry_on_eintr([&] { return calls.write(fd, data, size); });
        if (n < 0 && errno == EPIPE) {
            // Our own write raised a SIGPIPE at this thread (pipe(7)). Where
            // SIGPIPE is blocked (the master) it would wait and then read as
            // an operator's stop request: take it now. A log nobody reads is
            // dropped, it never stops the pool.
            sigset_t pipe_only;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            const struct timespec now {};
            retry_on_eintr([&] { return calls.sigtimedwait(&pipe_only, &now); });
            return;
        }
        if (n <= 0) return;  // a log that cannot be written is dropped, never fatal
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

template <class System>
void write_all(int fd, const char* data, std::size_t size) noexcept {
    write_all(worker_calls_of<System>(), fd, data, size);
}

inline std::string format_ms(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld s", static_cast<long long>(ms.count() / 1000),
                  static_cast<long long>(ms.count() % 1000));
    return buf;
}

// A label value or HELP text as OpenMetrics writes it: UTF-8, with the
// backslash, the double quote and the line feed escaped. A byte that starts
// no well-formed UTF-8 sequence (options::name is the program's text, not
// ours) becomes U+FFFD, as a reader shows it, instead of making the whole
// exposition unreadable.
inline std::string openmetrics_escaped(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto continuation = [&](std::size_t at) {
        return at < text.size() && (static_cast<unsigned char>(text[at]) & 0xc0) == 0x80;
    };
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if (c == '\\') {
                out += "\\\\";
            } else if (c == '"') {
                out += "\\\"";
            } else if (c == '\n') {
                out += "\\n";
            } else {
                out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // RFC 3629's table: the length, and the range of the second byte
        // (which excludes overlong forms and surrogates).
        std::size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            length = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            length = 3;
            if (c == 0xe0) low = 0xa0;
            if (c == 0xed) high = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            length = 4;
            if (c == 0xf0) low = 0x90;
            if (c == 0xf4) high = 0x8f;
        }
        bool whole = length > 0 && i + 1 < text.size() &&
                     static_cast<unsigned char>(text[i + 1]) >= low &&
                     static_cast<unsigned char>(text[i + 1]) <= high;
        for (std::size_t k = 2; whole && k < length; ++k) whole = continuation(i + k);
        if (whole) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out += "\xef\xbf\xbd";  // U+FFFD
            ++i;
        }
    }
    return out;
}

// Milliseconds as OpenMetrics seconds: "12.345".
inline std::string seconds_text(std::chrono::milliseconds ms) {
    const long long count = std::max<long long>(0, static_cast<long long>(ms.count()));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld", count / 1000, count % 1000);
    return buf;
}

inline exit_info decode_wait_status(int status) noexcept {
    exit_info info;
    if (WIFEXITED(status)) {
        info.how = exit_info::kind::exited;
        info.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        info.how = exit_info::kind::killed;
        info.signal = WTERMSIG(status);
        info.core_dumped = WCOREDUMP(status);
    }
    return info;
}

// ThreadSanitizer runs a background thread of its own in every process
// (including each fork child); it holds none of the program's locks, so the
// threads check does not count it.
#if defined(__SANITIZE_THREAD__)
constexpr int sanitizer_threads = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int sanitizer_threads = 1;
#else
constexpr int sanitizer_threads = 0;
#endif
#else
constexpr int sanitizer_threads = 0;
#endif

// Number of threads of this process that belong to the program, or 0 when
// /proc cannot tell.
template <class System>
int thread_count() noexcept {
    const int fd =
        retry_on_eintr([] { return System::open("/proc/self/status", O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return 0;
    char buf[4096];
    std::size_t used = 0;
    for (;;) {
        const ssize_t n =
            retry_on_eintr([&] { return System::read(fd, buf + used, sizeof buf - 1 - used); });
        if (n <= 0) break;
        used += static_cast<std::size_t>(n);
        if (used == sizeof buf - 1) break;
    }
    System::close(fd);
    buf[used] = '\0';
    const char* line = std::strstr(buf, "\nThreads:");
    if (line == nullptr) return 0;
    // strtol, not atoi: atoi's result for a number out of range is undefined.
    return static_cast<int>(std::strtol(line + 9, nullptr, 10)) - sanitizer_threads;
}

// The children of this process's main thread, which is where the kernel
// re-parents orphans for a subreaper (proc(5): /proc/PID/task/TID/children);
// empty when /proc cannot tell (no CONFIG_PROC_CHILDREN, or a /proc from
// another PID namespace), and then `readable` is false and errno says why.
template <class System>
std::vector<pid_t> main_thread_children(bool* readable = nullptr) {
    const std::string path = "/proc/self/task/" + std::to_string(::getpid()) + "/children";
    std::vector<pid_t> found;
    const int fd =
        retry_on_eintr([&] { return System::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (readable != nullptr) *readable = fd >= 0;
    if (fd < 0) return found;
    std::string text;
    char buf[512];
    for (;;) {
        const ssize_t n = retry_on_eintr([&] { return System::read(fd, buf, sizeof buf); });
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    System::close(fd);
    const char* at = text.c_str();
    for (char* next = nullptr;; at = next) {
        const long pid = std::strtol(at, &next, 10);
        if (next == at) break;
        found.push_back(static_cast<pid_t>(pid));
    }
    return found;
}

inline sigset_t sigset_of(std::uint64_t bits) noexcept {
    sigset_t set;
    sigemptyset(&set);
    for (int sig = 1; sig <= max_signal; ++sig) {
        if (bits & signal_bit(sig)) sigaddset(&set, sig);
    }
    return set;
}

inline sigset_t sigset_without(sigset_t set, std::uint64_t bits) noexcept {
    for (int sig = 1; sig <= max_signal; ++sig) {
        if (bits & signal_bit(sig)) sigdelset(&set, sig);
    }
    return set;
}

// ---- the worker's side of the pool ----

// What the pool hands a new worker_context; only the pool makes one.
struct context_init {
    int index;
    unsigned generation;
    pid_t master_pid;
    int stats_fd;
    worker_signal_plan plan;
    void (*print_table)(void*);  // no_fork: the master's table; else null
    void* owner;
    int report_fd;                     // where ready() reports, or -1
    std::atomic<std::int64_t>* beat;   // this worker's heartbeat slot, or null
    std::int64_t heartbeat_ms;         // the watchdog's timeout, 0 when off
    const worker_calls* calls;         // the pool's System
    std::int64_t started_ms;           // the master's clock when it started the worker
    int inline_wake_read = -1;         // no_fork: the master's self-pipe, for events_fd()
    int inline_wake_write = -1;
    const std::vector<listening_socket>* listeners = nullptr;  // the pool's
    pool_page page{};                  // the pool's page (pool_statistics, request_done)
    const std::atomic<std::int64_t>* beats = nullptr;  // every slot's heartbeat, or null
    const char* name = "";                             // options::name
};
struct context_factory {
    static worker_context make(const context_init& init) noexcept { return worker_context(init); }
};

// What a worker tells the master through the start-up pipe: 12 bytes, one
// write, atomic on a pipe (pipe(7), PIPE_BUF), so records never interleave.
// A record must arrive (without it the worker never counts as set up or
// ready), unlike a log line: the pipe is non-blocking because the master must
// never block on it, so a full pipe (EAGAIN) is waited out with
// ppoll(POLLOUT) instead of dropping the record. Any other error means the
// master is gone, and then there is nobody to tell.
enum : std::int32_t { record_set_up = 0, record_ready = 1 };
inline void write_record(const worker_calls& calls, int fd, int index, std::int32_t kind) noexcept {
    if (fd < 0) return;
    const std::int32_t record[3] = {index, static_cast<std::int32_t>(::getpid()), kind};
    for (;;) {
        const ssize_t n = calls.write(fd, record, sizeof record);
        if (n == static_cast<ssize_t>(sizeof record)) return;
        if (n < 0 && errno == EINTR) continue;
        if (n >= 0 || errno != EAGAIN) return;
        struct pollfd writable {
            fd, POLLOUT, 0
        };
        // No timeout: the master drains these records in its loop, and once
        // it is gone the read end is closed, so ppoll returns (POLLERR) and
        // the next write fails with EPIPE, which ends the loop.
        calls.ppoll(&writable, 1, nullptr, nullptr);  // ready or EINTR: write again either way
    }
}

// ---- descriptors ----

// One owner per descriptor ({fmt}'s file): move-only, closed through the
// seam when the owner goes. A worker ends with _exit, so nothing in a child
// relies on these destructors, and a child never writes to an owner it
// inherited (copy-on-write: that would copy the master's page into it).
template <class System>
class unique_fd {
  public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    // Gives the descriptor up without closing it.
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) System::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

// pipe2(2) into two owners; false (errno set) when it fails.
template <class System>
bool make_pipe(unique_fd<System>& read_end, unique_fd<System>& write_end, int flags) noexcept {
    int fds[2] = {-1, -1};
    if (System::pipe2(fds, flags) != 0) return false;
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
    return true;
}

// ---- options, credentials, systemd ----
// Everything that can be wrong with options, found before anything starts.
// fcntl is the pool's System's, to tell whether log_fd and stats_fd are open.
inline void check_options(const options& opts, int (*fcntl)(int, int, int)) {
    const auto fd_is_open = [fcntl](int fd) { return fcntl(fd, F_GETFD, 0) != -1; };
    auto fail = [](const std::string& what) { throw std::invalid_argument("supervise: " + what); };
    if (opts.workers < 1 || opts.workers > SUPERVISE_CONFIG_MAX_WORKERS) {
        fail("workers must be between 1 and " + std::to_string(SUPERVISE_CONFIG_MAX_WORKERS) +
             " (got " + std::to_string(opts.workers) + ")");
    }
    if (opts.no_fork && (!opts.user.empty() || opts.heartbeat_timeout.count() > 0 ||
                         opts.notify_fd >= 0 || opts.subreaper)) {
        fail(
            "no_fork runs the worker in the master itself: user, heartbeat_timeout, notify_fd "
            "and subreaper need forked workers");
    }
    if (opts.allow_new_privileges && opts.user.empty()) {
        fail(
            "allow_new_privileges applies to workers that drop privileges: it needs user (without "
            "it workers keep the master's privileges)");
    }
    if (opts.no_fork && opts.workers != 1) {
        fail("no_fork runs exactly one worker inline (got workers = " +
             std::to_string(opts.workers) + ")");
    }
    if (!opts.no_fork) {
        struct rlimit limit {};
        if (::getrlimit(RLIMIT_NPROC, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
            ::geteuid() != 0 && static_cast<rlim_t>(opts.workers) >= limit.rlim_cur) {
            fail("workers (" + std::to_string(opts.workers) +
                 ") does not fit under RLIMIT_NPROC (" + std::to_string(limit.rlim_cur) + ")");
        }
    }
    // The upper bound keeps deadline arithmetic far from overflow.
    constexpr std::chrono::milliseconds day = std::chrono::hours(24);
    if (opts.shutdown_timeout.count() <= 0 || opts.shutdown_timeout > day) {
        fail("shutdown_timeout must be between 1 ms and 24 h (got " +
             std::to_string(opts.shutdown_timeout.count()) + " ms)");
    }
    if (opts.drain_delay.count() < 0 || opts.drain_delay > day) {
        fail("drain_delay must be between 0 and 24 h (got " +
             std::to_string(opts.drain_delay.count()) + " ms)");
    }
    if (opts.destroy_timeout.count() <= 0 || opts.destroy_timeout > day) {
        fail("destroy_timeout must be between 1 ms and 24 h (got " +
             std::to_string(opts.destroy_timeout.count()) + " ms)");
    }
    if (opts.log_fd >= 0 && !fd_is_open(opts.log_fd)) {
        fail("log_fd " + std::to_string(opts.log_fd) + " is not an open file descriptor");
    }
    if (opts.stats_fd >= 0 && !fd_is_open(opts.stats_fd)) {
        fail("stats_fd " + std::to_string(opts.stats_fd) + " is not an open file descriptor");
    }
    if (opts.min_workers < 1 || opts.min_workers > opts.workers ||
        opts.max_workers < opts.workers || opts.max_workers > SUPERVISE_CONFIG_MAX_WORKERS) {
        fail("1 <= min_workers <= workers <= max_workers <= " +
             std::to_string(SUPERVISE_CONFIG_MAX_WORKERS) + " must hold (got " +
             std::to_string(opts.min_workers) + ", " + std::to_string(opts.workers) + ", " +
             std::to_string(opts.max_workers) + ")");
    }
    if (opts.notify_fd < -1 || (opts.notify_fd >= 0 && opts.notify_fd <= 2) ||
        opts.notify_fd > 1023 ||
        (opts.notify_fd >= 0 &&
         (opts.notify_fd == opts.log_fd || opts.notify_fd == opts.stats_fd))) {
        fail(
            "notify_fd must be -1 (off) or a descriptor 3..1023 other than log_fd and stats_fd "
            "(got " +
            std::to_string(opts.notify_fd) + ")");
    }
    if (opts.heartbeat_timeout.count() < 0 || opts.heartbeat_timeout > day) {
        fail("heartbeat_timeout must be between 0 (off) and 24 h (got " +
             std::to_string(opts.heartbeat_timeout.count()) + " ms)");
    }
    if (opts.max_restarts < 0) {
        fail("max_restarts must be 0 or more (got " + std::to_string(opts.max_restarts) + ")");
    }
    if (opts.restart_period.count() <= 0 || opts.restart_period > day) {
        fail("restart_period must be between 1 ms and 24 h (got " +
             std::to_string(opts.restart_period.count()) + " ms)");
    }
    if (opts.restart_delay.count() < 0 || opts.restart_delay > opts.restart_delay_max ||
        opts.restart_delay_max > day) {
        fail("restart_delay must be between 0 and restart_delay_max, at most 24 h (got " +
             std::to_string(opts.restart_delay.count()) + " ms and " +
             std::to_string(opts.restart_delay_max.count()) + " ms)");
    }
    if (opts.min_uptime.count() < 0 || opts.min_uptime > day) {
        fail("min_uptime must be between 0 and 24 h (got " +
             std::to_string(opts.min_uptime.count()) + " ms)");
    }
    if (opts.fatal_exit_code < -1 || opts.fatal_exit_code > 255) {
        fail("fatal_exit_code must be -1 (off) or an exit status 0..255 (got " +
             std::to_string(opts.fatal_exit_code) + ")");
    }
    if (opts.min_ready_workers < 0 || opts.min_ready_workers > opts.workers) {
        fail("min_ready_workers must be between 0 (every worker) and workers (" +
             std::to_string(opts.workers) + "; got " + std::to_string(opts.min_ready_workers) +
             "): more could never be ready");
    }
    if (opts.parent_death_signal < 0 || opts.parent_death_signal > max_signal) {
        fail("parent_death_signal must be 0 (off) or a signal number (got " +
             std::to_string(opts.parent_death_signal) + ")");
    }
}

inline credentials resolve_credentials(const options& opts) {
    credentials result;
    if (opts.user.empty()) {
        if (!opts.group.empty()) throw std::invalid_argument("supervise: group needs user");
        return result;
    }
    std::vector<char> buffer(16384);
    struct passwd entry {};
    struct passwd* found = nullptr;
    ::getpwnam_r(opts.user.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) {
        char* end = nullptr;
        const unsigned long number = std::strtoul(opts.user.c_str(), &end, 10);
        if (end == opts.user.c_str() || *end != '\0') {
            throw std::invalid_argument("supervise: unknown user '" + opts.user + "'");
        }
        ::getpwuid_r(static_cast<uid_t>(number), &entry, buffer.data(), buffer.size(), &found);
        if (found == nullptr) {
            throw std::invalid_argument("supervise: unknown user id " + opts.user);
        }
    }
    result.uid = found->pw_uid;
    result.gid = found->pw_gid;
    if (!opts.group.empty()) {
        std::vector<char> group_buffer(16384);
        struct group group_entry {};
        struct group* group_found = nullptr;
        ::getgrnam_r(opts.group.c_str(), &group_entry, group_buffer.data(), group_buffer.size(),
                     &group_found);
        if (group_found == nullptr) {
            throw std::invalid_argument("supervise: unknown group '" + opts.group + "'");
        }
        result.gid = group_found->gr_gid;
    }
    int count = 64;
    result.groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(found->pw_name, result.gid, result.groups.data(), &count) < 0) {
        result.groups.resize(static_cast<std::size_t>(count));
        ::getgrouplist(found->pw_name, result.gid, result.groups.data(), &count);
    }
    result.groups.resize(static_cast<std::size_t>(count));
    const uid_t me = ::geteuid();
    if (me != 0 && me != result.uid) {
        throw std::invalid_argument("supervise: running workers as '" + opts.user +
                                    "' needs a master running as root");
    }
    result.drop = me == 0;
    result.no_new_privileges = result.drop && result.uid != 0 && !opts.allow_new_privileges;
    return result;
}

// The highest capability number the running kernel has ("40\n" in
// /proc/sys/kernel/cap_last_cap), or -1 where that cannot be read.
template <class System>
int last_capability() noexcept {
    const int fd = retry_on_eintr(
        [] { return System::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return -1;
    char text[16] = {};
    const ssize_t n = retry_on_eintr([&] { return System::read(fd, text, sizeof text - 1); });
    System::close(fd);
    int last = 0;
    ssize_t digits = 0;
    for (; digits < n && digits < 3 && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
        last = last * 10 + (text[digits] - '0');
    }
    // The bounding set is 64 bits wide.
    return digits > 0 && last < 64 ? last : -1;
}

// Releases the process-wide guard however run() leaves.
struct running_guard {
    running_guard() {
        if (pool_running.exchange(true)) {
            throw std::logic_error("supervise: another pool is already running in this process");
        }
    }
    ~running_guard() { pool_running.store(false); }
    running_guard(const running_guard&) = delete;
    running_guard& operator=(const running_guard&) = delete;
};

// systemd's notification protocol without libsystemd (sd_notify(3)): one
// datagram of KEY=VALUE lines to the unix socket named by $NOTIFY_SOCKET, a
// leading '@' meaning the abstract namespace.
struct systemd_notifier {
    int fd = -1;
    struct sockaddr_un address {};
    socklen_t address_size = 0;
    // Keep-alive period: half of $WATCHDOG_USEC, when it is meant for us.
    std::int64_t watchdog_ms = 0;

    // The environment is untrusted text: both parsers are strict (anything
    // they do not fully understand means "no systemd"), and tests/fuzz runs
    // them on arbitrary bytes.

    // $NOTIFY_SOCKET as an address: an absolute path, or '@' and a name in
    // the abstract namespace. False (no notifications) for anything else:
    // empty, relative, "@" alone, a NUL inside, too long for sun_path.
    static bool parse_address(std::string_view text, struct sockaddr_un& to,
                              socklen_t& size) noexcept {
        if (text.size() < 2 || (text[0] != '/' && text[0] != '@') ||
            text.size() >= sizeof to.sun_path || text.find('\0') != std::string_view::npos) {
            return false;
        }
        to = {};
        to.sun_family = AF_UNIX;
        std::memcpy(to.sun_path, text.data(), text.size());
        if (text[0] == '@') to.sun_path[0] = '\0';
        size = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + text.size());
        return true;
    }

    // A whole string of decimal digits that fits in 64 bits: no sign, no
    // space, no suffix, unlike atoll(3), which reads "12abc" as 12 and
    // overflows silently.
    static bool parse_decimal(const char* text, std::uint64_t& value) noexcept {
        if (text == nullptr || *text == '\0') return false;
        value = 0;
        for (; *text != '\0'; ++text) {
            if (*text < '0' || *text > '9') return false;
            const auto digit = static_cast<std::uint64_t>(*text - '0');
            if (value > (UINT64_MAX - digit) / 10) return false;
            value = value * 10 + digit;
        }
        return true;
    }

    // The keep-alive period, in ms, from $WATCHDOG_USEC and $WATCHDOG_PID
    // (nullptr when unset) for the process `self`: half the watchdog timeout,
    // as sd_watchdog_enabled(3) advises. 0 (no keep-alives) when WATCHDOG_USEC
    // is unset, not a number, 0 or systemd's "infinity"; when WATCHDOG_PID is
    // set and is not exactly `self`; and when the period would be under 1 ms,
    // which the pool's millisecond timer cannot keep.
    static std::int64_t parse_watchdog_ms(const char* usec, const char* pid, pid_t self) noexcept {
        std::uint64_t timeout_us = 0;
        if (!parse_decimal(usec, timeout_us) || timeout_us == UINT64_MAX) return 0;
        if (pid != nullptr) {
            std::uint64_t target = 0;
            if (!parse_decimal(pid, target) || self <= 0 ||
                target != static_cast<std::uint64_t>(self)) {
                return 0;
            }
        }
        // At most UINT64_MAX / 2000, far inside int64_t.
        return static_cast<std::int64_t>(timeout_us / 2000);
    }

    template <class System>
    // 0, or socket(2)'s errno: notifications are then off, which the pool
    // logs rather than failing for (systemd would time the unit out).
    int open() noexcept {
        const char* path = std::getenv("NOTIFY_SOCKET");
        if (path == nullptr || !parse_address(path, address, address_size)) return 0;
        fd = System::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const int err = fd < 0 ? errno : 0;
        watchdog_ms = parse_watchdog_ms(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                        ::getpid());
        return err;
    }

    template <class System>
    void notify(const std::string& state) noexcept {
        if (fd < 0) return;
        // A lost notification is not fatal (systemd may be gone); an
        // interrupted one is sent again.
        retry_on_eintr([&] {
            return System::sendto(fd, state.data(), state.size(),
                                  reinterpret_cast<const struct sockaddr*>(&address), address_size);
        });
    }

    template <class System>
    void close() noexcept {
        if (fd >= 0) System::close(fd);
        fd = -1;
        watchdog_ms = 0;
    }
};

// Lines of the master's log: "NAME[pid]: message". A log that cannot be
// written is dropped, never fatal.
template <class System>
class logger {
  public:
    explicit logger(const options& opts) : fd_(opts.log_fd), name_(opts.name) {}
    void operator()(const std::string& message) const {
        if (fd_ < 0) return;
        const std::string line = name_ + "[" + std::to_string(::getpid()) + "]: " + message + "\n";
        write_all<System>(fd_, line.data(), line.size());
    }
    // For the worker's side of fork, which must reach its own _exit whatever
    // happens: a message that cannot even be built is dropped.
    template <class Build>
    void line_or_nothing(Build build) const noexcept {
        try {
            (*this)(build());
        } catch (...) {
        }
    }
    int fd() const noexcept { return fd_; }

  private:
    int fd_;
    std::string name_;
};

// ---- listeners ----
// options::listeners bound, or systemd's sockets taken over, by the pool's
// constructor: everything that can be wrong is found before anything is
// changed, and a failure part-way closes what was opened (docs/listeners.md).

// A listener_spec's address, ready for bind(2).
struct socket_address {
    struct sockaddr_storage storage {};
    socklen_t size = 0;
    int family = AF_UNSPEC;
    std::string path;  // unix:/path: the file bind(2) creates; empty otherwise
};

// PORT of "HOST:PORT": decimal digits only, 0..65535 (no sign, no space).
inline bool parse_port(std::string_view text, std::uint16_t& port) noexcept {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

// "HOST:PORT", "[IPV6]:PORT", "unix:/path" or "unix:@name" into `to`; empty,
// or why not. Numeric addresses only: a host name would need the resolver,
// which can block on the network in a constructor that promises to start
// nothing.
inline std::string parse_listen_address(std::string_view text, socket_address& to) {
    to = socket_address{};
    constexpr std::string_view unix_prefix = "unix:";
    if (text.substr(0, unix_prefix.size()) == unix_prefix) {
        const std::string_view path = text.substr(unix_prefix.size());
        struct sockaddr_un un {};
        un.sun_family = AF_UNIX;
        if (path.size() < 2 || (path[0] != '/' && path[0] != '@') ||
            path.find('\0') != std::string_view::npos) {
            return "a unix socket address is unix:/absolute/path or unix:@abstract-name";
        }
        // A path needs its terminating NUL inside sun_path; an abstract name
        // starts with the NUL that stands for '@'.
        const std::size_t room = sizeof un.sun_path - (path[0] == '/' ? 1 : 0);
        if (path.size() > room) {
            return "the socket's path is " + std::to_string(path.size()) +
                   " bytes, longer than the " + std::to_string(room) +
                   " a unix socket address holds";
        }
        std::memcpy(un.sun_path, path.data(), path.size());
        if (path[0] == '@') {
            un.sun_path[0] = '\0';
            to.size = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size());
        } else {
            to.path = std::string(path);
            to.size = static_cast<socklen_t>(sizeof un);
        }
        to.family = AF_UNIX;
        std::memcpy(&to.storage, &un, sizeof un);
        return "";
    }
    const std::size_t colon = text.rfind(':');
    std::uint16_t port = 0;
    if (colon == std::string_view::npos || !parse_port(text.substr(colon + 1), port)) {
        return "expected HOST:PORT, [IPV6]:PORT, unix:/path or unix:@name, with PORT 0..65535";
    }
    const std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        const std::string literal(host.substr(1, host.size() - 2));
        struct sockaddr_in6 in6 {};
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        if (::inet_pton(AF_INET6, literal.c_str(), &in6.sin6_addr) != 1) {
            return "'" + literal + "' is not an IPv6 address";
        }
        to.family = AF_INET6;
        to.size = sizeof in6;
        std::memcpy(&to.storage, &in6, sizeof in6);
        return "";
    }
    struct sockaddr_in in {};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    if (host == "*") {
        in.sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (::inet_pton(AF_INET, std::string(host).c_str(), &in.sin_addr) != 1) {
        return "'" + std::string(host) +
               "' is not an IPv4 address (IPv6 goes in brackets: [::1]:PORT)";
    }
    to.family = AF_INET;
    to.size = sizeof in;
    std::memcpy(&to.storage, &in, sizeof in);
    return "";
}

// An address as listening_socket::address spells it.
inline std::string describe_address(const struct sockaddr_storage& address, socklen_t size) {
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        struct sockaddr_in in {};
        std::memcpy(&in, &address, sizeof in);
        ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(in.sin_port));
    }
    if (address.ss_family == AF_INET6) {
        struct sockaddr_in6 in6 {};
        std::memcpy(&in6, &address, sizeof in6);
        ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
        return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    if (address.ss_family == AF_UNIX) {
        struct sockaddr_un un {};
        std::memcpy(&un, &address, sizeof un);
        const auto offset = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path));
        if (size <= offset) return "unix:";  // unnamed
        const auto length = static_cast<std::size_t>(size - offset);
        if (un.sun_path[0] == '\0') return "unix:@" + std::string(un.sun_path + 1, length - 1);
        return "unix:" + std::string(un.sun_path, ::strnlen(un.sun_path, length));
    }
    return "address family " + std::to_string(address.ss_family);
}

// The listeners' names, for messages: "web, admin" or "none".
inline std::string listener_names(const std::vector<listening_socket>& sockets) {
    std::string names;
    for (const listening_socket& s : sockets) names += (names.empty() ? "" : ", ") + s.name;
    return names.empty() ? "none" : names;
}

inline int find_listener(const std::vector<listening_socket>* sockets, std::string_view name) {
    if (sockets != nullptr) {
        for (const listening_socket& s : *sockets) {
            if (s.name == name) return s.fd;
        }
    }
    throw std::out_of_range(
        "supervise: no listener named '" + std::string(name) +
        "' (listeners: " + (sockets != nullptr ? listener_names(*sockets) : "none") + ")");
}

inline int find_listener(const std::vector<listening_socket>* sockets, std::size_t index) {
    if (sockets == nullptr || index >= sockets->size()) {
        throw std::out_of_range("supervise: no listener " + std::to_string(index) + " (there are " +
                                std::to_string(sockets != nullptr ? sockets->size() : 0) + ")");
    }
    return (*sockets)[index].fd;
}

// LISTEN_FDNAMES' rule for a name (systemd's fdname_is_valid): ASCII without
// control characters, no ':', at most 255 characters.
inline bool valid_listener_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 255) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return c >= 0x20 && c < 0x7f && c != ':'; });
}

// Every spec checked and its address parsed, before any socket exists.
inline std::vector<socket_address> parse_listener_specs(const std::vector<listener_spec>& specs) {
    std::vector<socket_address> addresses(specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const listener_spec& spec = specs[i];
        const auto fail = [&](const std::string& why) {
            throw std::invalid_argument(
                "supervise: listener " +
                (spec.name.empty() ? std::to_string(i) : "'" + spec.name + "'") + ": " + why);
        };
        if (!valid_listener_name(spec.name)) {
            fail("the name must be 1 to 255 printable ASCII characters without ':' (got '" +
                 spec.name + "')");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (specs[j].name == spec.name) fail("the name is used twice");
        }
        const std::string why = parse_listen_address(spec.address, addresses[i]);
        if (!why.empty()) fail("cannot use address '" + spec.address + "': " + why);
        if (spec.backlog < 1) {
            fail("backlog must be 1 or more (got " + std::to_string(spec.backlog) + ")");
        }
        if (spec.ipv6_only && addresses[i].family != AF_INET6) {
            fail("ipv6_only applies to an [IPV6]:PORT address (got '" + spec.address + "')");
        }
        if (spec.unix_mode != -1 &&
            (addresses[i].path.empty() || spec.unix_mode < 0 || spec.unix_mode > 07777)) {
            fail("unix_mode is -1 or a file mode 0..07777, for a unix:/path address (got " +
                 std::to_string(spec.unix_mode) + " for '" + spec.address + "')");
        }
    }
    return addresses;
}

// The listening sockets of one pool, from its constructor until it goes.
// Move-only: one owner closes them. Only the process that bound a unix
// socket's file removes it, and only while the file is still the socket it
// bound (a forked child that runs destructors, or a file replaced since,
// is left alone).
template <class System>
class listener_set {
  public:
    listener_set() noexcept = default;
    listener_set(listener_set&& other) noexcept { take(other); }
    listener_set& operator=(listener_set&& other) noexcept {
        if (this != &other) {
            close_all();
            take(other);
        }
        return *this;
    }
    listener_set(const listener_set&) = delete;
    listener_set& operator=(const listener_set&) = delete;
    ~listener_set() { close_all(); }

    // systemd's sockets when LISTEN_PID is this process (and opts allow),
    // else opts.listeners bound in order. Throws with nothing left open and
    // the environment as it was.
    void open(const options& opts, const logger<System>& log) {
        const std::vector<socket_address> addresses = parse_listener_specs(opts.listeners);
        owner_ = ::getpid();
        bool forget_variables = false;
        if (opts.socket_activation == socket_activation_mode::automatic) {
            forget_variables = take_inherited(opts.listeners, log);
        }
        if (sockets_.empty() && !opts.listeners.empty()) {
            try {
                bind_all(opts.listeners, addresses);
            } catch (...) {
                close_all();
                throw;
            }
        }
        // sd_listen_fds(3)'s unset_environment: the workers, and whatever
        // they start, must not take LISTEN_FDS for theirs.
        if (forget_variables) {
            ::unsetenv("LISTEN_FDS");
            ::unsetenv("LISTEN_PID");
            ::unsetenv("LISTEN_FDNAMES");
        }
    }

    const std::vector<listening_socket>& sockets() const noexcept { return sockets_; }

    // Each unix socket file this process bound is removed first, so no
    // client finds a file nobody listens on; then every socket is closed.
    void close_all() noexcept {
        if (::getpid() == owner_) {
            for (const created_file& file : files_) {
                struct ::stat now {};
                if (System::stat(file.path.c_str(), &now) == 0 && S_ISSOCK(now.st_mode) &&
                    now.st_dev == file.device && now.st_ino == file.inode) {
                    System::unlink(file.path.c_str());
                }
            }
        }
        files_.clear();
        for (const listening_socket& s : sockets_) {
            if (s.fd >= 0) System::close(s.fd);
        }
        sockets_.clear();
    }

  private:
    struct created_file {
        std::string path;
        dev_t device;
        ino_t inode;
    };

    void take(listener_set& other) noexcept {
        sockets_ = std::move(other.sockets_);
        files_ = std::move(other.files_);
        owner_ = other.owner_;
        other.sockets_.clear();
        other.files_.clear();
    }

    [[noreturn]] static void fail_call(const listener_spec& spec, const char* call) {
        throw std::system_error(
            errno, std::generic_category(),
            "supervise: listener '" + spec.name + "' (" + spec.address + "): " + call);
    }

    // One socket per spec, in order: socket, options, bind, mode, listen.
    // A failure throws; open() then closes what is already bound.
    void bind_all(const std::vector<listener_spec>& specs,
                  const std::vector<socket_address>& addresses) {
        // Reserved first: once a file exists it is recorded without an
        // allocation that could fail and leave it behind.
        sockets_.reserve(specs.size());
        files_.reserve(specs.size());
        for (std::size_t i = 0; i < specs.size(); ++i) {
            const listener_spec& spec = specs[i];
            const socket_address& address = addresses[i];
            unique_fd<System> fd(
                System::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (!fd) fail_call(spec, "socket");
            const int on = 1;
            if (address.family != AF_UNIX && spec.reuse_addr &&
                System::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
                fail_call(spec, "setsockopt(SO_REUSEADDR)");
            }
            const int v6_only = spec.ipv6_only ? 1 : 0;
            if (address.family == AF_INET6 &&
                System::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof v6_only) !=
                    0) {
                fail_call(spec, "setsockopt(IPV6_V6ONLY)");
            }
            if (System::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&address.storage),
                             address.size) != 0) {
                fail_call(spec, "bind");
            }
            if (!address.path.empty()) {
                struct ::stat info {};
                if (System::stat(address.path.c_str(), &info) != 0) {
                    const int err = errno;
                    System::unlink(address.path.c_str());  // bound a moment ago: ours
                    errno = err;
                    fail_call(spec, "stat");
                }
                files_.push_back(created_file{address.path, info.st_dev, info.st_ino});
                // Before listen(2): until then a connect(2) is refused, so no
                // client gets in under the umask's mode.
                if (spec.unix_mode >= 0 &&
                    System::chmod(address.path.c_str(), static_cast<mode_t>(spec.unix_mode)) != 0) {
                    fail_call(spec, "chmod");
                }
            }
            if (System::listen(fd.get(), spec.backlog) != 0) fail_call(spec, "listen");
            struct sockaddr_storage bound {};
            socklen_t bound_size = sizeof bound;
            if (System::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&bound),
                                    &bound_size) != 0) {
                fail_call(spec, "getsockname");
            }
            listening_socket made;
            made.name = spec.name;
            made.address = describe_address(bound, bound_size);
            made.fd = fd.get();
            sockets_.push_back(std::move(made));  // reserved: cannot throw
            fd.release();
        }
    }

    // sd_listen_fds(3), checked: true if the three variables are to be
    // unset (they were for this process, or for another one and ignored).
    bool take_inherited(const std::vector<listener_spec>& specs, const logger<System>& log) {
        const char* const count_text = std::getenv("LISTEN_FDS");
        const char* const pid_text = std::getenv("LISTEN_PID");
        const char* const names_text = std::getenv("LISTEN_FDNAMES");
        if (count_text == nullptr && pid_text == nullptr) return names_text != nullptr;
        const auto fail = [](const std::string& why) {
            throw std::runtime_error("supervise: socket activation: " + why);
        };
        std::uint64_t pid = 0;
        const pid_t self = ::getpid();
        if (!systemd_notifier::parse_decimal(pid_text, pid) ||
            pid != static_cast<std::uint64_t>(self)) {
            log("socket activation: LISTEN_PID=" + std::string(pid_text ? pid_text : "(unset)") +
                " is not this process (pid " + std::to_string(self) +
                "): LISTEN_FDS=" + std::string(count_text ? count_text : "(unset)") + " ignored");
            return true;
        }
        std::uint64_t count = 0;
        // The descriptors are 3..3+count-1; a count past what a process can
        // hold is not systemd's.
        if (count_text != nullptr &&
            (!systemd_notifier::parse_decimal(count_text, count) || count > 65536)) {
            fail("LISTEN_FDS=" + std::string(count_text) + " is not a number of descriptors");
        }
        // None handed over (sd_listen_fds(3) returns 0): the configured
        // listeners are bound as without systemd.
        if (count == 0) return true;
        std::vector<std::string> names;
        if (names_text != nullptr) {
            const std::string_view all = names_text;
            for (std::size_t begin = 0;;) {
                const std::size_t end = std::min(all.find(':', begin), all.size());
                names.emplace_back(all.substr(begin, end - begin));
                if (end == all.size()) break;
                begin = end + 1;
            }
            if (names.size() != count) {
                fail("LISTEN_FDNAMES='" + std::string(all) + "' names " +
                     std::to_string(names.size()) +
                     " descriptors, LISTEN_FDS=" + std::to_string(count));
            }
        } else {
            names.assign(count, "unknown");  // what sd_listen_fds_with_names(3) says
        }
        std::vector<listening_socket> found;
        for (std::size_t i = 0; i < count; ++i) {
            const int fd = 3 + static_cast<int>(i);
            const std::string which = "fd " + std::to_string(fd) + " ('" + names[i] +
                                      "', of LISTEN_FDS=" + std::to_string(count) + ")";
            struct ::stat info {};
            if (System::fstat(fd, &info) != 0) {
                fail(which + " is not open: " + std::strerror(errno));
            }
            if (!S_ISSOCK(info.st_mode)) fail(which + " is not a socket");
            int type = 0;
            int accepting = 0;
            socklen_t size = sizeof type;
            if (System::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) {
                fail(which + ": getsockopt(SO_TYPE): " + std::strerror(errno));
            }
            if (type != SOCK_STREAM) {
                fail(which + " is not a stream socket (SO_TYPE " + std::to_string(type) + ")");
            }
            size = sizeof accepting;
            if (System::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) != 0) {
                fail(which + ": getsockopt(SO_ACCEPTCONN): " + std::strerror(errno));
            }
            if (accepting == 0) fail(which + " is not listening (no listen(2) on it)");
            struct sockaddr_storage bound {};
            socklen_t bound_size = sizeof bound;
            if (System::getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &bound_size) !=
                0) {
                fail(which + ": getsockname: " + std::strerror(errno));
            }
            listening_socket s;
            s.name = names[i];
            s.fd = fd;
            s.address = describe_address(bound, bound_size);
            s.inherited = true;
            found.push_back(std::move(s));
        }
        for (const listener_spec& spec : specs) {
            if (std::none_of(found.begin(), found.end(),
                             [&](const listening_socket& s) { return s.name == spec.name; })) {
                fail("no socket named '" + spec.name + "' among those systemd passed (" +
                     listener_names(found) +
                     "); the names come from FileDescriptorName= of the socket unit");
            }
        }
        // Every check passed: only now is anything changed. Close-on-exec so
        // a program a worker starts does not hold the socket; non-blocking
        // as the pool's own (see listening_socket).
        for (const listening_socket& s : found) {
            const int flags = System::fcntl(s.fd, F_GETFL, 0);
            if (System::fcntl(s.fd, F_SETFD, FD_CLOEXEC) != 0 || flags < 0 ||
                System::fcntl(s.fd, F_SETFL, flags | O_NONBLOCK) != 0) {
                throw std::system_error(
                    errno, std::generic_category(),
                    "supervise: socket activation: fcntl of fd " + std::to_string(s.fd));
            }
        }
        std::string taken;
        for (const listening_socket& s : found) {
            taken += (taken.empty() ? "" : ", ") + s.name + " (fd " + std::to_string(s.fd) + ", " +
                     s.address + ")";
        }
        log("socket activation: " + std::to_string(found.size()) + " listeners from systemd" +
            (taken.empty() ? "" : ": " + taken));
        sockets_ = std::move(found);
        return true;
    }

    std::vector<listening_socket> sockets_;
    std::vector<created_file> files_;  // unix socket files bound here
    pid_t owner_ = 0;                  // the process that opened them
};

// ---- the master's parts ----

// The master's signal handling for one run(), and the program's back when it
// ends, however it ends. The mapped signals are blocked first, then the
// self-pipe is made, then the handler installed: no handler can run before
// the pool is ready.
template <class System>
class signal_scope {
  public:
    struct saved_signal {
        int number;
        struct ::sigaction action;
    };

    // Throws std::system_error with nothing left changed. The handler writes
    // to the self-pipe only for `other_threads`: without them a mapped signal
    // can only be taken by this thread, inside the master's ppoll, which the
    // signal ends by itself (threads started later inherit this thread's
    // mask, which blocks the mapped signals outside ppoll).
    signal_scope(std::uint64_t handled, bool self_pipe, bool other_threads)
        : handled_(handled) {
        const sigset_t set = sigset_of(handled_);
        if (System::thread_sigmask(SIG_BLOCK, &set, &program_mask_) != 0) {
            throw std::system_error(errno, std::generic_category(), "supervise: pthread_sigmask");
        }
        process_signals.pending.store(0);
        for (auto& counter : process_signals.received) counter.store(0, std::memory_order_relaxed);
        if (self_pipe) {
            if (!make_pipe(wake_read_, wake_write_, O_CLOEXEC | O_NONBLOCK)) {
                const int err = errno;
                System::thread_sigmask(SIG_SETMASK, &program_mask_, nullptr);
                throw std::system_error(err, std::generic_category(), "supervise: pipe2");
            }
            if (other_threads) {
                process_signals.wake_fd.store(wake_write_.get(), std::memory_order_release);
            }
        }
        for (int sig = 1; sig <= max_signal; ++sig) {
            if (!(handled_ & signal_bit(sig))) continue;
            struct ::sigaction action {};
            action.sa_handler = on_signal;
            sigemptyset(&action.sa_mask);
            // No SA_RESTART: the master only ever blocks in ppoll, which is
            // never restarted anyway (signal(7)); SA_NOCLDSTOP: a stopped
            // worker is not an exited one.
            action.sa_flags = sig == SIGCHLD ? SA_NOCLDSTOP : 0;
            saved_signal previous{sig, {}};
            if (System::sigaction(sig, &action, &previous.action) != 0) {
                const int err = errno;
                restore();
                throw std::system_error(err, std::generic_category(),
                                        "supervise: sigaction(" + signal_name(sig) + ")");
            }
            saved_.push_back(previous);
        }
    }
    ~signal_scope() { restore(); }
    signal_scope(const signal_scope&) = delete;
    signal_scope& operator=(const signal_scope&) = delete;

    // The program's mask and dispositions from before run(): the workers
    // start from them.
    const sigset_t& program_mask() const noexcept { return program_mask_; }
    const std::vector<saved_signal>& program_dispositions() const noexcept { return saved_; }
    // The master waits with the program's mask minus the mapped signals.
    sigset_t wait_mask() const noexcept { return sigset_without(program_mask_, handled_); }
    int wake_read() const noexcept { return wake_read_.get(); }
    int wake_write() const noexcept { return wake_write_.get(); }

    void drain_wake_pipe() noexcept {
        char drain[256];
        while (retry_on_eintr([&] { return System::read(wake_read_.get(), drain, sizeof drain); }) >
               0) {
        }
    }

  private:
    // A signal that arrived after the last check is still pending in the
    // kernel; unblocking it under the restored (often default) disposition
    // would kill the embedding program. It was meant for the pool, so it is
    // consumed first.
    void discard_pending_signals() noexcept {
        const sigset_t handled = sigset_of(handled_);
        const struct timespec now {};
        // EINTR is not "nothing pending": stopping there would leave a signal
        // to the program's default disposition.
        while (retry_on_eintr([&] { return System::sigtimedwait(&handled, &now); }) > 0) {
        }
    }
    void restore() noexcept {
        discard_pending_signals();
        for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
            System::sigaction(it->number, &it->action, nullptr);
        }
        saved_.clear();
        process_signals.wake_fd.store(-1, std::memory_order_seq_cst);
        // Only a handler running in another thread can be writing now (one in
        // this thread has returned), and it ends without waiting for anything.
        while (process_signals.writing.load(std::memory_order_seq_cst) != 0) ::sched_yield();
        process_signals.pending.store(0);
        wake_read_.reset();
        wake_write_.reset();
        System::thread_sigmask(SIG_SETMASK, &program_mask_, nullptr);
    }

    std::uint64_t handled_;
    sigset_t program_mask_{};
    unique_fd<System> wake_read_;
    unique_fd<System> wake_write_;
    std::vector<saved_signal> saved_;
};

// PR_SET_CHILD_SUBREAPER for one run(). The program's own setting is put
// back only once it was read and ours took its place: a failed set-up must
// not clobber it.
template <class System>
class subreaper_scope {
  public:
    explicit subreaper_scope(bool wanted) {
        if (!wanted) return;
        const char* failed = nullptr;
        if (System::get_child_subreaper(&previous_) != 0) {
            failed = "supervise: prctl(PR_GET_CHILD_SUBREAPER)";
        } else if (System::set_child_subreaper(true) != 0) {
            failed = "supervise: prctl(PR_SET_CHILD_SUBREAPER)";
        }
        if (failed != nullptr) throw std::system_error(errno, std::generic_category(), failed);
        changed_ = true;
    }
    ~subreaper_scope() {
        if (changed_) System::set_child_subreaper(previous_ != 0);
    }
    subreaper_scope(const subreaper_scope&) = delete;
    subreaper_scope& operator=(const subreaper_scope&) = delete;

  private:
    int previous_ = 0;
    bool changed_ = false;
};

// systemd's notification socket for one run(); "no systemd" is a socket of -1.
template <class System>
class systemd_scope {
  public:
    explicit systemd_scope(const logger<System>& log) {
        if (const int err = notifier_.open<System>()) {
            log(std::string("systemd notifications off: socket: ") + std::strerror(err));
        }
    }
    ~systemd_scope() { notifier_.close<System>(); }
    systemd_scope(const systemd_scope&) = delete;
    systemd_scope& operator=(const systemd_scope&) = delete;

    void notify(const std::string& state) noexcept { notifier_.notify<System>(state); }
    std::int64_t watchdog_ms() const noexcept { return notifier_.watchdog_ms; }
    int fd() const noexcept { return notifier_.fd; }

  private:
    systemd_notifier notifier_;
};

// One heartbeat per slot up to max_workers, in memory shared with the
// workers (mmap before fork), while the watchdog is on.
template <class System>
class heartbeat_table {
  public:
    heartbeat_table(bool on, int slots) {
        if (!on) return;
        size_ = sizeof(std::atomic<std::int64_t>) * static_cast<std::size_t>(slots);
        void* table = System::mmap(size_);
        if (table == MAP_FAILED) {
            throw std::system_error(errno, std::generic_category(), "supervise: mmap (heartbeats)");
        }
        beats_ = static_cast<std::atomic<std::int64_t>*>(table);
    }
    ~heartbeat_table() {
        if (beats_ != nullptr) System::munmap(beats_, size_);
    }
    heartbeat_table(const heartbeat_table&) = delete;
    heartbeat_table& operator=(const heartbeat_table&) = delete;

    bool on() const noexcept { return beats_ != nullptr; }
    // The slot's heartbeat, or null with the watchdog off.
    std::atomic<std::int64_t>* of(int index) const noexcept {
        return beats_ != nullptr ? &beats_[index] : nullptr;
    }
    std::int64_t last(int index) const noexcept {
        return beats_[index].load(std::memory_order_relaxed);
    }
    // A new worker has a full heartbeat_timeout before its first beat.
    void reset(int index, std::int64_t now) noexcept {
        if (beats_ != nullptr) beats_[index].store(now, std::memory_order_relaxed);
    }

  private:
    std::atomic<std::int64_t>* beats_ = nullptr;
    std::size_t size_ = 0;
};

// ---- the pool's page: its state, shared with the workers ----
//
// The master writes, the workers read: every worker can see the whole pool
// (worker_context::pool_statistics()) without asking the master, so a worker
// serving /metrics never wakes it. Mapped MAP_SHARED before the first fork:
// a write to it is seen by every process and copies no page (copy-on-write
// applies to private memory only). Lock-free atomics are address-free, so
// they work across processes; the anonymous mapping starts zero-filled, which
// is every field's initial value (pid 0, idle, no exit, counters at 0), as
// for the heartbeats.
//
// Each record (the header, each slot) is written by the master alone, under
// a sequence number that is odd while it writes (a seqlock): its fields are
// stored with release and loaded with acquire, so a reader whose sequence is
// the same, and even, before and after its loads read the record whole. The
// counters are outside the records: each only grows (the master's restarts,
// the workers' requests, the signal counts copied from the master's), and
// a reader takes each one as it is.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  std::atomic<std::int32_t>::is_always_lock_free &&
                  std::atomic<std::uint64_t>::is_always_lock_free,
              "supervise: the pool's page must be lock-free atomics to be shared between processes");

struct shared_header {
    std::atomic<std::uint32_t> sequence;
    std::atomic<std::int32_t> master_pid;
    std::atomic<std::int64_t> started_ms;  // the master's start, CLOCK_MONOTONIC
    std::atomic<std::uint32_t> slots;      // the pool's size now
    std::atomic<std::uint32_t> phase;      // pool_phase
    std::atomic<std::int32_t> stop_signal;
    std::atomic<std::uint32_t> reloading;
    std::atomic<std::int32_t> min_ready_workers;
    // Counters: the master's process_signals.received, copied by its cycle.
    std::atomic<std::uint32_t> signals[max_signal + 1];
};

// One cache line per slot: a worker's request counter does not share its
// line with another worker's.
struct alignas(64) shared_slot {
    std::atomic<std::uint32_t> sequence;
    std::atomic<std::int32_t> pid;         // 0: no process
    std::atomic<std::uint32_t> state;      // worker_state, and ready_bit
    std::atomic<std::uint32_t> generation;
    std::atomic<std::int64_t> started_ms;
    std::atomic<std::uint64_t> last_exit;  // pack_exit
    // Counters, each with writers of one kind: the master...
    std::atomic<std::uint64_t> restarts;
    // ...and the slot's workers, every generation (request_done()).
    std::atomic<std::uint64_t> requests;
};
static_assert(sizeof(shared_slot) == 64, "supervise: one slot of the pool's page per cache line");
constexpr std::uint32_t ready_bit = 0x100;

inline std::uint64_t pack_exit(const exit_info& e) noexcept {
    return static_cast<std::uint64_t>(e.how) | (static_cast<std::uint64_t>(e.code & 0xff) << 8) |
           (static_cast<std::uint64_t>(e.signal & 0xff) << 16) |
           (static_cast<std::uint64_t>(e.core_dumped) << 24);
}
inline exit_info unpack_exit(std::uint64_t packed) noexcept {
    exit_info e;
    e.how = static_cast<exit_info::kind>(packed & 0xff);
    e.code = static_cast<int>((packed >> 8) & 0xff);
    e.signal = static_cast<int>((packed >> 16) & 0xff);
    e.core_dumped = ((packed >> 24) & 1) != 0;
    return e;
}

// The master's side of a record: write(), whose stores are all
// memory_order_release, between the odd and the even sequence number.
template <class Write>
void write_shared_record(std::atomic<std::uint32_t>& sequence, Write&& write) noexcept {
    const std::uint32_t before = sequence.load(std::memory_order_relaxed);
    sequence.store(before + 1, std::memory_order_relaxed);
    write();
    sequence.store(before + 2, std::memory_order_release);
}

// A reader's side: read(), whose loads are all memory_order_acquire, until it
// saw no write. A load that saw a store of a write under way saw (release,
// acquire) the odd number stored before it, so the second look differs. The
// master's writes are a few stores; only a master descheduled in the middle
// of one keeps a reader waiting, which then yields, and past a bound takes
// what it read: a worker must answer its probe even if its master is stopped
// by a debugger. False then.
template <class Read>
bool read_shared_record(const std::atomic<std::uint32_t>& sequence, Read&& read) noexcept {
    for (int attempt = 0; attempt < 1000; ++attempt) {
        const std::uint32_t before = sequence.load(std::memory_order_acquire);
        if ((before & 1) == 0) {
            read();
            if (sequence.load(std::memory_order_relaxed) == before) return true;
        }
        if (attempt >= 8) ::sched_yield();
    }
    read();
    return false;
}

// The pool's page for one run(), in the master: mapped before the first fork
// (the workers inherit it), unmapped when the run ends. Only the master's
// cycle writes it.
template <class System>
class status_page {
  public:
    status_page(int capacity, pid_t master_pid, std::int64_t started_ms, int min_ready_workers) {
        const std::size_t header =
            (sizeof(shared_header) + alignof(shared_slot) - 1) / alignof(shared_slot) *
            alignof(shared_slot);
        size_ = header + sizeof(shared_slot) * static_cast<std::size_t>(capacity);
        void* mapping = System::mmap(size_);
        if (mapping == MAP_FAILED) {
            throw std::system_error(errno, std::generic_category(),
                                    "supervise: mmap (statistics page)");
        }
        memory_ = mapping;
        page_.header = static_cast<shared_header*>(mapping);
        page_.slots = reinterpret_cast<shared_slot*>(static_cast<char*>(mapping) + header);
        page_.capacity = capacity;
        write_shared_record(page_.header->sequence, [&] {
            page_.header->master_pid.store(master_pid, std::memory_order_release);
            page_.header->started_ms.store(started_ms, std::memory_order_release);
            page_.header->min_ready_workers.store(min_ready_workers, std::memory_order_release);
        });
    }
    ~status_page() {
        if (memory_ != nullptr) System::munmap(memory_, size_);
    }
    status_page(const status_page&) = delete;
    status_page& operator=(const status_page&) = delete;

    const pool_page& page() const noexcept { return page_; }

    // The slot as the master's table has it now.
    void publish_slot(std::size_t index, pid_t pid, worker_state state, bool ready,
                      unsigned generation, std::int64_t started_ms,
                      const exit_info& last_exit) noexcept {
        shared_slot& s = page_.slots[index];
        write_shared_record(s.sequence, [&] {
            s.pid.store(pid, std::memory_order_release);
            s.state.store(static_cast<std::uint32_t>(state) | (ready ? ready_bit : 0),
                          std::memory_order_release);
            s.generation.store(generation, std::memory_order_release);
            s.started_ms.store(started_ms, std::memory_order_release);
            s.last_exit.store(pack_exit(last_exit), std::memory_order_release);
        });
    }

    // The pool as a whole; written only when it changed, so the page's line
    // is not dirtied by every pass of the cycle.
    void publish_pool(std::size_t slots, pool_phase phase, int stop_signal,
                      bool reloading) noexcept {
        const pool_state now{static_cast<std::uint32_t>(slots), phase, stop_signal, reloading};
        if (now == published_) return;
        published_ = now;
        shared_header& h = *page_.header;
        write_shared_record(h.sequence, [&] {
            h.slots.store(now.slots, std::memory_order_release);
            h.phase.store(static_cast<std::uint32_t>(phase), std::memory_order_release);
            h.stop_signal.store(stop_signal, std::memory_order_release);
            h.reloading.store(reloading ? 1 : 0, std::memory_order_release);
        });
    }

    // The master's signal counts, which only its handler raises (in its own
    // memory: nothing new happens in a handler): copied by the cycle, the
    // ones that changed.
    void publish_signals() noexcept {
        for (int sig = 1; sig <= max_signal; ++sig) {
            const std::uint32_t n = process_signals.received[sig].load(std::memory_order_relaxed);
            std::atomic<std::uint32_t>& shared = page_.header->signals[sig];
            if (shared.load(std::memory_order_relaxed) != n) {
                shared.store(n, std::memory_order_release);
            }
        }
    }

    void count_restart(std::size_t index) noexcept {
        page_.slots[index].restarts.fetch_add(1, std::memory_order_release);
    }
    std::uint64_t restarts(std::size_t index) const noexcept {
        return page_.slots[index].restarts.load(std::memory_order_acquire);
    }
    std::uint64_t requests(std::size_t index) const noexcept {
        return page_.slots[index].requests.load(std::memory_order_relaxed);
    }

  private:
    struct pool_state {
        std::uint32_t slots = 0;
        pool_phase phase = pool_phase::starting;
        int stop_signal = 0;
        bool reloading = false;
        bool operator==(const pool_state& o) const noexcept {
            return slots == o.slots && phase == o.phase && stop_signal == o.stop_signal &&
                   reloading == o.reloading;
        }
    };
    void* memory_ = nullptr;
    std::size_t size_ = 0;
    pool_page page_;
    // What the header holds (the zero-filled page is this too, but the first
    // publish writes the size).
    pool_state published_{~std::uint32_t{0}, pool_phase::starting, 0, false};
};

// The restarting strategies' arithmetic, with no system call: what to do
// with an exit nobody asked for.
struct restart_decision {
    enum class verdict {
        restart,        // after delay_ms
        fatal,          // the worker said so with fatal_exit_code: stop the pool
        not_restarted,  // its restart type says no
        give_up,        // too many restarts within restart_period: stop the pool
    };
    verdict what = verdict::restart;
    std::int64_t delay_ms = 0;
};

class restart_policy {
  public:
    explicit restart_policy(const options& opts) noexcept
        : restart_(opts.restart),
          fatal_exit_code_(opts.fatal_exit_code),
          max_restarts_(opts.max_restarts),
          period_ms_(opts.restart_period.count()),
          delay_ms_(opts.restart_delay.count()),
          delay_max_ms_(opts.restart_delay_max.count()),
          min_uptime_ms_(opts.min_uptime.count()) {}

    // A worker that started at started_ms ended at now as `how`, after it had
    // been ready or not; `failures` is its slot's run of consecutive
    // failures, updated here. A restart is counted against the intensity
    // limit when it is decided.
    restart_decision decide(const exit_info& how, std::int64_t started_ms, std::int64_t now,
                            int& failures, bool was_ready = false) {
        if (how.how == exit_info::kind::exited && how.code == fatal_exit_code_) {
            return {restart_decision::verdict::fatal, 0};
        }
        const bool clean = how.how == exit_info::kind::exited && how.code == 0;
        if (restart_ == restart_type::temporary ||
            (restart_ == restart_type::transient && clean)) {
            return {restart_decision::verdict::not_restarted, 0};
        }
        // Restarts are recorded in time order: the ones out of the window
        // are at the front.
        while (!recent_.empty() && recent_.front() <= now - period_ms_) recent_.pop_front();
        if (static_cast<int>(recent_.size()) >= max_restarts_) {
            return {restart_decision::verdict::give_up, 0};
        }
        recent_.push_back(now);
        // A worker that served (ready, up for min_uptime) or stayed up for a
        // whole restart_period starts afresh: its death is not a crash loop.
        const std::int64_t uptime = now - started_ms;
        if ((was_ready && uptime >= min_uptime_ms_) || uptime >= period_ms_) failures = 0;
        ++failures;
        return {restart_decision::verdict::restart, backoff_ms(failures)};
    }

    // Exponential back-off for a slot that keeps failing: the first restart
    // is immediate, then delay, 2*delay, ... capped at delay_max.
    std::int64_t backoff_ms(int failures) const noexcept {
        if (failures <= 1) return 0;
        std::int64_t delay = delay_ms_;
        for (int i = 2; i < failures && delay < delay_max_ms_; ++i) delay *= 2;
        return std::min(delay, delay_max_ms_);
    }

    restart_type type() const noexcept { return restart_; }
    int max_restarts() const noexcept { return max_restarts_; }
    std::int64_t period_ms() const noexcept { return period_ms_; }

  private:
    restart_type restart_;
    int fatal_exit_code_;
    int max_restarts_;
    std::int64_t period_ms_;
    std::int64_t delay_ms_;
    std::int64_t delay_max_ms_;
    std::int64_t min_uptime_ms_;
    // Restarts within the last period, oldest first: at most max_restarts, in
    // blocks that are freed as the window moves on.
    std::deque<std::int64_t> recent_;
};

enum class stop_phase { running, graceful, fast, killed };

// One forked worker process, from fork() until it is reaped.
template <class System>
struct worker_process {
    pid_t pid = 0;  // 0 once reaped: a reaped pid is never signalled
    int index = 0;  // the slot it serves, or served once retired
    unique_fd<System> pidfd;        // empty where the kernel has no pidfds
    unique_fd<System> notify_read;  // its notify_fd pipe, until it is ready
    bool set_up = false;            // its signal handling is in place
    bool ready = false;             // it serves (see options::wait_for_ready)
    // Where its stop stands; the next signal goes out at next_step_ms.
    stop_phase phase = stop_phase::running;
    std::int64_t next_step_ms = 0;
    // A retiree of a rolling reload, kept running until its successor is up.
    bool awaiting_successor = false;
    bool watched = false;  // its pidfd is in the table's epoll set
};

// A place in the pool: the process that serves it now, and its history.
template <class System>
struct slot {
    worker_process<System> process;
    // idle (never started), running, exited or parked; while its process is
    // asked to stop, state_of() says stopping.
    worker_state state = worker_state::idle;
    std::int64_t started_ms = 0;  // when its latest process started
    unsigned generation = 0;      // (its restarts are counted in the pool's page)
    exit_info last_exit;
    // To be started again at restart_at_ms once it (and its group) is out.
    bool restart_pending = false;
    std::int64_t restart_at_ms = 0;
    int consecutive_failures = 0;
    // Whether its latest process had been ready (restart_policy::decide).
    bool last_was_ready = false;
};

template <class System>
worker_state state_of(const slot<System>& s) noexcept {
    if (s.process.pid <= 0) return s.state;
    return s.process.phase == stop_phase::running ? worker_state::running : worker_state::stopping;
}

// A set of descriptor numbers as bits: adding or removing one writes one
// word, where a tree's rebalancing writes to nodes spread over the heap, and
// after each fork every page the master writes is copied (copy-on-write).
class descriptor_set {
  public:
    void insert(int fd) {
        if (fd < 0) return;
        const auto word = static_cast<std::size_t>(fd) / 64;
        if (word >= bits_.size()) bits_.resize(word + 1, 0);
        bits_[word] |= std::uint64_t{1} << (static_cast<unsigned>(fd) % 64);
    }
    void erase(int fd) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) / 64 >= bits_.size()) return;
        bits_[static_cast<std::size_t>(fd) / 64] &=
            ~(std::uint64_t{1} << (static_cast<unsigned>(fd) % 64));
    }
    // visit(fd) for each, in increasing order.
    template <class Visit>
    void for_each(Visit&& visit) const noexcept {
        for (std::size_t word = 0; word < bits_.size(); ++word) {
            for (std::uint64_t rest = bits_[word]; rest != 0; rest &= rest - 1) {
                visit(static_cast<int>(word * 64) + __builtin_ctzll(rest));
            }
        }
    }

  private:
    std::vector<std::uint64_t> bits_;
};

// The master's descriptors a new worker must close (the self-pipe, the
// master's end of the start-up pipe, systemd's socket, every process's pidfd
// and notify_fd pipe) as runs of consecutive numbers, found in the master
// before fork: reading the table in the child would fault its pages in there,
// N times for N workers. Each spawn takes the lowest free numbers, so there
// are usually one or two runs, each holding only the master's descriptors:
// one close_range(2) a run, where closing them one by one cost N workers
// N^2/2 close() calls between them (docs/benchmarks.md).
struct descriptor_runs {
    static constexpr std::size_t most = 8;
    struct run {
        int first;
        int last;
    };
    std::array<run, most> runs{};
    std::size_t count = 0;
    // More runs than fit: the child closes the master's descriptors above
    // the last run one by one.
    bool complete = true;

    // Descriptors in increasing order.
    void add(int fd) noexcept {
        if (count > 0 && runs[count - 1].last + 1 == fd) {
            runs[count - 1].last = fd;
        } else if (count < most && complete) {
            runs[count++] = run{fd, fd};
        } else {
            complete = false;
        }
    }
    int covered_up_to() const noexcept { return count > 0 ? runs[count - 1].last : -1; }
};

// Every worker process of the pool, serving or retired: signalling, stop
// deadlines, reaping. Processes replaced by a rolling reload, scaled down or
// parked are retirees: stopping, reaped here, never handed to the strategy.
template <class System>
class process_table {
  public:
    process_table(const options& opts, const logger<System>& log, int graceful_signal)
        : opts_(opts),
          log_(log),
          graceful_signal_(graceful_signal),
          exits_(System::epoll_create1(EPOLL_CLOEXEC)) {
        if (exits_) descriptors_.insert(exits_.get());
        slots_.resize(static_cast<std::size_t>(opts.workers));
        for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i].process.index = static_cast<int>(i);
    }
    // Only an exception can leave a process behind (an allocation failure, a
    // throwing destroy-hook machinery): none may outlive run().
    ~process_table() {
        for_each_process([](worker_process<System>& p) {
            if (p.pid <= 0) return;
            if (p.pidfd) {
                System::pidfd_send_signal(p.pidfd.get(), SIGKILL);
            } else {
                System::kill(p.pid, SIGKILL);
            }
            int status = 0;
            retry_on_eintr([&] { return System::waitpid(p.pid, &status, 0); });
            p.pid = 0;
        });
    }
    process_table(const process_table&) = delete;
    process_table& operator=(const process_table&) = delete;

    std::size_t size() const noexcept { return slots_.size(); }
    slot<System>& operator[](std::size_t index) noexcept { return slots_[index]; }
    const slot<System>& operator[](std::size_t index) const noexcept { return slots_[index]; }
    std::vector<slot<System>>& slots() noexcept { return slots_; }
    const std::vector<slot<System>>& slots() const noexcept { return slots_; }

    // scale_up's new slot, and scale_down's removal of the newest one (its
    // process retired first).
    void add_slot() {
        slots_.emplace_back();
        slots_.back().process.index = static_cast<int>(slots_.size() - 1);
    }
    void remove_last_slot() { slots_.pop_back(); }

    // fork() returned pid for the slot. What can throw (a user's System need
    // not be noexcept, an allocation can fail) comes before anything changes:
    // the process is in the table entirely or not at all.
    // With defer_pidfd its pidfd is opened later, by watch_deferred().
    void started(std::size_t index, pid_t pid, unique_fd<System> notify_read, std::int64_t now,
                 bool defer_pidfd) {
        unique_fd<System> pidfd(defer_pidfd ? -1 : System::pidfd_open(pid));
        serving_.emplace(pid, index);
        try {
            descriptors_.insert(pidfd.get());
            descriptors_.insert(notify_read.get());
            if (defer_pidfd) deferred_.push_back(pid);
        } catch (...) {
            serving_.erase(pid);
            descriptors_.erase(pidfd.get());
            throw;
        }
        slot<System>& s = slots_[index];
        s.state = worker_state::running;
        s.started_ms = now;
        worker_process<System>& p = s.process;
        p.pid = pid;
        p.index = static_cast<int>(index);
        ++live_;
        p.pidfd = std::move(pidfd);
        p.notify_read = std::move(notify_read);
        p.set_up = false;
        p.ready = false;
        p.phase = stop_phase::running;
        p.next_step_ms = 0;
        p.awaiting_successor = false;
        p.watched = watch(p);
        if (!p.watched) ++unwatched_;
    }

    // The first workers are forked before any of their pidfds is opened: a
    // fork copies every descriptor of the master into the child, where its
    // set-up closes them again, so a pidfd opened per fork made each fork
    // O(N) in the kernel and a start of N workers O(N^2) (docs/benchmarks.md).
    // A child that is not reaped keeps its pid, as a zombie too, so a pidfd
    // opened now names the process forked then (pidfd_open(2)); until now such
    // a worker was signalled by pid and found by the waitid look, as on a
    // kernel without pidfds.
    void watch_deferred() {
        for (const pid_t pid : deferred_) {
            worker_process<System>* p = find(pid);
            if (p == nullptr || p->pidfd) continue;  // reaped meanwhile
            unique_fd<System> pidfd(System::pidfd_open(pid));
            if (!pidfd) continue;
            descriptors_.insert(pidfd.get());
            p->pidfd = std::move(pidfd);
            p->watched = watch(*p);
            if (p->watched) --unwatched_;
        }
        deferred_.clear();
    }

    // The slot's process becomes a retiree, which owns its descriptors from
    // now on; the slot is free for a successor. A rolling reload's retiree
    // keeps serving until its successor is ready; any other is asked to stop
    // gracefully at once.
    void retire(std::size_t index, bool until_successor_ready) {
        worker_process<System>& p = slots_[index].process;
        if (p.pid <= 0) return;
        serving_.erase(p.pid);
        retirees_.push_back(std::move(p));
        p = worker_process<System>{};
        p.index = static_cast<int>(index);
        slots_[index].state = worker_state::exited;
        if (until_successor_ready) {
            retirees_.back().awaiting_successor = true;
        } else {
            request_stop(retirees_.back(), true);
        }
    }
    // The slot's successor is ready: its predecessors stop gracefully.
    void release_predecessors(std::size_t index) {
        for (worker_process<System>& old : retirees_) {
            if (old.awaiting_successor && old.index == static_cast<int>(index)) {
                request_stop(old, true);
            }
        }
    }

    // One kill(2) to one live process. Never kill(0): that would reach the
    // launching shell or test runner, which share our process group; never a
    // reaped pid: it may already belong to another process.
    void signal(worker_process<System>& p, int sig) {
        if (p.pid <= 0 || p.phase == stop_phase::killed) return;
        const int rc = p.pidfd ? System::pidfd_send_signal(p.pidfd.get(), sig)
                               : System::kill(p.pid, sig);
        if (rc != 0 && errno != ESRCH) {
            log_("kill(" + std::to_string(p.pid) + ", " + signal_name(sig) +
                 "): " + std::strerror(errno));
        }
        if (sig == SIGKILL && p.phase != stop_phase::killed) {
            p.phase = stop_phase::killed;
            schedule(p, monotonic_ms() + opts_.shutdown_timeout.count());
        }
    }
    // sig, then SIGCONT, for every signal that asks a worker to end. A
    // stopped worker (SIGSTOP, SIGTSTP) acts on nothing but SIGKILL until it
    // continues: a signal it catches, or a SIGABRT that dumps core, stays
    // pending meanwhile (signal(7)), so without SIGCONT its stop would cost
    // the whole shutdown_timeout and end in SIGKILL. sig goes first, so it is
    // pending when the worker resumes and taken before the worker runs
    // anything else, as systemd sends SIGCONT right after KillSignal=
    // (systemd.kill(5)) and runsv after SIGTERM. The master cannot cheaply
    // know which worker is stopped (SA_NOCLDSTOP hides the stops, /proc
    // would be a read per worker and stale at once), and to a running worker
    // SIGCONT is nothing: its default action is to continue, which it does.
    void signal_to_end(worker_process<System>& p, int sig) {
        signal(p, sig);
        signal(p, SIGCONT);
    }
    // Every process serving a slot (forward<SIG>); retirees are leaving.
    void signal_serving(int sig) {
        for (slot<System>& s : slots_) signal(s.process, sig);
    }

    // Graceful: the graceful signal, then SIGTERM after shutdown_timeout.
    // Fast: SIGTERM, then SIGKILL after shutdown_timeout. Each step happens
    // once.
    void request_stop(worker_process<System>& p, bool graceful) {
        if (p.pid <= 0) return;
        p.awaiting_successor = false;
        const std::int64_t deadline = monotonic_ms() + opts_.shutdown_timeout.count();
        if (graceful && graceful_signal_ != SIGTERM) {
            if (p.phase != stop_phase::running) return;
            signal_to_end(p, graceful_signal_);
            p.phase = stop_phase::graceful;
        } else {
            if (p.phase == stop_phase::fast || p.phase == stop_phase::killed) return;
            signal_to_end(p, SIGTERM);
            p.phase = stop_phase::fast;
        }
        schedule(p, deadline);
    }
    // The watchdog's SIGABRT (with SIGCONT: a worker stalled because it is
    // stopped dumps core at once), then the usual SIGKILL deadline.
    void abort_stale(worker_process<System>& p, std::int64_t now) {
        signal_to_end(p, SIGABRT);
        p.phase = stop_phase::fast;
        schedule(p, now + opts_.shutdown_timeout.count());
    }
    // Newest first (OTP stops children in reverse start order).
    void stop_all(bool graceful) {
        for_each_process([&](worker_process<System>& p) { request_stop(p, graceful); });
    }
    void kill_all(int sig) {
        for_each_process([&](worker_process<System>& p) { signal(p, sig); });
    }

    // The stop steps that are due, from the front of the queue: a graceful
    // stop past its time becomes a fast one, a fast one past its time
    // SIGKILL. A process still there long after its SIGKILL was reaped
    // behind the pool's back (another waitpid(-1) in the program) or is stuck
    // in the kernel: the next reap asks each pid.
    void enforce_deadlines(std::int64_t now) {
        bool hurried = false;
        bool killed = false;
        while (!steps_.empty() && steps_.front().at <= now) {
            const step due = steps_.front();
            steps_.pop_front();
            worker_process<System>* found = find(due.pid);
            if (found == nullptr || found->next_step_ms != due.at) continue;  // a stale entry
            worker_process<System>& p = *found;
            if (p.phase == stop_phase::graceful) {
                if (!hurried) {
                    log_("workers still busy after " +
                         std::to_string(opts_.shutdown_timeout.count()) +
                         " ms of graceful stop; sending SIGTERM");
                }
                hurried = true;
                request_stop(p, false);
            } else if (p.phase == stop_phase::fast) {
                if (!killed) {
                    log_("workers still running after " +
                         std::to_string(opts_.shutdown_timeout.count()) + " ms; sending SIGKILL");
                }
                killed = true;
                signal(p, SIGKILL);
            } else if (p.phase == stop_phase::killed) {
                ask_each_pid_ = true;
                schedule(p, now + opts_.shutdown_timeout.count());
            }
        }
    }
    // The earliest stop step still to take, or -1. Every step is scheduled
    // shutdown_timeout after the moment it is set, so the queue is in the
    // order of its deadlines and its front is the earliest.
    std::int64_t next_stop_step() const noexcept {
        while (!steps_.empty()) {
            const worker_process<System>* p = find(steps_.front().pid);
            if (p != nullptr && p->next_step_ms == steps_.front().at) return steps_.front().at;
            steps_.pop_front();
        }
        return -1;
    }

    // Retirees count too: a reload's draining predecessor must be reaped
    // before the destroy hooks run and run() returns.
    bool all_reaped() const noexcept { return live_ == 0; }
    // A reap is due without a SIGCHLD (see enforce_deadlines).
    bool reap_due() const noexcept { return ask_each_pid_; }

    // Reaps what ended, at a cost that does not grow with the pool: the
    // epoll set over the pidfds names exactly the processes that ended, each
    // then reaped by its pid. A process without a pidfd in the set (a kernel
    // without pidfds) is found by a waitid(WNOWAIT) look, which names an
    // ended child without reaping it. Only this pool's pids are reaped, never
    // waitpid(-1): another library's children in the same program stay
    // theirs, and since the look cannot see past one of them, each of our
    // pids is then asked instead. Only as a subreaper or PID 1, where every
    // orphan of the process tree lands here, is whatever comes reaped. A
    // slot's process that ended goes to ended(index, what): "worker 2 (pid
    // 4242) exited with status 0".
    template <class Ended>
    void reap(bool adopting, bool child_ended, Ended&& ended) {
        bool ask_each = ask_each_pid_;
        ask_each_pid_ = false;
        if (exits_) {
            struct epoll_event events[64];
            for (;;) {
                const int n = retry_on_eintr(
                    [&] { return System::epoll_wait(exits_.get(), events, 64, 0); });
                bool reaped = false;
                for (int i = 0; i < n; ++i) {
                    // A stale event (a worker being forked holds a copy of the
                    // pidfd until its set-up closes it) names a pid that is
                    // gone, or alive again under a new process: nothing to do.
                    const auto pid = static_cast<pid_t>(events[i].data.u64);
                    if (find(pid) != nullptr && reap_pid(pid, ended)) reaped = true;
                }
                // A full batch of stale events only would come back as it is.
                if (n < 64 || !reaped) break;
            }
        }
        // Without pidfds, a SIGCHLD whose look finds none of ours may be for
        // one reaped behind the pool's back (a waitpid(-1) elsewhere in the
        // program), which no look can see: then each pid is asked.
        bool found_one = false;
        const bool look = unwatched_ > 0;
        while (!ask_each && (unwatched_ > 0 || adopting)) {
            siginfo_t info{};
            const int rc = retry_on_eintr([&] {
                return System::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
            });
            if (rc != 0 || info.si_pid == 0) break;  // nothing ended (ECHILD: no child at all)
            const pid_t pid = info.si_pid;
            if (find(pid) != nullptr) {
                // It ended, so only a failed waitpid can leave it: then ask each.
                if (!reap_pid(pid, ended)) ask_each = true;
                found_one = true;
            } else if (adopting) {
                int status = 0;
                if (retry_on_eintr([&] { return System::waitpid(pid, &status, WNOHANG); }) != pid) {
                    break;  // it would be named again and again
                }
                log_("reaped orphan pid " + std::to_string(pid) + ", " +
                     decode_wait_status(status).describe());
            } else {
                ask_each = true;
            }
        }
        if (look && !found_one && child_ended) ask_each = true;
        if (!ask_each) return;
        for (std::size_t r = 0; r < retirees_.size();) {
            const pid_t pid = retirees_[r].pid;
            if (reap_pid(pid, ended)) continue;
            ++r;
        }
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            const pid_t pid = slots_[i].process.pid;
            if (pid > 0) reap_pid(pid, ended);
        }
    }

    // What a new worker must close: the descriptors of every process here,
    // and `own`, the master's others (-1 for none), as runs.
    descriptor_runs master_descriptors(std::array<int, 4> own) const noexcept {
        std::sort(own.begin(), own.end());
        descriptor_runs runs;
        auto next_own = own.begin();
        descriptors_.for_each([&](int fd) {
            for (; next_own != own.end() && *next_own < fd; ++next_own) {
                if (*next_own >= 0) runs.add(*next_own);
            }
            runs.add(fd);
        });
        for (; next_own != own.end(); ++next_own) {
            if (*next_own >= 0) runs.add(*next_own);
        }
        return runs;
    }
    // In a new worker, when the runs were not complete (read-only: see
    // unique_fd).
    template <class Visit>
    void for_each_master_descriptor(Visit&& visit) const noexcept {
        descriptors_.for_each(visit);
    }
    // The master's end of a notify_fd pipe, once the worker is ready.
    void close_notify(worker_process<System>& p) noexcept {
        descriptors_.erase(p.notify_read.get());
        p.notify_read.reset();
    }

  private:
    struct step {
        std::int64_t at;
        pid_t pid;
    };
    void schedule(worker_process<System>& p, std::int64_t at) {
        p.next_step_ms = at;
        steps_.push_back(step{at, p.pid});
    }
    // The live process with this pid, serving or retired, or null.
    // Its pidfd into the epoll set that names ended processes; false if it
    // has none or the set refused it.
    bool watch(const worker_process<System>& p) noexcept {
        if (!exits_ || !p.pidfd) return false;
        struct epoll_event ended {};
        ended.events = EPOLLIN;
        ended.data.u64 = static_cast<std::uint64_t>(p.pid);
        return System::epoll_ctl(exits_.get(), EPOLL_CTL_ADD, p.pidfd.get(), &ended) == 0;
    }
    worker_process<System>* find(pid_t pid) noexcept {
        const auto serving = serving_.find(pid);
        if (serving != serving_.end()) return &slots_[serving->second].process;
        for (worker_process<System>& p : retirees_) {
            if (p.pid == pid) return &p;
        }
        return nullptr;
    }
    const worker_process<System>* find(pid_t pid) const noexcept {
        return const_cast<process_table*>(this)->find(pid);
    }
    // waitpid(pid, WNOHANG) for one of ours; true if it ended (ECHILD: it was
    // reaped elsewhere, and how it ended is lost).
    template <class Ended>
    bool reap_pid(pid_t pid, Ended& ended) {
        int status = 0;
        const pid_t rc = retry_on_eintr([&] { return System::waitpid(pid, &status, WNOHANG); });
        if (rc == 0) return false;
        exit_info how = decode_wait_status(status);
        if (rc != pid) how = exit_info{exit_info::kind::lost, 0, 0, false};
        const auto serving = serving_.find(pid);
        if (serving != serving_.end()) {
            slot_ended(serving->second, how, ended);
            return true;
        }
        for (std::size_t r = 0; r < retirees_.size(); ++r) {
            if (retirees_[r].pid == pid) {
                retiree_ended(r, how);
                return true;
            }
        }
        return false;
    }

    void forget_descriptors(const worker_process<System>& p) noexcept {
        descriptors_.erase(p.pidfd.get());
        descriptors_.erase(p.notify_read.get());
    }

    // Serving processes then retirees, each newest first.
    template <class Visit>
    void for_each_process(Visit&& visit) {
        for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) visit(it->process);
        for (auto it = retirees_.rbegin(); it != retirees_.rend(); ++it) visit(*it);
    }
    template <class Visit>
    void for_each_process(Visit&& visit) const {
        for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) visit(it->process);
        for (auto it = retirees_.rbegin(); it != retirees_.rend(); ++it) visit(*it);
    }

    template <class Ended>
    void slot_ended(std::size_t index, const exit_info& how, Ended& ended) {
        slot<System>& s = slots_[index];
        const std::string what = "worker " + std::to_string(index) + " (pid " +
                                 std::to_string(s.process.pid) + ") " + how.describe();
        s.last_exit = how;
        s.last_was_ready = s.process.ready;
        s.state = worker_state::exited;
        serving_.erase(s.process.pid);
        --live_;
        if (!s.process.watched) --unwatched_;
        forget_descriptors(s.process);
        s.process = worker_process<System>{};
        s.process.index = static_cast<int>(index);
        ended(index, what);
    }
    void retiree_ended(std::size_t position, const exit_info& how) {
        const worker_process<System>& p = retirees_[position];
        log_("worker " + std::to_string(p.index) + " (pid " + std::to_string(p.pid) +
             ", retired) " + how.describe());
        if (!p.watched) --unwatched_;
        forget_descriptors(p);
        retirees_.erase(retirees_.begin() + static_cast<std::ptrdiff_t>(position));
        --live_;
    }

    const options& opts_;
    const logger<System>& log_;
    int graceful_signal_;
    unique_fd<System> exits_;  // epoll over the pidfds; empty where that fails
    std::vector<slot<System>> slots_;
    std::vector<worker_process<System>> retirees_;
    std::unordered_map<pid_t, std::size_t> serving_;  // pid -> slot, for the processes serving
    descriptor_set descriptors_;  // the processes' pidfds and notify_fd pipes, exits_
    std::size_t live_ = 0;                            // processes not reaped yet
    std::size_t unwatched_ = 0;                       // ...of which not in exits_
    std::vector<pid_t> deferred_;                     // forked without a pidfd (watch_deferred)
    mutable std::deque<step> steps_;                  // stop deadlines, earliest first
    bool ask_each_pid_ = false;
};

// The child's side of fork(), up to the worker's first instruction. The
// master's signals are still blocked here, so no handler can run until the
// worker's own dispositions are in place (Boost.Asio issue 1069: a signal
// meant for the child ran the parent's handler in the child). Everything it
// needs was computed by the master before fork; it writes nothing the master
// owns, and it ends with _exit whatever happens.
template <class System>
struct worker_launch {
    const options& opts;
    const credentials& creds;
    const logger<System>& log;
    const worker_signal_plan& plan;
    std::uint64_t master_handled;
    const signal_scope<System>& signals;
    const process_table<System>& table;
    descriptor_runs master_fds;
    int records_read;   // the master's own: in master_fds, and here for the rest
    int systemd_fd;     // (see close_master_descriptors)
    int records_write;  // where this worker reports
    pid_t master_pid;
    pid_t pgid;
    int index;
    unsigned generation;
    int notify_write;  // -1 without notify_fd
    std::atomic<std::int64_t>* beat;
    worker_entry worker;
    std::int64_t started_ms;  // the master's clock at fork
    const std::vector<listening_socket>* listeners;
    pool_page page;           // the pool's page, for worker_context::pool_statistics()
    const std::atomic<std::int64_t>* beats;

    [[noreturn]] void run() noexcept {
        System::setpgid(0, pgid);
        process_signals.wake_fd.store(-1, std::memory_order_relaxed);
        close_master_descriptors();
        move_notify_fd();
        set_dispositions();
        // The master's pending bits are not the worker's. Stored only when
        // set: a store would copy the page into this process (copy-on-write).
        // The delivery counters are the master's statistics and are not read
        // here.
        if (process_signals.pending.load(std::memory_order_relaxed) != 0) {
            process_signals.pending.store(0);
        }

        // Before the parent-death signal: changing the effective user clears
        // it (prctl(2), PR_SET_PDEATHSIG).
        drop_privileges();
        if (opts.parent_death_signal != 0) {
            // A worker that would outlive its master must not start.
            if (System::set_parent_death_signal(opts.parent_death_signal) != 0) {
                setup_failed("prctl(PR_SET_PDEATHSIG)");
            }
            // The master may have died between fork() and prctl(): then the
            // death signal will never come (prctl(2)), so check by hand.
            if (System::getppid() != master_pid) ::_exit(EXIT_FAILURE);
        }
        const sigset_t worker_mask = sigset_without(signals.program_mask(), plan.handled);
        if (System::thread_sigmask(SIG_SETMASK, &worker_mask, nullptr) != 0) {
            setup_failed("pthread_sigmask");
        }
        write_record(worker_calls_of<System>(), records_write, index, record_set_up);

        worker_context context = context_factory::make(context_init{
            index, generation, master_pid, opts.stats_fd, plan, nullptr, nullptr, records_write,
            beat, static_cast<std::int64_t>(opts.heartbeat_timeout.count()),
            &worker_calls_of<System>(), started_ms, -1, -1, listeners, page, beats, opts.name.c_str()});
        const worker_result result = run_worker_code(worker, context, index);
        if (!result.failure.empty()) log.line_or_nothing([&] { return result.failure; });
        std::fflush(nullptr);
        // _exit(2), not exit: the master's atexit handlers and static
        // destructors belong to the master, and nothing here is destroyed on
        // the way out. Through syscall(2), which the master has bound: with
        // lazy binding, a first call of _exit would make every worker look
        // the symbol up on its way out.
        ::syscall(SYS_exit_group, result.code);
        ::_exit(result.code);  // not reached
    }

    // With lazy binding (the default without -Wl,-z,now) the first call of a
    // library function resolves its symbol, a lookup that faults in a dozen
    // pages of the dynamic linker's tables. Every worker calls these and the
    // master may not have yet: calling them once in the master, harmlessly,
    // binds them for every worker it forks.
    static void bind_in_master() noexcept {
        const int saved_errno = errno;
        int death_signal = 0;
        (void)::prctl(PR_GET_PDEATHSIG, &death_signal, 0UL, 0UL, 0UL);
        (void)::getppid();
        if (::write(-1, nullptr, 0) < 0) {  // EBADF
        }
        // close_range and the way out go through syscall(2): an empty range
        // (first > last) is EINVAL and closes nothing.
        (void)::syscall(SYS_close_range, 1U, 0U, 0U);
        errno = saved_errno;
    }

  private:
    // The master's descriptors are the master's business; $NOTIFY_SOCKET
    // above all speaks for the master (MAINPID): a worker holding the socket
    // could send READY=1 or STOPPING=1 in its name.
    void close_master_descriptors() const noexcept {
        for (std::size_t i = 0; i < master_fds.count; ++i) {
            const descriptor_runs::run& run = master_fds.runs[i];
            if (System::close_range(static_cast<unsigned>(run.first),
                                    static_cast<unsigned>(run.last)) == 0) {
                continue;
            }
            for (int fd = run.first; fd <= run.last; ++fd) System::close(fd);
        }
        if (master_fds.complete) return;
        const int done = master_fds.covered_up_to();
        table.for_each_master_descriptor([done](int fd) {
            if (fd > done) System::close(fd);
        });
        for (const int fd : {signals.wake_read(), signals.wake_write(), records_read, systemd_fd}) {
            if (fd > done) System::close(fd);
        }
    }

    void move_notify_fd() noexcept {
        if (notify_write < 0) return;
        // The start-up pipe must not sit where notify_fd goes: move it first.
        if (records_write == opts.notify_fd) {
            records_write = System::fcntl(records_write, F_DUPFD_CLOEXEC, 3);
            if (records_write < 0) setup_failed("fcntl(F_DUPFD_CLOEXEC)");
        }
        // dup2 clears FD_CLOEXEC on the copy: the descriptor survives exec.
        // When the pipe already has that number dup2 does nothing, so the
        // flag is cleared by hand. dup2 can be interrupted (dup2(2), EINTR).
        if (notify_write == opts.notify_fd) {
            if (System::fcntl(notify_write, F_SETFD, 0) < 0) setup_failed("fcntl(F_SETFD)");
        } else {
            if (retry_on_eintr([&] { return System::dup2(notify_write, opts.notify_fd); }) < 0) {
                setup_failed("dup2");
            }
            System::close(notify_write);
        }
    }

    // The worker map on top of the program's dispositions, one sigaction(2)
    // per signal that changes: a signal both maps handle already has the
    // master's handler, which is the worker's too (on_signal, no SA_RESTART,
    // an empty sa_mask).
    void set_dispositions() const noexcept {
        for (const auto& previous : signals.program_dispositions()) {
            const std::uint64_t bit = signal_bit(previous.number);
            if ((plan.handled | plan.ignored) & bit) continue;
            if (System::sigaction(previous.number, &previous.action, nullptr) != 0) {
                setup_failed("sigaction");
            }
        }
        for (int sig = 1; sig <= max_signal; ++sig) {
            const std::uint64_t bit = signal_bit(sig);
            if (!((plan.handled | plan.ignored) & bit)) continue;
            if ((plan.handled & bit) && (master_handled & bit)) continue;
            struct ::sigaction action {};
            sigemptyset(&action.sa_mask);
            // Ignored signals use SIG_IGN so they do not interrupt the
            // worker's system calls with EINTR; the others use the common
            // handler without SA_RESTART so a blocking call returns and the
            // worker can look at its stop flag.
            action.sa_handler = (plan.handled & bit) ? on_signal : SIG_IGN;
            if (System::sigaction(sig, &action, nullptr) != 0) setup_failed("sigaction");
        }
    }

    // Supplementary groups first (they need root), then the group; then,
    // still root (PR_CAPBSET_DROP needs CAP_SETPCAP), the bounding set and
    // no_new_privs, so that no exec gives back what the worker gives up; then
    // the user; then prove root cannot come back.
    void drop_privileges() const noexcept {
        if (!creds.drop) return;
        const char* failed = nullptr;
        int capability = -1;
        if (System::setgroups(creds.groups.size(), creds.groups.data()) != 0) {
            failed = "setgroups";
        } else if (System::setgid(creds.gid) != 0) {
            failed = "setgid";
        } else if (creds.no_new_privileges && !drop_bounding_set(capability)) {
            failed = "prctl(PR_CAPBSET_DROP)";
        } else if (creds.no_new_privileges && System::set_no_new_privileges() != 0) {
            failed = "prctl(PR_SET_NO_NEW_PRIVS)";
        } else if (System::setuid(creds.uid) != 0) {
            failed = "setuid";
        } else if (creds.uid != 0 &&
                   (System::setuid(0) == 0 || ::geteuid() != creds.uid || ::getegid() != creds.gid)) {
            failed = "regaining root was still possible after setuid";
        }
        if (failed == nullptr) return;
        const int err = errno;
        log.line_or_nothing([&] {
            return "worker " + std::to_string(index) + ": cannot drop privileges to '" + opts.user +
                   "': " + failed +
                   (capability >= 0 ? " of capability " + std::to_string(capability) : "") +
                   (err != 0 ? std::string(": ") + std::strerror(err) : "");
        });
        fatal_exit();
    }

    // Empties the capability bounding set: 0..last_capability, or, where the
    // master could not read that number, up to the first capability the
    // kernel does not know. False, with the capability, if one fails.
    bool drop_bounding_set(int& failed_at) const noexcept {
        const bool known = creds.last_capability >= 0;
        const int last = known ? creds.last_capability : 63;
        for (int cap = 0; cap <= last; ++cap) {
            if (System::drop_bounding_capability(cap) == 0) continue;
            if (!known && cap > 0 && errno == EINVAL) return true;
            failed_at = cap;
            return false;
        }
        return true;
    }

    // A worker whose set-up failed (its signal dispositions, its mask, its
    // parent-death signal, its notify_fd) must not run the worker's code half
    // set up.
    [[noreturn]] void setup_failed(const char* call) const noexcept {
        const int err = errno;
        log.line_or_nothing(
            [&] { return "worker " + std::to_string(index) + ": " + call + ": " + std::strerror(err); });
        fatal_exit();
    }
    // A restart would fail the same way: the fatal status stops the pool.
    [[noreturn]] void fatal_exit() const noexcept {
        ::_exit(opts.fatal_exit_code >= 0 ? opts.fatal_exit_code : EXIT_FAILURE);
    }
};

// The master's side of fork(): the worker's notify_fd pipe, its process
// group, the launch its child runs, its place in the table. A spawn costs the
// master fork, setpgid and pidfd_open, whatever the pool's size.
template <class System>
class spawner {
  public:
    struct context {
        const options& opts;
        const credentials& creds;
        const logger<System>& log;
        const pool_plan& plan;
        const signal_scope<System>& signals;
        int records_read;
        int records_write;
        int systemd_fd;
        heartbeat_table<System>& heartbeats;
        const status_page<System>& status;
        process_table<System>& table;
        worker_entry worker;
        pid_t master_pid;
        const std::vector<listening_socket>* listeners;
    };
    explicit spawner(const context& c) noexcept : c_(c) {}

    // Starts the slot's worker: empty, or why it could not start ("cannot
    // start worker 2: fork: Resource temporarily unavailable"). defer_pidfd:
    // process_table::watch_deferred.
    std::string spawn(std::size_t index, bool defer_pidfd = false) {
        const int number = static_cast<int>(index);
        const std::int64_t now = monotonic_ms();
        c_.heartbeats.reset(number, now);
        unique_fd<System> notify_read;
        unique_fd<System> notify_write;
        if (c_.opts.notify_fd >= 0 &&
            !make_pipe(notify_read, notify_write, O_CLOEXEC | O_NONBLOCK)) {
            const int err = errno;
            return "cannot start worker " + std::to_string(index) + ": pipe2: " +
                   std::strerror(err);
        }
        // The pool's group lives while one of its workers does (a zombie
        // counts); once every worker is reaped it is gone, and the next worker
        // leads a new one instead of failing to join it (EPERM).
        if (c_.table.all_reaped()) pgid_ = 0;
        worker_launch<System> launch{
            c_.opts,
            c_.creds,
            c_.log,
            c_.plan.worker,
            c_.plan.master_mask | signal_bit(SIGCHLD),
            c_.signals,
            c_.table,
            c_.table.master_descriptors(
                {c_.signals.wake_read(), c_.signals.wake_write(), c_.records_read, c_.systemd_fd}),
            c_.records_read,
            c_.systemd_fd,
            c_.records_write,
            c_.master_pid,
            pgid_,
            number,
            c_.table[index].generation,
            notify_write.get(),
            c_.heartbeats.of(number),
            c_.worker,
            now,
            c_.listeners,
            c_.status.page(),
            c_.heartbeats.of(0)};
        const pid_t pid = System::fork();
        if (pid == 0) {
            if (notify_read) System::close(notify_read.get());
            launch.run();
        }
        notify_write.reset();
        if (pid < 0) {
            const int err = errno;
            return "cannot start worker " + std::to_string(index) + ": fork: " +
                   std::strerror(err);
        }
        // In the table first: from here on its destructor stops and reaps the
        // worker whatever throws (a user's System need not be noexcept).
        try {
            c_.table.started(index, pid, std::move(notify_read), now, defer_pidfd);
        } catch (...) {
            System::kill(pid, SIGKILL);
            int status = 0;
            retry_on_eintr([&] { return System::waitpid(pid, &status, 0); });
            throw;
        }
        // Both sides call setpgid so the group is right whichever runs first
        // (the classic job-control race, setpgid(2)).
        if (System::setpgid(pid, pgid_) != 0 && errno != EACCES && errno != ESRCH) {
            c_.log("worker " + std::to_string(index) + ": setpgid: " + std::strerror(errno));
        }
        if (pgid_ == 0) pgid_ = pid;
        return "";
    }

  private:
    context c_;
    pid_t pgid_ = 0;
};

// ---- cleanup: destroy hooks and orphans ----

// The hooks in reverse order of registration, all under one real-time timer
// whose handler ends the process: a hook that hangs cannot be interrupted any
// other way. Returns how many threw.
template <class System>
int run_destroy_hooks(const std::vector<destroy_hook>& hooks,
                      std::chrono::milliseconds destroy_timeout, const logger<System>& log) {
    if (hooks.empty()) return 0;
    process_signals.deadline_fd.store(log.fd(), std::memory_order_release);
    struct ::sigaction deadline {};
    struct ::sigaction previous_alarm {};
    deadline.sa_handler = on_destroy_deadline;
    sigemptyset(&deadline.sa_mask);
    System::sigaction(SIGALRM, &deadline, &previous_alarm);
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    sigset_t previous_mask;
    System::thread_sigmask(SIG_UNBLOCK, &alarm_only, &previous_mask);
    struct itimerval limit {};
    struct itimerval previous_timer {};
    limit.it_value.tv_sec = static_cast<time_t>(destroy_timeout.count() / 1000);
    limit.it_value.tv_usec = static_cast<suseconds_t>((destroy_timeout.count() % 1000) * 1000);
    System::setitimer(ITIMER_REAL, &limit, &previous_timer);

    int failed = 0;
    for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) {
        try {
            it->run();
        } catch (...) {
            ++failed;
            log("destroy hook '" + it->name + "' failed" +
                describe_thrown(" with a non-standard exception"));
        }
    }

    System::setitimer(ITIMER_REAL, &previous_timer, nullptr);
    System::thread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
    System::sigaction(SIGALRM, &previous_alarm, nullptr);
    process_signals.deadline_fd.store(-1, std::memory_order_release);
    return failed;
}

// As a subreaper (or PID 1) the workers' orphaned descendants are the
// master's children. Returning with them still running would leave them to
// whoever is above the program, with nobody to stop them (and as PID 1 the
// kernel SIGKILLs them without a SIGTERM). So they get what workers get:
// SIGTERM, SIGKILL after shutdown_timeout, and they are reaped. A descendant
// orphaned meanwhile joins them. Children the program had before run() are
// its own and are left alone. wait(ms) is the master's wait, which SIGCHLD
// (or any mapped signal) ends early.
template <class System, class Wait>
void stop_orphans(const std::vector<pid_t>& program_children,
                  std::chrono::milliseconds shutdown_timeout, const logger<System>& log,
                  Wait&& wait) {
    const std::int64_t deadline = monotonic_ms() + shutdown_timeout.count();
    // After SIGKILL the kernel needs no cooperation; the extra bound only
    // protects against a process stuck in an uninterruptible wait.
    const std::int64_t give_up = deadline + shutdown_timeout.count();
    std::vector<pid_t> signalled;
    bool killing = false;
    for (;;) {
        int status = 0;
        pid_t pid;
        while ((pid = retry_on_eintr([&] { return System::waitpid(-1, &status, WNOHANG); })) > 0) {
            log("reaped orphan pid " + std::to_string(pid) + ", " +
                decode_wait_status(status).describe());
            signalled.erase(std::remove(signalled.begin(), signalled.end(), pid), signalled.end());
        }
        bool readable = false;
        std::vector<pid_t> orphans = main_thread_children<System>(&readable);
        if (!readable) {
            const int err = errno;
            log(std::string("cannot list orphans to stop them: /proc/self/task/.../children: ") +
                std::strerror(err));
            return;
        }
        orphans.erase(std::remove_if(orphans.begin(), orphans.end(),
                                     [&](pid_t p) {
                                         return std::find(program_children.begin(),
                                                          program_children.end(),
                                                          p) != program_children.end();
                                     }),
                      orphans.end());
        if (orphans.empty()) return;
        const std::int64_t now = monotonic_ms();
        if (now >= give_up) {
            log(std::to_string(orphans.size()) + " orphans still not reaped; giving up on them");
            return;
        }
        if (!killing && now >= deadline) {
            log("orphans still running after " + std::to_string(shutdown_timeout.count()) +
                " ms; sending SIGKILL");
            killing = true;
            signalled.clear();
        }
        for (const pid_t orphan : orphans) {
            if (std::find(signalled.begin(), signalled.end(), orphan) != signalled.end()) continue;
            // Unreaped, so the pid cannot belong to anyone else yet.
            System::kill(orphan, killing ? SIGKILL : SIGTERM);
            signalled.push_back(orphan);
        }
        wait((killing ? give_up : deadline) - now);
    }
}

// ---- the master's cycle ----

// One run() of a pool: built when run() starts and gone when it returns, so
// nothing is left over for the next one. Its members are acquired in the
// order they are declared and released in the reverse one, however run()
// ends: the process table (no worker outlives run()), the heartbeats,
// systemd's socket, the subreaper setting, the start-up pipe, and last the
// program's signal dispositions and mask.
template <class System>
class master {
  public:
    master(const options& opts, const pool_plan& plan, const credentials& creds,
           worker_entry worker, const std::vector<destroy_hook>& hooks,
           const std::function<void()>& ready_hook, listener_set<System>& listeners)
        : opts_(opts),
          plan_(plan),
          worker_(worker),
          hooks_(hooks),
          ready_hook_(ready_hook),
          listeners_(listeners),
          log_(opts),
          master_pid_(::getpid()),
          started_ms_(monotonic_ms()),
          signals_(plan.master_mask | signal_bit(SIGCHLD), !opts.no_fork, opts.allow_threads),
          records_(start_up_pipe(!opts.no_fork)),
          adopting_(!opts.no_fork && (opts.subreaper || master_pid_ == 1)),
          program_children_(adopting_ ? main_thread_children<System>() : std::vector<pid_t>{}),
          subreaper_(opts.subreaper && !opts.no_fork),
          systemd_(log_),
          heartbeats_(opts.heartbeat_timeout.count() > 0 && !opts.no_fork, opts.max_workers),
          page_(opts.max_workers, master_pid_, started_ms_, opts.min_ready_workers),
          table_(opts, log_, plan.graceful_signal),
          spawner_({opts, creds, log_, plan, signals_, records_.read.get(), records_.write.get(),
                    systemd_.fd(), heartbeats_, page_, table_, worker, master_pid_,
                    &listeners_.sockets()}),
          restarts_(opts),
          next_keepalive_ms_(started_ms_ + systemd_.watchdog_ms()) {}
    master(const master&) = delete;
    master& operator=(const master&) = delete;

    outcome run() {
        if (opts_.no_fork) return run_inline();
        publish_pool();
        start_workers();
        table_.watch_deferred();
        // nginx's master cycle: wait for the next event, then each kind of
        // work in a fixed order.
        while (!(stopping_ && table_.all_reaped())) {
            wait_for_events(next_deadline());
            // Signals first: when a stop signal reaches the master and its
            // workers together (pkill, systemd's KillMode=control-group), the
            // workers' exits then belong to the requested stop, not a failure.
            dispatch_signals();
            if (drain_until_ms_ >= 0 && monotonic_ms() >= drain_until_ms_) end_drain_delay();
            reap();
            check_heartbeats();
            table_.enforce_deadlines(monotonic_ms());
            keep_systemd_alive();
            if (!stopping_) start_due_restarts();
            // What the pass changed of the pool as a whole, for the workers'
            // pool_statistics() (each slot's record is written where it
            // changes).
            publish_pool();
        }
        return finish();
    }

    statistics snapshot() const;

  private:
    struct pipe_ends {
        unique_fd<System> read;
        unique_fd<System> write;
    };
    static pipe_ends start_up_pipe(bool wanted) {
        pipe_ends ends;
        if (wanted && !make_pipe(ends.read, ends.write, O_CLOEXEC | O_NONBLOCK)) {
            throw std::system_error(errno, std::generic_category(), "supervise: pipe2");
        }
        return ends;
    }

    // ---- start-up and the events the cycle waits for ----

    void start_workers() {
        // Buffered stdio data would otherwise be written once by every worker.
        std::fflush(nullptr);
        worker_launch<System>::bind_in_master();
        const sigset_t wait_mask = signals_.wait_mask();
        const struct timespec now {};
        const std::size_t first_size = table_.size();
        for (std::size_t index = 0; index < first_size && index < table_.size(); ++index) {
            // A signal during start-up (SIGTERM, a worker already dead) is
            // honoured before the next fork, not after all of them: one ppoll
            // lets pending signals in, and only one that came costs more. The
            // start-up records wait in their pipe for the cycle.
            System::ppoll(nullptr, 0, &now, &wait_mask);
            if (process_signals.pending.load(std::memory_order_acquire) != 0) {
                dispatch_signals();
                reap();
            }
            if (stopping_) return;
            // A signal may have started this slot already (rolling_reload,
            // scale_up), parked it (stop_workers) or put it in a group the
            // strategy restarts (start_due_restarts starts it then).
            const slot<System>& s = table_[index];
            if (s.process.pid > 0 || s.state != worker_state::idle || s.restart_pending) continue;
            if (!spawn(index, true)) return;
        }
    }

    bool spawn(std::size_t index, bool defer_pidfd = false) {
        const std::string failed = spawner_.spawn(index, defer_pidfd);
        publish(index);
        if (failed.empty()) return true;
        // At start-up the pool never came up; later it is a failed worker.
        begin_stop(announced_ready_ ? stop_reason::worker_failed : stop_reason::startup_failed, 0,
                   failed);
        return false;
    }

    // Waits for a signal with the mapped signals unblocked only inside ppoll:
    // the check-then-wait race of the seed's pause() cannot happen.
    // timeout_ms < 0 waits without a timer, so an idle master never wakes.
    void wait_for_events(std::int64_t timeout_ms) {
        const sigset_t wait_mask = signals_.wait_mask();
        struct timespec limit = to_timespec(timeout_ms);
        // The self-pipe, the start-up pipe, and the notify_fd pipes of the
        // workers that are not ready yet.
        std::vector<struct pollfd>& pfds = pollfds_;
        pfds.resize(2);
        pfds[0] = {signals_.wake_read(), POLLIN, 0};
        pfds[1] = {records_.read.get(), POLLIN, 0};
        if (opts_.notify_fd >= 0) {
            for (const slot<System>& s : table_.slots()) {
                if (s.process.notify_read) pfds.push_back({s.process.notify_read.get(), POLLIN, 0});
            }
        }
        const int rc =
            System::ppoll(pfds.data(), pfds.size(), timeout_ms < 0 ? nullptr : &limit, &wait_mask);
        if (rc <= 0) return;  // EINTR is the normal wake-up: the loop re-checks everything
        if (pfds[0].revents != 0) signals_.drain_wake_pipe();
        if (pfds[1].revents != 0) read_startup_records();
        for (std::size_t i = 2; i < pfds.size(); ++i) {
            if (pfds[i].revents == 0) continue;
            for (slot<System>& s : table_.slots()) {
                if (s.process.notify_read.get() == pfds[i].fd) read_notifications(s);
            }
        }
        // ppoll(2) that returns ready descriptors restores the mask without
        // delivering signals that were pending, so let them in explicitly: a
        // SIGTERM must not wait behind a stream of start-up records.
        const struct timespec now {};
        System::ppoll(nullptr, 0, &now, &wait_mask);
    }

    // Milliseconds until the earliest thing the cycle must do by itself, or
    // -1: with no deadline the master waits without a timer and never wakes
    // idle.
    std::int64_t next_deadline() const noexcept {
        std::int64_t earliest = table_.next_stop_step();
        const auto consider = [&](std::int64_t at) {
            if (earliest < 0 || at < earliest) earliest = at;
        };
        if (drain_until_ms_ >= 0) consider(drain_until_ms_);
        // The slots only while one can have a deadline: a restart waiting,
        // the watchdog on.
        if (!stopping_ && (restarts_pending_ > 0 || heartbeats_.on())) {
            // A restart is due only once every member of its group is out
            // (start_due_restarts); until then their exits wake the master.
            std::int64_t restart_at = -1;
            bool group_still_running = false;
            for (const slot<System>& s : table_.slots()) {
                if (s.restart_pending && s.process.pid > 0) group_still_running = true;
                if (s.restart_pending && s.process.pid <= 0 &&
                    (restart_at < 0 || s.restart_at_ms < restart_at)) {
                    restart_at = s.restart_at_ms;
                }
                if (heartbeats_.on() && s.process.pid > 0 &&
                    s.process.phase == stop_phase::running) {
                    consider(heartbeats_.last(s.process.index) + opts_.heartbeat_timeout.count());
                }
            }
            if (restart_at >= 0 && !group_still_running) consider(restart_at);
        }
        if (systemd_.watchdog_ms() > 0) consider(next_keepalive_ms_);
        if (earliest < 0) return -1;
        return std::max<std::int64_t>(0, earliest - monotonic_ms());
    }

    // ---- signals: one table of rows, one switch of actions ----

    void dispatch_signals() {
        // SIGCHLD's bit stays: reap() takes it, and a SIGCHLD arriving between
        // reap() and here must still make the next reap() look.
        const std::uint64_t taken =
            process_signals.pending.fetch_and(~plan_.master_mask, std::memory_order_acquire) &
            plan_.master_mask;
        if (taken == 0) return;
        // Several terminate signals taken in one pass are one request, not an
        // escalation: only a signal after the stop began escalates it.
        const bool was_stopping = stopping_;
        for (std::size_t i = 0; i < plan_.row_count; ++i) {
            const master_row& row = plan_.rows[i];
            if (taken & signal_bit(row.signal)) perform(row, was_stopping);
        }
    }

    void perform(const master_row& row, bool was_stopping) {
        switch (row.action) {
            case master_action::terminate:
                return stop_signal_received(row.signal, false, was_stopping);
            case master_action::graceful_stop:
                return stop_signal_received(row.signal, true, was_stopping);
            case master_action::print_stats:
                return print_statistics();
            case master_action::rolling_reload:
                return begin_rolling_reload(row.signal);
            case master_action::scale_up:
                return add_worker(row.signal);
            case master_action::scale_down:
                return remove_worker(row.signal);
            case master_action::stop_workers:
                return park_workers(row.signal);
            case master_action::forward:
                return table_.signal_serving(row.forwarded);
            case master_action::ignore:
                return;
        }
    }

    void stop_signal_received(int sig, bool graceful, bool was_stopping) {
        const std::string received = signal_name(sig) + " received";
        if (!was_stopping) {
            if (!stopping_) begin_stop(stop_reason::requested, sig, received, graceful);
        } else if (!graceful && graceful_stop_) {
            // As nginx: a fast-stop signal during a graceful stop hurries it.
            log_(received + "; fast stop");
            graceful_stop_ = false;
            drain_until_ms_ = -1;  // a drain delay under way ends here
            stop_workers_now(false);
        } else if (!graceful && reason_ == stop_reason::requested) {
            log_(received + " again; sending SIGKILL");
            table_.kill_all(SIGKILL);
        } else if (!graceful) {
            // The pool was already stopping on its own (a worker failed): this
            // is the operator's first stop signal, not an escalation.
            log_(received + "; already stopping (" + why_ + ")");
        }
    }

    void begin_rolling_reload(int sig) {
        if (stopping_) return;
        const std::string received = signal_name(sig) + " received";
        if (reload_next_ >= 0) {
            log_(received + "; a rolling reload is already under way");
            return;
        }
        log_(received + "; rolling reload of " + std::to_string(table_.size()) + " workers");
        reload_next_ = 0;
        step_reload();
    }

    // Rolling reload, one slot at a time: start the successor while the
    // predecessor still serves; once the successor is ready (mark_ready) the
    // predecessor is stopped gracefully and the next slot follows. Capacity
    // never drops below the pool's size.
    void step_reload() {
        while (reload_next_ >= 0 && !stopping_) {
            if (reload_next_ >= static_cast<int>(table_.size())) {
                log_("rolling reload done");
                reload_next_ = -1;
                return;
            }
            const auto index = static_cast<std::size_t>(reload_next_);
            if (table_[index].restart_pending) {  // the strategy is bringing it back anyway
                ++reload_next_;
                continue;
            }
            table_.retire(index, true);
            ++table_[index].generation;
            std::fflush(nullptr);
            spawn(index);
            return;  // mark_ready() goes on once the successor is up
        }
    }

    void add_worker(int sig) {
        if (stopping_) return;
        const std::string received = signal_name(sig) + " received";
        auto& slots = table_.slots();
        const auto parked = std::find_if(slots.begin(), slots.end(), [](const slot<System>& s) {
            return s.state == worker_state::parked;
        });
        if (parked != slots.end()) {
            const auto index = static_cast<std::size_t>(parked - slots.begin());
            log_(received + "; bringing back worker " + std::to_string(index));
            ++parked->generation;
            std::fflush(nullptr);
            spawn(index);
            return;
        }
        if (static_cast<int>(table_.size()) >= opts_.max_workers) {
            log_(received + "; already at max_workers (" + std::to_string(opts_.max_workers) + ")");
            return;
        }
        table_.add_slot();
        // Before the fork: the new worker finds its own slot in the page.
        publish_pool();
        log_(received + "; adding worker " + std::to_string(table_.size() - 1));
        std::fflush(nullptr);
        spawn(table_.size() - 1);
    }

    void remove_worker(int sig) {
        if (stopping_) return;
        const std::string received = signal_name(sig) + " received";
        if (static_cast<int>(table_.size()) <= opts_.min_workers) {
            log_(received + "; already at min_workers (" + std::to_string(opts_.min_workers) + ")");
            return;
        }
        const std::size_t last = table_.size() - 1;
        log_(received + "; removing worker " + std::to_string(last));
        publish(last, true);  // before its signal, as for a stop
        table_.release_predecessors(last);
        table_.retire(last, false);
        if (table_[last].restart_pending) --restarts_pending_;
        table_.remove_last_slot();
        publish_pool();
        if (reload_next_ >= static_cast<int>(table_.size())) step_reload();
    }

    void park_workers(int sig) {
        if (stopping_) return;
        log_(signal_name(sig) + " received; stopping every worker, the master stays");
        reload_next_ = -1;
        publish_all(true);  // before the signals, as for a stop
        for (std::size_t i = table_.size(); i-- > 0;) {
            table_.release_predecessors(i);
            table_.retire(i, false);
            table_[i].state = worker_state::parked;
            table_[i].restart_pending = false;
        }
        restarts_pending_ = 0;
        publish_all();
    }

    void print_statistics() {
        const std::string table = snapshot().table();
        write_all<System>(opts_.stats_fd, table.data(), table.size());
    }

    // ---- what workers tell the master ----

    void read_startup_records() {
        const bool explicit_ready = opts_.wait_for_ready || opts_.notify_fd >= 0;
        std::int32_t records[64][3];
        for (;;) {
            const ssize_t n = retry_on_eintr(
                [&] { return System::read(records_.read.get(), records, sizeof records); });
            if (n <= 0) break;
            for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof records[0]; ++i) {
                const auto index = static_cast<std::size_t>(records[i][0]);
                // The pid check drops a record from a worker that died meanwhile.
                if (index >= table_.size() || table_[index].process.pid != records[i][1]) continue;
                if (records[i][2] == record_set_up) table_[index].process.set_up = true;
                if (records[i][2] == record_ready ||
                    (!explicit_ready && records[i][2] == record_set_up)) {
                    mark_ready(index);
                }
            }
        }
    }

    // A newline on the worker's notify_fd means ready (s6); end of file
    // before one means it closed the descriptor without ever being ready.
    void read_notifications(slot<System>& s) {
        char buf[256];
        for (;;) {
            const ssize_t n = System::read(s.process.notify_read.get(), buf, sizeof buf);
            if (n > 0 && std::memchr(buf, '\n', static_cast<std::size_t>(n)) == nullptr) continue;
            // EINTR is no verdict: only a newline, end of file or a real error is.
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            table_.close_notify(s.process);
            if (n > 0) mark_ready(static_cast<std::size_t>(s.process.index));
            return;
        }
    }

    // A worker is ready: a rolling reload may retire its predecessor, and
    // once every worker is ready the pool says so (log, systemd, on_ready).
    void mark_ready(std::size_t index) {
        slot<System>& s = table_[index];
        if (s.process.ready || s.process.pid <= 0) return;
        s.process.ready = true;
        publish(index);
        if (s.generation > 0) {
            log_("worker " + std::to_string(index) + " (pid " + std::to_string(s.process.pid) +
                 ") is back, generation " + std::to_string(s.generation));
        }
        if (static_cast<int>(index) == reload_next_) {
            table_.release_predecessors(index);
            ++reload_next_;
            step_reload();
        }
        if (announced_ready_ || stopping_) return;
        const auto& slots = table_.slots();
        if (!std::all_of(slots.begin(), slots.end(),
                         [](const slot<System>& w) { return w.process.ready; })) {
            return;
        }
        announced_ready_ = true;
        publish_pool();
        log_("started " + std::to_string(table_.size()) + " workers");
        systemd_.notify("READY=1\nMAINPID=" + std::to_string(master_pid_) +
                        "\nSTATUS=" + status_line());
        call_ready_hook();
    }

    void reap() {
        // Only a SIGCHLD (or a process overdue after its SIGKILL) makes a
        // look worth it. Standard signals merge, so one bit stands for any
        // number of exits, and a child that ends during the look sets it again
        // for the next pass.
        const bool child_ended =
            (process_signals.pending.fetch_and(~signal_bit(SIGCHLD), std::memory_order_acquire) &
             signal_bit(SIGCHLD)) != 0;
        if (!child_ended && !table_.reap_due()) return;
        // A worker that reported itself ready and died at once: its record
        // may still sit in the pipe when the SIGCHLD made ppoll return EINTR
        // before the records were read, and once the slot is reaped the
        // record's pid no longer matches. Whether it was ready decides its
        // back-off (restart_policy::decide), so take the records first.
        if (child_ended && !stopping_) read_startup_records();
        table_.reap(adopting_, child_ended, [this](std::size_t index, const std::string& what) {
            publish(index);
            if (stopping_) {
                log_(what);
            } else {
                apply_strategy(index, what);
            }
        });
    }

    // A worker ended and nobody asked for it: the strategy decides.
    void apply_strategy(std::size_t index, const std::string& what) {
        if (plan_.strategy == strategy_kind::shutdown_all) {
            begin_stop(stop_reason::worker_failed, 0, what);  // logs "stopping: <what>"
            return;
        }
        slot<System>& dead = table_[index];
        if (dead.restart_pending) {
            log_(what);  // stopped by us to be restarted with its group
            return;
        }
        const std::int64_t now = monotonic_ms();
        const restart_decision decision =
            restarts_.decide(dead.last_exit, dead.started_ms, now, dead.consecutive_failures,
                             dead.last_was_ready);
        switch (decision.what) {
            case restart_decision::verdict::fatal:
                begin_stop(stop_reason::worker_failed, 0, what + " (fatal: not restarted)");
                return;
            case restart_decision::verdict::not_restarted: {
                log_(what + "; not restarted (" +
                     (restarts_.type() == restart_type::temporary ? "temporary" : "transient") +
                     ")");
                // Slots not forked yet (still in start-up) count as left too.
                const auto& slots = table_.slots();
                const bool any_left =
                    std::any_of(slots.begin(), slots.end(), [](const slot<System>& s) {
                        return s.process.pid > 0 || s.restart_pending ||
                               s.state == worker_state::idle;
                    });
                if (!any_left) begin_stop(stop_reason::completed, 0, "every worker has ended");
                return;
            }
            case restart_decision::verdict::give_up:
                begin_stop(stop_reason::worker_failed, 0,
                           what + "; more than " + std::to_string(restarts_.max_restarts()) +
                               " restarts within " + std::to_string(restarts_.period_ms()) +
                               " ms, giving up");
                return;
            case restart_decision::verdict::restart:
                break;
        }
        // The group restarted with it: itself, every worker, or itself and
        // the ones started after it. The others are stopped first.
        std::size_t first = index;
        std::size_t last = index;
        if (plan_.strategy == strategy_kind::one_for_all) {
            first = 0;
            last = table_.size() - 1;
        } else if (plan_.strategy == strategy_kind::rest_for_one) {
            last = table_.size() - 1;
        }
        log_(what + "; restarting worker" +
             (first == last ? " " + std::to_string(index)
                            : "s " + std::to_string(first) + "-" + std::to_string(last)) +
             (decision.delay_ms > 0 ? " in " + std::to_string(decision.delay_ms) + " ms" : ""));
        for (std::size_t j = last + 1; j-- > first;) {
            slot<System>& member = table_[j];
            if (member.restart_pending) continue;  // already on its way back
            member.restart_pending = true;
            ++restarts_pending_;
            member.restart_at_ms = now + decision.delay_ms;
            publish(j, true);
            if (member.process.pid > 0) table_.request_stop(member.process, false);
        }
    }

    // Starts, in index order, the slots whose restart is due, once every slot
    // waiting for a restart is out (a group comes back together, in order).
    void start_due_restarts() {
        if (restarts_pending_ == 0) return;
        auto& slots = table_.slots();
        if (std::any_of(slots.begin(), slots.end(), [](const slot<System>& s) {
                return s.restart_pending && s.process.pid > 0;
            })) {
            return;
        }
        const std::int64_t now = monotonic_ms();
        std::fflush(nullptr);
        for (std::size_t i = 0; i < slots.size() && !stopping_; ++i) {
            slot<System>& s = slots[i];
            if (!s.restart_pending || s.restart_at_ms > now || s.process.pid > 0) continue;
            s.restart_pending = false;
            --restarts_pending_;
            ++s.generation;
            page_.count_restart(i);
            spawn(i);
        }
    }

    // The watchdog: a running worker whose heartbeat is older than the
    // timeout gets SIGABRT, then the usual SIGKILL deadline; its exit goes to
    // the strategy like any other.
    void check_heartbeats() {
        if (!heartbeats_.on() || stopping_) return;
        const std::int64_t now = monotonic_ms();
        for (slot<System>& s : table_.slots()) {
            worker_process<System>& p = s.process;
            if (p.pid <= 0 || p.phase != stop_phase::running) continue;
            const std::int64_t age = now - heartbeats_.last(p.index);
            if (age < opts_.heartbeat_timeout.count()) continue;
            log_("worker " + std::to_string(p.index) + " (pid " + std::to_string(p.pid) +
                 ") sent no heartbeat for " + std::to_string(age) + " ms; sending SIGABRT");
            table_.abort_stale(p, now);
            publish(static_cast<std::size_t>(p.index));
        }
    }

    void keep_systemd_alive() {
        if (systemd_.watchdog_ms() <= 0) return;
        const std::int64_t now = monotonic_ms();
        if (now < next_keepalive_ms_) return;
        systemd_.notify("WATCHDOG=1");
        next_keepalive_ms_ = now + systemd_.watchdog_ms();
    }

    // ---- the stop ----

    void begin_stop(stop_reason reason, int sig, std::string why, bool graceful = false) {
        if (stopping_) return;
        stopping_ = true;
        graceful_stop_ = graceful;
        reason_ = reason;
        stop_signal_ = sig;
        why_ = std::move(why);
        reload_next_ = -1;
        for (slot<System>& s : table_.slots()) s.restart_pending = false;
        restarts_pending_ = 0;
        if (graceful && reason == stop_reason::requested && opts_.drain_delay.count() > 0 &&
            !opts_.no_fork) {
            // Not ready from now on, still serving until the delay is over
            // (end_drain_delay). systemd gets the whole budget: the delay,
            // the graceful stop, then SIGTERM and SIGKILL a timeout apart.
            const std::int64_t delay = opts_.drain_delay.count();
            drain_until_ms_ = monotonic_ms() + delay;
            publish_pool();  // not ready before anyone can read the line below
            log_("stopping gracefully: " + why_ + "; draining for " + std::to_string(delay) +
                 " ms first, still serving");
            const std::int64_t budget_ms = delay + 3 * opts_.shutdown_timeout.count();
            systemd_.notify("STOPPING=1\nSTATUS=draining: " + why_ +
                            "\nEXTEND_TIMEOUT_USEC=" + std::to_string(budget_ms * 1000));
            return;
        }
        log_(std::string(graceful ? "stopping gracefully: " : "stopping: ") + why_);
        systemd_.notify("STOPPING=1\nSTATUS=stopping: " + why_);
        stop_workers_now(graceful);
    }

    // In the page before the workers hear of it: a worker that got the stop
    // signal finds the pool draining or stopping, and itself stopping.
    void stop_workers_now(bool graceful) {
        publish_pool();
        publish_all(true);
        table_.stop_all(graceful);
    }

    // The drain delay is over: the stop goes on as it would have without one.
    void end_drain_delay() {
        drain_until_ms_ = -1;
        log_("drain delay over; stopping the workers gracefully");
        stop_workers_now(true);
    }

    outcome finish() {
        // Before the destroy hooks, which may release what the orphans still use.
        if (adopting_) {
            stop_orphans<System>(program_children_, opts_.shutdown_timeout, log_,
                                 [this](std::int64_t ms) { wait_for_events(ms); });
        }
        outcome result;
        result.hooks_failed = run_destroy_hooks<System>(hooks_, opts_.destroy_timeout, log_);
        result.reason = reason_;
        // "completed" succeeds only if every worker's last exit was a clean one.
        const auto& slots = table_.slots();
        const bool all_clean = std::all_of(slots.begin(), slots.end(), [](const slot<System>& s) {
            return s.last_exit.how == exit_info::kind::exited && s.last_exit.code == 0;
        });
        result.exit_status =
            reason_ == stop_reason::requested || (reason_ == stop_reason::completed && all_clean)
                ? EXIT_SUCCESS
                : EXIT_FAILURE;
        result.signal = stop_signal_;
        result.detail = why_;
        // Logged while SIGPIPE is still the pool's (signals_ puts the
        // program's back after this): with the program's default disposition,
        // a log pipe without a reader would kill it here.
        log_("stopped (" + why_ + "); exit status " + std::to_string(result.exit_status));
        return result;
    }

    // The seed's dont_fork, without its cleanup-in-the-handler: signals still
    // only set bits, the worker sees them through its context, the hooks run
    // after it returns.
    outcome run_inline() {
        slot<System>& s = table_[0];
        // s.process.pid stays 0: the slot is this very process, which nothing
        // may signal.
        s.state = worker_state::running;
        s.started_ms = monotonic_ms();
        log_("running one worker inline (no_fork)");
        // The one worker is up with this process: the pool is as ready as it
        // gets (its readiness is this process's).
        announced_ready_ = true;
        publish(0);
        publish_pool();
        call_ready_hook();
        if (stopping_) return finish();

        worker_context context = context_factory::make(context_init{
            0, 0, master_pid_, opts_.stats_fd, plan_.inline_worker,
            [](void* self) { static_cast<master*>(self)->print_statistics(); }, this,
            // Inline there is no master to report to, and nobody to watch it.
            -1, nullptr, 0, &worker_calls_of<System>(), s.started_ms, signals_.wake_read(),
            signals_.wake_write(), &listeners_.sockets(), page_.page(), nullptr, opts_.name.c_str()});
        // The worker runs with the mapped signals unblocked so they interrupt
        // its blocking calls; its context blocks them again around each check.
        const sigset_t run_mask = signals_.wait_mask();
        System::thread_sigmask(SIG_SETMASK, &run_mask, nullptr);
        const worker_result result = run_worker_code(worker_, context, 0);
        const sigset_t handled = sigset_of(plan_.master_mask | signal_bit(SIGCHLD));
        System::thread_sigmask(SIG_BLOCK, &handled, nullptr);

        s.state = worker_state::exited;
        s.last_exit.how = exit_info::kind::exited;
        s.last_exit.code = result.code;
        publish(0);
        if (!result.failure.empty()) {
            log_(result.failure);
            begin_stop(stop_reason::worker_failed, 0, result.failure);
        } else if (context.stop_requested()) {
            const int sig = context.stop_signal();
            begin_stop(stop_reason::requested, sig, signal_name(sig) + " received");
        } else {
            begin_stop(stop_reason::worker_failed, 0,
                       "worker 0 returned without a stop request (" + s.last_exit.describe() +
                           ")");
        }
        return finish();
    }

    // A throwing ready hook must not leave workers running behind run()'s
    // back: it is a failed start-up like a failed fork.
    void call_ready_hook() {
        if (!ready_hook_) return;
        try {
            ready_hook_();
        } catch (...) {
            begin_stop(stop_reason::startup_failed, 0,
                       "ready hook failed" + describe_thrown(" with a non-standard exception"));
        }
    }

    // ---- the pool's page ----

    pool_phase phase() const noexcept {
        if (stopping_) return graceful_stop_ ? pool_phase::draining : pool_phase::stopping;
        return announced_ready_ ? pool_phase::running : pool_phase::starting;
    }
    // In no_fork the one slot is this very process (its pid stays 0 in the
    // table): running means ready.
    bool slot_ready(const slot<System>& s) const noexcept {
        return opts_.no_fork ? s.state == worker_state::running
                             : s.process.pid > 0 && s.process.ready;
    }
    // Slot `index` into the page as the table has it now: called wherever the
    // master changes a slot's process, state, readiness or last exit. With
    // `stopping`, as it is about to be: a stop is published before its
    // signal is sent, so the worker that gets it finds itself stopping.
    void publish(std::size_t index, bool stopping = false) noexcept {
        const slot<System>& s = table_[index];
        const worker_state state =
            stopping && s.process.pid > 0 ? worker_state::stopping : state_of(s);
        page_.publish_slot(index, opts_.no_fork ? master_pid_ : s.process.pid, state,
                           slot_ready(s), s.generation, s.started_ms, s.last_exit);
    }
    void publish_all(bool stopping = false) noexcept {
        for (std::size_t i = 0; i < table_.size(); ++i) publish(i, stopping);
    }
    void publish_pool() noexcept {
        page_.publish_pool(table_.size(), phase(), stop_signal_, reload_next_ >= 0);
        page_.publish_signals();
    }

    std::string status_line() const {
        const auto& slots = table_.slots();
        const auto ready = std::count_if(slots.begin(), slots.end(), [](const slot<System>& s) {
            return s.process.pid > 0 && s.process.ready;
        });
        return std::to_string(ready) + " of " + std::to_string(table_.size()) + " workers ready";
    }

    const options& opts_;
    const pool_plan& plan_;
    worker_entry worker_;
    const std::vector<destroy_hook>& hooks_;
    const std::function<void()>& ready_hook_;
    // The pool's, open from its constructor until it goes: the workers
    // inherit them, and they outlive every worker and hook of this run.
    listener_set<System>& listeners_;
    logger<System> log_;
    pid_t master_pid_;
    std::int64_t started_ms_;
    // Acquired in this order, released in the reverse one.
    signal_scope<System> signals_;
    // Workers write a start-up record here once their signal set-up is done,
    // so on_ready means "every worker can take signals", not "fork returned".
    pipe_ends records_;
    bool adopting_;  // reaping orphans as a subreaper or PID 1
    // Children the program had before run(): not orphans, never stopped.
    std::vector<pid_t> program_children_;
    subreaper_scope<System> subreaper_;
    systemd_scope<System> systemd_;
    heartbeat_table<System> heartbeats_;
    status_page<System> page_;
    process_table<System> table_;
    spawner<System> spawner_;
    restart_policy restarts_;
    // The stop under way.
    bool stopping_ = false;
    bool graceful_stop_ = false;  // ...is graceful and was not hurried
    std::int64_t drain_until_ms_ = -1;  // the drain delay under way ends then
    stop_reason reason_ = stop_reason::requested;
    int stop_signal_ = 0;
    std::string why_;
    // Rolling reload: the slot being replaced, -1 when none is under way.
    int reload_next_ = -1;
    std::size_t restarts_pending_ = 0;  // slots with restart_pending set
    std::vector<struct pollfd> pollfds_;  // wait_for_events', kept to spare an allocation a pass
    bool announced_ready_ = false;
    std::int64_t next_keepalive_ms_;
};

template <class System>
statistics master<System>::snapshot() const {
    statistics stats;
    const std::int64_t now = monotonic_ms();
    stats.master_pid = master_pid_;
    stats.uptime = std::chrono::milliseconds(now - started_ms_);
    stats.signals_by_number.assign(max_signal + 1, 0);
    for (int sig = 1; sig <= max_signal; ++sig) {
        const std::uint32_t n = process_signals.received[sig].load(std::memory_order_relaxed);
        stats.signals_by_number[static_cast<std::size_t>(sig)] = n;
        stats.signals_received += n;
    }
    for (std::size_t i = 0; i < table_.size(); ++i) {
        const slot<System>& s = table_[i];
        worker_statistics w;
        w.index = static_cast<int>(i);
        w.pid = opts_.no_fork ? master_pid_ : s.process.pid;
        w.state = state_of(s);
        w.uptime =
            std::chrono::milliseconds(s.process.pid > 0 || opts_.no_fork ? now - s.started_ms : 0);
        w.generation = s.generation;
        w.restarts = static_cast<unsigned>(page_.restarts(i));
        if (heartbeats_.on() && s.process.pid > 0) {
            w.heartbeat_age = std::chrono::milliseconds(now - heartbeats_.last(w.index));
        }
        w.last_exit = s.last_exit;
        w.ready = slot_ready(s);
        w.requests = page_.requests(i);
        stats.workers.push_back(w);
    }
    stats.name = opts_.name;
    stats.phase = phase();
    stats.stop_signal = stop_signal_;
    stats.reloading = reload_next_ >= 0;
    stats.min_ready_workers = opts_.min_ready_workers;
    return stats;
}

}  // namespace detail

// ---- the public members' bodies ----

inline worker_context::worker_context(const detail::context_init& init) noexcept
    : index_(init.index),
      generation_(init.generation),
      master_pid_(init.master_pid),
      stats_fd_(init.stats_fd),
      started_ms_(init.started_ms),
      plan_(init.plan),
      report_fd_(init.report_fd),
      beat_(init.beat),
      heartbeat_ms_(init.heartbeat_ms),
      print_table_(init.print_table),
      owner_(init.owner),
      calls_(init.calls),
      inline_wake_read_(init.inline_wake_read),
      inline_wake_write_(init.inline_wake_write),
      listeners_(init.listeners),
      page_(init.page),
      requests_(init.page.slots != nullptr && init.index < init.page.capacity
                    ? &init.page.slots[init.index].requests
                    : nullptr),
      beats_(init.beats),
      name_(init.name) {}

inline const std::vector<listening_socket>& worker_context::listeners() const noexcept {
    static const std::vector<listening_socket> none;
    return listeners_ != nullptr ? *listeners_ : none;
}

inline int worker_context::listener(std::string_view name) const {
    return detail::find_listener(listeners_, name);
}

inline int worker_context::listener(std::size_t index) const {
    return detail::find_listener(listeners_, index);
}

inline void worker_context::heartbeat() noexcept {
    if (beat_ != nullptr) beat_->store(detail::monotonic_ms(), std::memory_order_relaxed);
}

inline void worker_context::ready() noexcept {
    if (reported_ready_ || report_fd_ < 0) return;
    reported_ready_ = true;
    detail::write_record(*calls_, report_fd_, index_, detail::record_ready);
}

inline void worker_context::take_pending_signals() noexcept {
    heartbeat();
    const std::uint64_t taken =
        detail::process_signals.pending.fetch_and(~plan_.handled, std::memory_order_acquire) &
        plan_.handled;
    if (taken == 0) return;
    for (int sig = 1; sig <= detail::max_signal; ++sig) {
        if (!(taken & detail::signal_bit(sig))) continue;
        ++signals_seen_;
        const std::uint64_t bit = detail::signal_bit(sig);
        if ((plan_.stop | plan_.graceful) & bit) {
            if (stop_signal_ == 0) stop_signal_ = sig;
            if (plan_.stop & bit) fast_stop_ = true;
        }
        if (plan_.deliver & bit) delivered_ |= bit;
    }
    if (taken & plan_.stats) {
        if (print_table_ != nullptr) {
            print_table_(owner_);
        } else {
            write_statistics_line();
        }
    }
}

// Formats into a stack buffer and writes once: no allocation, no stdio, so it
// stays correct even if a user calls it where only async-signal-safe code may
// run.
inline void worker_context::write_statistics_line() noexcept {
    if (stats_fd_ < 0) return;
    char line[160];
    const std::size_t cap = sizeof line;
    std::size_t n = 0;
    n = detail::append_text(line, n, cap, "worker ");
    n = detail::append_number(line, n, cap, index_);
    n = detail::append_text(line, n, cap, " pid ");
    n = detail::append_number(line, n, cap, ::getpid());
    n = detail::append_text(line, n, cap, " generation ");
    n = detail::append_number(line, n, cap, generation_);
    n = detail::append_text(line, n, cap, " uptime_ms ");
    n = detail::append_number(line, n, cap, detail::monotonic_ms() - started_ms_);
    n = detail::append_text(line, n, cap, " signals ");
    n = detail::append_number(line, n, cap, static_cast<std::int64_t>(signals_seen_));
    n = detail::append_text(line, n, cap, "\n");
    detail::write_all(*calls_, stats_fd_, line, n);
}

inline wait_status worker_context::wait_readable(int fd, std::chrono::milliseconds timeout,
                                                 wake_on wake) {
    const std::int64_t deadline =
        timeout.count() < 0 ? -1 : detail::monotonic_ms() + timeout.count();
    const sigset_t handled = detail::sigset_of(plan_.handled);
    sigset_t old_mask;
    if (calls_->thread_sigmask(SIG_BLOCK, &handled, &old_mask) != 0) {
        // Cannot happen with valid arguments (pthread_sigmask(3)); if it does,
        // the wait below still works, only without its race-freedom.
        ::pthread_sigmask(SIG_BLOCK, nullptr, &old_mask);
    }
    const sigset_t wait_mask = detail::sigset_without(old_mask, plan_.handled);
    wait_status result = wait_status::timed_out;
    // Set while the signals are blocked, and a stop that came before is
    // seen by the loop's first look: only one that comes while the worker
    // is blocked below takes the handler's exit. Cleared before returning.
    // Never in no_fork mode (print_table_ set): the process is the master.
    const bool exits = wake == wake_on::stop_exits && print_table_ == nullptr;
    if (exits) detail::process_signals.exit_now.store(plan_.stop, std::memory_order_relaxed);
    for (;;) {
        if (stop_requested() && (wake != wake_on::fast_stop || fast_stop_)) {
            result = wait_status::stop_requested;
            break;
        }
        if (delivered_ != 0) {
            result = wait_status::signalled;
            break;
        }
        struct timespec remaining {};
        const struct timespec* limit = nullptr;
        std::int64_t left = -1;
        if (deadline >= 0) {
            left = deadline - detail::monotonic_ms();
            if (left <= 0) break;
        }
        // With the watchdog on, wake at half its timeout to beat again.
        if (heartbeat_ms_ > 0 && (left < 0 || left > heartbeat_ms_ / 2)) left = heartbeat_ms_ / 2;
        if (left >= 0) {
            remaining = detail::to_timespec(left);
            limit = &remaining;
        }
        struct pollfd pfd {};
        pfd.fd = fd;
        pfd.events = POLLIN;
        const int rc = calls_->ppoll(&pfd, fd >= 0 ? 1 : 0, limit, &wait_mask);
        if (rc > 0) {
            result = wait_status::ready;
            break;
        }
        if (rc == 0) continue;  // deadline: re-checked at the top
        if (errno != EINTR) {
            result = wait_status::ready;  // let the caller's own call see the error
            break;
        }
    }
    if (exits) detail::process_signals.exit_now.store(0, std::memory_order_relaxed);
    calls_->thread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return result;
}

// The handler writes a byte to events_pipe_ after it sets the signal's
// pending bit; take_events() empties the pipe before it takes the bits. So a
// signal whose byte was read already has its bit taken here, and one that
// comes after the read leaves a byte behind: the descriptor stays readable
// and the next take finds it. Nothing arrives between a loop's look and its
// wait unnoticed, whatever the loop (no mask juggling as in wait_readable).
inline int worker_context::events_fd() {
    if (events_fd_ >= 0) return events_fd_;
    auto fail = [](const char* what) {
        throw std::system_error(errno, std::generic_category(),
                                std::string("supervise: worker_context::events_fd(): ") + what);
    };
    int write_end = inline_wake_write_;
    if (inline_wake_read_ >= 0) {
        events_pipe_ = inline_wake_read_;
    } else {
        int ends[2];
        if (calls_->pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2");
        events_pipe_ = ends[0];
        write_end = ends[1];
    }
    int watched = events_pipe_;
    if (heartbeat_ms_ > 0) {
        // One descriptor for the loop, readable when either is: an epoll
        // set is itself pollable (epoll(7), "Is the epoll file descriptor
        // itself poll/epoll/selectable?").
        const auto close_made = [&](int timer, int set) {
            const int err = errno;
            if (set >= 0) calls_->close(set);
            if (timer >= 0) calls_->close(timer);
            calls_->close(events_pipe_);
            calls_->close(write_end);
            events_pipe_ = -1;
            errno = err;
        };
        const int timer = calls_->timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer < 0) {
            close_made(-1, -1);
            fail("timerfd_create");
        }
        struct itimerspec period {};
        period.it_interval = detail::to_timespec(std::max<std::int64_t>(1, heartbeat_ms_ / 2));
        period.it_value = period.it_interval;
        const int set = calls_->epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event in {};
        in.events = EPOLLIN;
        if (calls_->timerfd_settime(timer, 0, &period, nullptr) != 0 || set < 0 ||
            calls_->epoll_ctl(set, EPOLL_CTL_ADD, events_pipe_, &in) != 0 ||
            calls_->epoll_ctl(set, EPOLL_CTL_ADD, timer, &in) != 0) {
            close_made(timer, set);
            fail("the watchdog's timer");
        }
        events_timer_ = timer;
        watched = set;
    }
    if (inline_wake_read_ < 0) detail::process_signals.wake_fd.store(write_end);
    // A signal taken before the store left its bit but no byte: one byte
    // now, so the loop's first look takes what came before (a stop included).
    static const char byte = 0;
    if (calls_->write(write_end, &byte, 1) < 0) {
        // EAGAIN: the pipe is full, so readable already.
    }
    events_fd_ = watched;
    return events_fd_;
}

inline worker_events worker_context::take_events() noexcept {
    worker_events events;
    if (events_pipe_ >= 0) {
        char drain[64];
        while (detail::retry_on_eintr([&] { return calls_->read(events_pipe_, drain, sizeof drain); }) >
               0) {
        }
    }
    if (events_timer_ >= 0) {
        std::uint64_t expirations = 0;
        if (detail::retry_on_eintr([&] {
                return calls_->read(events_timer_, &expirations, sizeof expirations);
            }) == static_cast<ssize_t>(sizeof expirations)) {
            events.heartbeat_due = true;
        }
    }
    take_pending_signals();
    events.stop = stop_signal_ != 0;
    events.graceful = events.stop && !fast_stop_;
    events.signals = delivered_;
    delivered_ = 0;
    return events;
}

inline statistics worker_context::pool_statistics() const {
    statistics stats;
    stats.name = name_;
    stats.master_pid = master_pid_;
    // In no_fork this process is the master; a forked worker whose parent
    // is no longer the master was orphaned (parent_death_signal 0).
    stats.master_running = print_table_ != nullptr || calls_->getppid() == master_pid_;
    stats.signals_by_number.assign(detail::max_signal + 1, 0);
    if (page_.header == nullptr) return stats;
    const detail::shared_header& h = *page_.header;
    std::int64_t started_ms = 0;
    std::uint32_t slots = 0;
    detail::read_shared_record(h.sequence, [&] {
        started_ms = h.started_ms.load(std::memory_order_acquire);
        slots = h.slots.load(std::memory_order_acquire);
        stats.phase = static_cast<pool_phase>(h.phase.load(std::memory_order_acquire));
        stats.stop_signal = h.stop_signal.load(std::memory_order_acquire);
        stats.reloading = h.reloading.load(std::memory_order_acquire) != 0;
        stats.min_ready_workers = h.min_ready_workers.load(std::memory_order_acquire);
    });
    const std::int64_t now = detail::monotonic_ms();
    stats.uptime = std::chrono::milliseconds(now - started_ms);
    for (int sig = 1; sig <= detail::max_signal; ++sig) {
        const std::uint32_t n = h.signals[sig].load(std::memory_order_acquire);
        stats.signals_by_number[static_cast<std::size_t>(sig)] = n;
        stats.signals_received += n;
    }
    slots = std::min(slots, static_cast<std::uint32_t>(page_.capacity));
    stats.workers.reserve(slots);
    for (std::uint32_t i = 0; i < slots; ++i) {
        const detail::shared_slot& s = page_.slots[i];
        worker_statistics w;
        w.index = static_cast<int>(i);
        std::uint32_t state = 0;
        std::int64_t slot_started_ms = 0;
        std::uint64_t last_exit = 0;
        detail::read_shared_record(s.sequence, [&] {
            w.pid = s.pid.load(std::memory_order_acquire);
            state = s.state.load(std::memory_order_acquire);
            w.generation = s.generation.load(std::memory_order_acquire);
            slot_started_ms = s.started_ms.load(std::memory_order_acquire);
            last_exit = s.last_exit.load(std::memory_order_acquire);
        });
        w.state = static_cast<worker_state>(state & 0xff);
        w.ready = (state & detail::ready_bit) != 0;
        w.last_exit = detail::unpack_exit(last_exit);
        if (w.pid > 0) w.uptime = std::chrono::milliseconds(now - slot_started_ms);
        w.restarts = static_cast<unsigned>(s.restarts.load(std::memory_order_acquire));
        w.requests = s.requests.load(std::memory_order_relaxed);
        if (beats_ != nullptr && w.pid > 0) {
            w.heartbeat_age =
                std::chrono::milliseconds(now - beats_[i].load(std::memory_order_relaxed));
        }
        stats.workers.push_back(w);
    }
    return stats;
}

// ---- exit_info, statistics, names ----

inline std::string signal_name(int sig) {
    static const struct {
        int number;
        const char* name;
    } names[] = {
        {SIGHUP, "SIGHUP"},       {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
        {SIGILL, "SIGILL"},       {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
        {SIGBUS, "SIGBUS"},       {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
        {SIGUSR1, "SIGUSR1"},     {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"},     {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
        {SIGCHLD, "SIGCHLD"},     {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
        {SIGTSTP, "SIGTSTP"},     {SIGTTIN, "SIGTTIN"}, {SIGTTOU, "SIGTTOU"},
        {SIGURG, "SIGURG"},       {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
        {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"},
        {SIGIO, "SIGIO"},         {SIGPWR, "SIGPWR"},   {SIGSYS, "SIGSYS"},
    };
    for (const auto& entry : names) {
        if (entry.number == sig) return entry.name;
    }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
    return "signal " + std::to_string(sig);
}

inline std::string exit_info::describe() const {
    switch (how) {
        case kind::exited:
            return "exited with status " + std::to_string(code);
        case kind::killed:
            return "killed by signal " + std::to_string(signal) + " (" + signal_name(signal) + ")" +
                   (core_dumped ? ", core dumped" : "");
        case kind::lost:
            return "reaped elsewhere (status unknown)";
        case kind::running:
            break;
    }
    return "running";
}

inline const char* to_string(worker_state state) noexcept {
    switch (state) {
        case worker_state::idle:
            return "idle";
        case worker_state::running:
            return "running";
        case worker_state::stopping:
            return "stopping";
        case worker_state::parked:
            return "parked";
        case worker_state::exited:
            return "exited";
    }
    return "?";
}

inline const char* to_string(pool_phase phase) noexcept {
    switch (phase) {
        case pool_phase::starting:
            return "starting";
        case pool_phase::running:
            return "running";
        case pool_phase::draining:
            return "draining";
        case pool_phase::stopping:
            return "stopping";
    }
    return "?";
}

inline int statistics::ready_workers() const noexcept {
    return static_cast<int>(std::count_if(workers.begin(), workers.end(), [](const worker_statistics& w) {
        return w.state == worker_state::running && w.ready;
    }));
}

inline bool statistics::ready() const noexcept {
    if (!master_running || phase != pool_phase::running) return false;
    const int wanted = min_ready_workers > 0 ? min_ready_workers : static_cast<int>(workers.size());
    return ready_workers() >= wanted;
}

inline bool statistics::live() const noexcept { return master_running; }

inline std::string statistics::json() const {
    // Every string here is a signal or state name or our own message: no
    // character needs escaping but the two JSON requires.
    auto quoted = [](const std::string& text) {
        std::string out = "\"";
        for (char c : text) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        return out + "\"";
    };
    std::string out = "{\"master_pid\":" + std::to_string(master_pid) +
                      ",\"uptime_ms\":" + std::to_string(uptime.count()) +
                      ",\"signals_received\":" + std::to_string(signals_received) +
                      ",\"signals\":{";
    bool first = true;
    for (std::size_t sig = 1; sig < signals_by_number.size(); ++sig) {
        if (signals_by_number[sig] == 0) continue;
        out += (first ? "" : ",") + quoted(signal_name(static_cast<int>(sig))) + ":" +
               std::to_string(signals_by_number[sig]);
        first = false;
    }
    out += "},\"workers\":[";
    for (std::size_t i = 0; i < workers.size(); ++i) {
        const worker_statistics& w = workers[i];
        out += (i == 0 ? "{" : ",{");
        out += "\"index\":" + std::to_string(w.index) +
               ",\"pid\":" + (w.pid > 0 ? std::to_string(w.pid) : std::string("null")) +
               ",\"state\":" + quoted(to_string(w.state)) +
               ",\"uptime_ms\":" + std::to_string(w.uptime.count()) +
               ",\"generation\":" + std::to_string(w.generation) +
               ",\"restarts\":" + std::to_string(w.restarts) + ",\"heartbeat_age_ms\":" +
               (w.heartbeat_age.count() < 0 ? std::string("null")
                                            : std::to_string(w.heartbeat_age.count())) +
               ",\"last_exit\":" +
               (w.last_exit.how == exit_info::kind::running ? std::string("null")
                                                            : quoted(w.last_exit.describe())) +
               ",\"ready\":" + (w.ready ? "true" : "false") +
               ",\"requests\":" + std::to_string(w.requests) + "}";
    }
    return out + "]}";
}

inline std::string statistics::openmetrics() const {
    std::string out;
    out.reserve(4096 + workers.size() * 512);
    // A family's metadata; its samples follow at once (OpenMetrics keeps a
    // family's lines together).
    const auto family = [&out](const char* metric, const char* type, const char* help,
                               const char* unit = nullptr) {
        out.append("# TYPE ").append(metric).append(" ").append(type).append("\n");
        if (unit != nullptr) out.append("# UNIT ").append(metric).append(" ").append(unit).append("\n");
        out.append("# HELP ").append(metric).append(" ").append(detail::openmetrics_escaped(help));
        out.append("\n");
    };
    const auto label = [](const char* key, std::string_view value) {
        return std::string(key) + "=\"" + detail::openmetrics_escaped(value) + "\"";
    };
    const auto sample = [&out](const char* metric, const std::string& labels,
                               const std::string& value) {
        out.append(metric);
        if (!labels.empty()) out.append("{").append(labels).append("}");
        out.append(" ").append(value).append("\n");
    };
    const auto flag = [](bool on) { return std::string(on ? "1" : "0"); };
    const auto worker_label = [&](const worker_statistics& w) {
        return label("worker", std::to_string(w.index));
    };

    family("supervise_pool", "info", "The pool: its name (options::name), version, master pid.");
    sample("supervise_pool_info",
           label("name", name) + "," + label("version", SUPERVISE_VERSION_STR) + "," +
               label("master_pid", std::to_string(master_pid)),
           "1");
    family("supervise_uptime_seconds", "gauge", "Time since the master started.", "seconds");
    sample("supervise_uptime_seconds", "", detail::seconds_text(uptime));
    family("supervise_pool_phase", "stateset",
           "Where the pool stands: starting, running, draining (graceful stop), stopping.");
    for (const pool_phase p : {pool_phase::starting, pool_phase::running, pool_phase::draining,
                               pool_phase::stopping}) {
        sample("supervise_pool_phase", label("supervise_pool_phase", to_string(p)), flag(p == phase));
    }
    family("supervise_ready", "gauge",
           "1 while the pool is ready: running, no stop under way, at least "
           "supervise_min_ready_workers workers ready (docs/metrics.md).");
    sample("supervise_ready", "", flag(ready()));
    family("supervise_live", "gauge", "1 while the master runs.");
    sample("supervise_live", "", flag(live()));
    family("supervise_reloading", "gauge", "1 while a rolling reload is under way.");
    sample("supervise_reloading", "", flag(reloading));
    family("supervise_min_ready_workers", "gauge",
           "Ready workers the pool needs to be ready (options::min_ready_workers, 0 read as "
           "every worker).");
    sample("supervise_min_ready_workers", "",
           std::to_string(min_ready_workers > 0 ? static_cast<std::size_t>(min_ready_workers)
                                                : workers.size()));
    family("supervise_workers", "gauge", "Workers of the pool by state.");
    for (const worker_state s : {worker_state::idle, worker_state::running, worker_state::stopping,
                                 worker_state::exited, worker_state::parked}) {
        const auto n = std::count_if(workers.begin(), workers.end(),
                                     [s](const worker_statistics& w) { return w.state == s; });
        sample("supervise_workers", label("state", to_string(s)), std::to_string(n));
    }
    family("supervise_workers_ready", "gauge", "Workers running, not asked to stop, and ready.");
    sample("supervise_workers_ready", "", std::to_string(ready_workers()));
    family("supervise_signals_received", "counter",
           "Signals the master received, by name (standard signals that arrive together are "
           "delivered once).");
    for (std::size_t sig = 1; sig < signals_by_number.size(); ++sig) {
        if (signals_by_number[sig] == 0) continue;
        sample("supervise_signals_received_total",
               label("signal", signal_name(static_cast<int>(sig))),
               std::to_string(signals_by_number[sig]));
    }
    family("supervise_restarts", "counter", "Restarts of each worker slot by its strategy.");
    for (const worker_statistics& w : workers) {
        sample("supervise_restarts_total", worker_label(w), std::to_string(w.restarts));
    }
    family("supervise_requests", "counter",
           "Requests handled by each worker slot, every generation, as its workers report them "
           "(worker_context::request_done).");
    for (const worker_statistics& w : workers) {
        sample("supervise_requests_total", worker_label(w), std::to_string(w.requests));
    }
    family("supervise_worker_pid", "gauge", "Process id of each worker, 0 without a process.");
    for (const worker_statistics& w : workers) {
        sample("supervise_worker_pid", worker_label(w), std::to_string(w.pid > 0 ? w.pid : 0));
    }
    family("supervise_worker_ready", "gauge", "1 while the worker is ready.");
    for (const worker_statistics& w : workers) {
        sample("supervise_worker_ready", worker_label(w),
               flag(w.ready && w.state == worker_state::running));
    }
    family("supervise_worker_generation", "gauge",
           "Times the slot was started before its current process.");
    for (const worker_statistics& w : workers) {
        sample("supervise_worker_generation", worker_label(w), std::to_string(w.generation));
    }
    family("supervise_worker_uptime_seconds", "gauge",
           "Time since the worker's process started, 0 without a process.", "seconds");
    for (const worker_statistics& w : workers) {
        sample("supervise_worker_uptime_seconds", worker_label(w), detail::seconds_text(w.uptime));
    }
    if (std::any_of(workers.begin(), workers.end(),
                    [](const worker_statistics& w) { return w.heartbeat_age.count() >= 0; })) {
        family("supervise_worker_heartbeat_age_seconds", "gauge",
               "Time since the worker's last heartbeat (options::heartbeat_timeout).", "seconds");
        for (const worker_statistics& w : workers) {
            if (w.heartbeat_age.count() < 0) continue;
            sample("supervise_worker_heartbeat_age_seconds", worker_label(w),
                   detail::seconds_text(w.heartbeat_age));
        }
    }
    family("supervise_worker_last_exit", "info",
           "How the slot's last process ended: exited with a status, killed by a signal, or "
           "lost (reaped elsewhere).");
    for (const worker_statistics& w : workers) {
        const exit_info& e = w.last_exit;
        std::string labels = worker_label(w);
        switch (e.how) {
            case exit_info::kind::running:
                continue;
            case exit_info::kind::exited:
                labels += "," + label("how", "exited") + "," + label("status", std::to_string(e.code));
                break;
            case exit_info::kind::killed:
                labels += "," + label("how", "killed") + "," + label("signal", signal_name(e.signal)) +
                          "," + label("core_dumped", e.core_dumped ? "true" : "false");
                break;
            case exit_info::kind::lost:
                labels += "," + label("how", "lost");
                break;
        }
        sample("supervise_worker_last_exit_info", labels, "1");
    }
    out += "# EOF\n";
    return out;
}

inline std::string statistics::table() const {
    std::string out = "statistics: master pid " + std::to_string(master_pid) + ", uptime " +
                      detail::format_ms(uptime) + ", signals received " +
                      std::to_string(signals_received);
    bool first = true;
    for (std::size_t sig = 1; sig < signals_by_number.size(); ++sig) {
        if (signals_by_number[sig] == 0) continue;
        out += first ? " (" : ", ";
        out += signal_name(static_cast<int>(sig)) + " " + std::to_string(signals_by_number[sig]);
        first = false;
    }
    out += first ? "\n" : ")\n";
    char row[160];
    std::snprintf(row, sizeof row, "  %-6s %-8s %-9s %-12s %-9s %-10s %s\n", "worker", "pid",
                  "state", "uptime", "restarts", "heartbeat", "last exit");
    out += row;
    for (const worker_statistics& w : workers) {
        const std::string last =
            w.last_exit.how == exit_info::kind::running ? "-" : w.last_exit.describe();
        // A slot without a process shows "-", never 0: `kill 0` from a script
        // reading the table would signal the script's own process group.
        const std::string pid = w.pid > 0 ? std::to_string(w.pid) : "-";
        const std::string beat =
            w.heartbeat_age.count() < 0 ? "-" : std::to_string(w.heartbeat_age.count()) + " ms";
        std::snprintf(row, sizeof row, "  %-6d %-8s %-9s %-12s %-9u %-10s %s\n", w.index,
                      pid.c_str(), to_string(w.state), detail::format_ms(w.uptime).c_str(),
                      w.restarts, beat.c_str(), last.c_str());
        out += row;
    }
    return out;
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::pool(Worker worker, options opts)
    : worker_(std::move(worker)), opts_(std::move(opts)) {
    detail::check_options(opts_, &System::fcntl);
    credentials_ = detail::resolve_credentials(opts_);
    if (credentials_.no_new_privileges) {
        credentials_.last_capability = detail::last_capability<System>();
    }
    if (!std::is_same_v<Strategy, shutdown_all> && opts_.no_fork) {
        throw std::invalid_argument(
            "supervise: no_fork runs the worker in the master itself, which cannot restart it: "
            "use the shutdown_all strategy");
    }
    last_run_.signals_by_number.assign(detail::max_signal + 1, 0);
    last_run_.name = opts_.name;
    last_run_.min_ready_workers = opts_.min_ready_workers;
    // Last: every other option is known good before a socket exists.
    listeners_.open(opts_, detail::logger<System>(opts_));
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
const std::vector<listening_socket>&
pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::listeners() const noexcept {
    return listeners_.sockets();
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
int pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::listener(
    std::string_view name) const {
    return detail::find_listener(&listeners_.sockets(), name);
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
int pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::listener(
    std::size_t index) const {
    return detail::find_listener(&listeners_.sockets(), index);
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
outcome pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::run() {
    if (!opts_.allow_threads) {
        const int threads = detail::thread_count<System>();
        if (threads > 1) {
            throw std::logic_error(
                "supervise: the process runs " + std::to_string(threads) +
                " threads; fork() copies only the calling one, so locks held by the others stay "
                "locked in every worker. Start the pool before creating threads, or set "
                "options::allow_threads if the worker code is fork-safe");
        }
    }
    detail::running_guard guard;
    // The template arguments, turned into values once.
    static constexpr detail::pool_plan plan =
        detail::plan_of<MasterSignals, WorkerSignals, Strategy>();
    detail::master<System> master(opts_, plan, credentials_,
                                  detail::worker_entry{&worker_, &detail::call_worker<Worker>},
                                  hooks_, ready_hook_, listeners_);
    struct forget_master {
        const detail::master<System>*& running;
        ~forget_master() { running = nullptr; }
    } forget{running_};
    running_ = &master;
    outcome result = master.run();
    last_run_ = master.snapshot();
    return result;
}

template <class Worker, class MasterSignals, class WorkerSignals, class Strategy, class System>
statistics pool<Worker, MasterSignals, WorkerSignals, Strategy, System>::snapshot() const {
    return running_ != nullptr ? running_->snapshot() : last_run_;
}

}  // namespace SUPERVISE_ABI_NAMESPACE
}  // namespace supervise

#endif  // SUPERVISE_HPP
