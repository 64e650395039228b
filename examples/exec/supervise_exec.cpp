// supervise-exec: run N copies of any command under supervise.hpp.
//
//   supervise-exec [OPTIONS] -- COMMAND [ARGS...]
//
// Each worker of the pool is one copy of COMMAND. The pool forks as it does for
// C++ workers; the worker, instead of running C++ code, undoes what the fork
// handed down and a freshly started program must not see (the pool's signal
// dispositions and mask, the master's descriptors, the master's systemd
// variables) and execs the command. Restarts, stops, readiness, statistics,
// the privilege drop and the duties of PID 1 are the library's, unchanged;
// forwarding signals to the copies, as tini does for its child, is the
// library's forward<SIG> action in maps of this program's own (below).
//
// Try it:
//   bazel run //examples/exec:supervise-exec -- --workers 3 -- sh -c 'exec sleep 1000'
//   kill -USR1 <master pid>   # statistics table on stderr
//   kill -TERM <master pid>   # every copy stopped, exit status 0
//
//   bazel run //examples/exec:supervise-exec -- -- sh -c 'echo $SUPERVISE_WORKER_INDEX'
//   # the copy exits on its own and is restarted; after more than 5 restarts
//   # within 10 s supervise-exec gives up, exit status 1
//
// docs/supervise-exec.md describes every option and the exit statuses.

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <type_traits>
#include <vector>

#include "examples/common/pool_choice.hpp"

extern char** environ;

namespace {

using pool_choice::usage_error;

constexpr const char usage[] = R"(Usage: supervise-exec [OPTIONS] -- COMMAND [ARGS...]
Runs N copies of COMMAND, restarts a copy that ends, and stops them all when
asked to. Each copy finds SUPERVISE_WORKER_INDEX (0 to N-1) and
SUPERVISE_WORKER_GENERATION (how often its slot was started before) in its
environment. The '--' may be left out when COMMAND does not start with '-'.

Options (also accepted as --option=value):
  --workers N            copies of COMMAND, 1 to 4096 (default 1)
  --strategy NAME        what a copy that ends on its own causes (default
                         one_for_one):
                           one_for_one   that copy is restarted
                           one_for_all   the others are stopped, all restart
                           rest_for_one  it and the copies after it restart
                           shutdown_all  everything stops (the library's default)
  --max-restarts N       more than N restarts within --restart-period stop
                         everything instead of looping, 0 to 1000000 (default 5)
  --restart-period MS    1 to 3600000 (default 10000)
  --backoff-max MS       a copy that keeps failing is restarted at once, then
                         after 100 ms, 200 ms, 400 ms... at most MS apart,
                         0 to 3600000 (default 5000); the same as
                         --restart-delay-max
  --restart-delay MS     the first of those waits, 0 to 3600000 (default 100)
  --min-uptime MS        a copy that was ready and ran for MS is restarted at
                         once, whatever came before; 0 to 3600000 (default 1000)
  --shutdown-timeout MS  time a copy gets between SIGTERM and SIGKILL, 1 to
                         3600000 (default 5000)
  --drain-delay MS       a graceful stop first lets the copies serve on for MS
                         while the pool reports not ready (STOPPING=1), then
                         stops them gracefully; 0 to 3600000 (default 0)
  --preset seed|nginx    which signals do what (default seed; see below)
  --ready-fd N           a copy is ready once it writes a newline to descriptor
                         N (s6's notification-fd), 3 to 1023 (default: ready
                         as soon as its process is up)
  --pid1                 adopt and reap orphaned descendants, as a container's
                         PID 1 must (on by itself when running as PID 1); on
                         exit, stop the ones still running (SIGTERM, SIGKILL
                         after --shutdown-timeout) and reap them; implies
                         --forward-signals
  --forward-signals      send HUP, QUIT, USR1, USR2 and WINCH on to every copy
                         unless the preset uses them itself (see below); on by
                         itself with --pid1 and when running as PID 1
  --user NAME            copies run as this user (name or uid); needs root.
                         Such copies cannot gain privileges back through exec:
                         setuid and setgid programs and file capabilities give
                         them nothing (no_new_privs, empty bounding set)
  --allow-new-privileges with --user: copies keep that way, for commands that
                         run setuid helpers (sudo, ping, ...)
  --listen NAME=ADDRESS  bind a listening socket before any copy starts and
                         hand it to every copy by systemd's protocol (below);
                         repeatable. ADDRESS is HOST:PORT (an IPv4 address or
                         *), [IPV6]:PORT, unix:/path or unix:@name
  --help                 print this help and exit

The default strategy is one_for_one, not the library's shutdown_all: a
supervisor of commands is there to keep them running, and the restart limit
stops a command that fails on every start.

Exit status: 0 after a stop asked for by a signal; 2 for a bad command line or
a COMMAND that cannot be executed (nothing is started); when a copy's end stops
everything (shutdown_all, the restart limit, exit status 125), that copy's exit
status, 128+N if signal N killed it, 1 if it exited 0; 1 after any other
failure. A copy that cannot be executed at run time exits 127; one that exits
125 is not restarted (s6's "permanent failure").

Signals with --preset seed: SIGTERM, SIGINT or SIGPIPE stop every copy
(SIGTERM, then SIGKILL after --shutdown-timeout), SIGUSR1 prints a statistics
table on stderr, SIGHUP and SIGUSR2 are ignored, SIGQUIT ends supervise-exec
(its default action) and SIGWINCH does nothing. With forwarding, SIGHUP,
SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are sent on to every copy instead (no
signal prints the statistics table then).
With --preset nginx: SIGTERM or SIGINT stop every copy, SIGQUIT gracefully
(each copy gets SIGQUIT, then SIGTERM after --shutdown-timeout), SIGHUP
replaces the copies one at a time (the new one ready before the old one gets
SIGQUIT), SIGUSR1 is sent on to every copy, SIGTTIN adds a copy and SIGTTOU
removes one, SIGWINCH stops every copy while supervise-exec stays (SIGHUP
brings them back), SIGUSR2 prints the statistics table. With forwarding,
SIGWINCH is sent on to every copy instead. A command that does not handle
SIGQUIT or SIGUSR1 dies of them.
A forwarded signal goes to each copy's own process, not to its children.

Under systemd (NOTIFY_SOCKET set) supervise-exec itself sends READY=1 once
every copy is ready, STOPPING=1, and WATCHDOG=1 when asked to; the copies do
not see NOTIFY_SOCKET, WATCHDOG_USEC or WATCHDOG_PID.

Listening sockets: those of --listen, or, under socket activation (LISTEN_PID
is supervise-exec's), the ones systemd passed (then every --listen NAME must
be among them). Every copy gets them as a socket-activated program does from
systemd: at descriptors 3, 4, ... in blocking mode, with LISTEN_FDS (their
number), LISTEN_PID (the copy's own pid) and LISTEN_FDNAMES (their names,
joined by ':'). supervise-exec keeps them open until it exits.
)";

constexpr const char program[] = "supervise-exec";

// One write(2) per line: the master and every copy share stderr.
void log(const std::string& message) {
    const std::string line =
        std::string(program) + "[" + std::to_string(::getpid()) + "]: " + message + "\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
        // Nowhere left to report a failing stderr.
    }
}

// Exit status 2 and one line on stderr, like other command-line tools.
int usage_failure(const std::string& message) {
    const std::string line =
        std::string(program) + ": " + message + "; see '" + program + " --help'\n";
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
    }
    return 2;
}

// ============================================================================
// Command line
// ============================================================================

struct config {
    pool_choice::pool_flags pool;
    std::optional<std::chrono::milliseconds> backoff_max;
    int ready_fd = -1;
    bool pid1 = false;
    bool forward_signals = false;  // --forward-signals itself; see forwards_signals()
    bool allow_new_privileges = false;
    bool help = false;
    std::vector<supervise::listener_spec> listeners;  // --listen, in order
    std::vector<std::string> command;                 // COMMAND [ARGS...]
};

config parse_command_line(int argc, char** argv) {
    config cfg;
    // One copy unless asked for more: a command is usually a whole service.
    cfg.pool.workers = 1;
    cfg.pool.strategy = pool_choice::strategy_kind::one_for_one;
    pool_choice::arguments args(argc, argv);
    while (args.next()) {
        const std::string_view arg = args.arg();
        if (arg == "--" || arg.empty() || arg.front() != '-') {
            cfg.command.assign(argv + args.index() + (arg == "--" ? 1 : 0), argv + argc);
            break;
        }
        const std::string_view flag = args.flag();
        if (pool_choice::take_pool_flag(args, cfg.pool)) continue;
        if (flag == "--backoff-max") {
            cfg.backoff_max = pool_choice::parse_duration(flag, args.value(), 0);
        } else if (flag == "--ready-fd") {
            // 0, 1 and 2 are the command's own; the library accepts 3..1023.
            cfg.ready_fd = static_cast<int>(pool_choice::parse_number(flag, args.value(), 3, 1023));
        } else if (flag == "--pid1") {
            args.no_value();
            cfg.pid1 = true;
        } else if (flag == "--forward-signals") {
            args.no_value();
            cfg.forward_signals = true;
        } else if (flag == "--allow-new-privileges") {
            args.no_value();
            cfg.allow_new_privileges = true;
        } else if (flag == "--listen") {
            // The library checks the name and the address (exit status 2).
            const std::string_view value = args.value();
            const std::size_t eq = value.find('=');
            if (eq == std::string_view::npos || eq == 0) {
                throw usage_error("--listen takes NAME=ADDRESS (got '" + std::string(value) + "')");
            }
            supervise::listener_spec listener;
            listener.name = std::string(value.substr(0, eq));
            listener.address = std::string(value.substr(eq + 1));
            cfg.listeners.push_back(std::move(listener));
        } else if (flag == "--help") {
            args.no_value();
            cfg.help = true;
        } else {
            args.unknown();
        }
    }
    if (cfg.help) return cfg;
    pool_choice::check_pool_flags(cfg.pool);
    if (cfg.backoff_max && cfg.pool.restart_delay_max) {
        throw usage_error("--backoff-max and --restart-delay-max are the same setting: give one");
    }
    if (cfg.backoff_max && !cfg.pool.restarting()) {
        throw usage_error(
            "--backoff-max applies to a restarting --strategy (one_for_one, one_for_all or "
            "rest_for_one)");
    }
    if (cfg.allow_new_privileges && cfg.pool.user.empty()) {
        throw usage_error(
            "--allow-new-privileges applies with --user (copies that keep supervise-exec's user "
            "drop no privileges)");
    }
    if (cfg.command.empty()) throw usage_error("no command given: expected -- COMMAND [ARGS...]");
    return cfg;
}

supervise::options pool_options(const config& cfg) {
    supervise::options opts;
    opts.name = program;  // the library's lines read "supervise-exec[pid]: ..."
    pool_choice::apply(cfg.pool, opts);
    if (cfg.backoff_max) {
        opts.restart_delay_max = *cfg.backoff_max;
        opts.restart_delay = std::min(opts.restart_delay, *cfg.backoff_max);
    }
    opts.notify_fd = cfg.ready_fd;
    opts.subreaper = cfg.pid1;
    opts.allow_new_privileges = cfg.allow_new_privileges;
    opts.listeners = cfg.listeners;
    return opts;
}

// ============================================================================
// Signals: the presets, and their forwarding twins
// ============================================================================

// Forwarding is tini's duty of passing signals on to the command: on with
// --forward-signals, and in the PID 1 role (--pid1, or being PID 1), where
// nothing else would pass them on. Off, the presets apply as they are.
bool forwards_signals(const config& cfg) {
    return cfg.forward_signals || cfg.pid1 || ::getpid() == 1;
}

// The forwarding twins of the presets. Each of the signals an operator or a
// container runtime sends to ask something of a program (HUP, QUIT, USR1,
// USR2, WINCH) that a preset does not give a meaning of its own goes, as it
// came, to every copy: forward<SIG> sends it to each copy's process (not to
// the copy's children). The other rows are the preset's. docs/supervise-exec.md
// shows these maps, and tests/docs/signal_tables_test compares the two.
namespace forwarding {

using supervise::forward;
using supervise::on;
using supervise::signal_map;

// The seed's stop signals stay; USR1 no longer prints the statistics table,
// HUP and USR2 are no longer ignored, QUIT no longer ends supervise-exec by its
// default action, and WINCH is caught.
using seed_master = signal_map<on<SIGINT, supervise::terminate>,   //
                               on<SIGPIPE, supervise::terminate>,  //
                               on<SIGTERM, supervise::terminate>,  //
                               on<SIGHUP, forward<SIGHUP>>,        //
                               on<SIGQUIT, forward<SIGQUIT>>,      //
                               on<SIGUSR1, forward<SIGUSR1>>,      //
                               on<SIGUSR2, forward<SIGUSR2>>,      //
                               on<SIGWINCH, forward<SIGWINCH>>>;

// nginx's meanings stay (QUIT graceful stop, HUP rolling reload, USR1 already
// forwarded, USR2 statistics) except WINCH's: nginx's "stop the workers, keep
// the master" would end every copy with SIGQUIT whenever a terminal changes
// size, which is what SIGWINCH means to every other program.
using nginx_master = signal_map<on<SIGTERM, supervise::terminate>,      //
                                on<SIGINT, supervise::terminate>,       //
                                on<SIGQUIT, supervise::graceful_stop>,  //
                                on<SIGHUP, supervise::rolling_reload>,  //
                                on<SIGUSR1, forward<SIGUSR1>>,          //
                                on<SIGTTIN, supervise::scale_up>,       //
                                on<SIGTTOU, supervise::scale_down>,     //
                                on<SIGWINCH, forward<SIGWINCH>>,        //
                                on<SIGUSR2, supervise::print_stats>,    //
                                on<SIGPIPE, supervise::ignore>>;

// The copies' side, between fork and exec: the preset's worker map without
// the forwarded signals. Left out of it, they keep their default action there
// too, so a signal forwarded before COMMAND runs does what it would do to
// COMMAND before it set up its own handling (HUP, QUIT, USR1 and USR2 end the
// copy, WINCH is discarded), instead of being ignored or taken by the pool's
// handler and lost.
using seed_worker = signal_map<on<SIGINT, supervise::terminate>,   //
                               on<SIGTERM, supervise::terminate>,  //
                               on<SIGPIPE, supervise::ignore>>;
using nginx_worker = signal_map<on<SIGTERM, supervise::terminate>,      //
                                on<SIGINT, supervise::terminate>,       //
                                on<SIGQUIT, supervise::graceful_stop>,  //
                                on<SIGHUP, supervise::ignore>,          //
                                on<SIGPIPE, supervise::ignore>>;

// The signal a row forwards, or 0.
template <class Action>
struct forwarded : std::integral_constant<int, 0> {};
template <int Signal>
struct forwarded<forward<Signal>> : std::integral_constant<int, Signal> {};

template <class Map>
struct rows;
template <class... Rows>
struct rows<signal_map<Rows...>> {
    // The signals the map forwards.
    static constexpr std::uint64_t forwarded_mask =
        ((forwarded<typename Rows::action>::value != 0 ? std::uint64_t{1} << (Rows::signal - 1)
                                                       : 0) |
         ... | 0);
    // Every forward<SIG> row sends on the signal it is the row of.
    static constexpr bool as_received =
        ((forwarded<typename Rows::action>::value == 0 ||
          forwarded<typename Rows::action>::value == Rows::signal) &&
         ...);
    // "SIGHUP, SIGQUIT, ..." of the forwarded signals, in the order of the rows.
    static std::string forwarded_names() {
        std::string names;
        ((names += forwarded<typename Rows::action>::value == 0
                       ? ""
                       : (names.empty() ? "" : ", ") + supervise::signal_name(Rows::signal)),
         ...);
        return names;
    }
};

template <class Master, class Worker>
constexpr bool well_formed() {
    return rows<Master>::as_received && (rows<Master>::forwarded_mask & Worker::mask) == 0;
}
static_assert(well_formed<seed_master, seed_worker>() && well_formed<nginx_master, nginx_worker>(),
              "a forwarded signal is sent on as itself and has no row in the worker map");

}  // namespace forwarding

// Calls visit(pool_choice::pool_types<...>{}) with the maps of --preset (or
// their forwarding twins) and the strategy of --strategy: one of 2 x 2 x 4
// instantiations, picked at run time.
template <class Visit>
int dispatch(const config& cfg, Visit&& visit) {
    if (!forwards_signals(cfg)) return pool_choice::dispatch(cfg.pool, visit);
    switch (cfg.pool.preset) {
        case pool_choice::preset_kind::seed:
            return pool_choice::dispatch_strategy<
                pool_choice::signal_maps<forwarding::seed_master, forwarding::seed_worker>>(
                cfg.pool, visit);
        case pool_choice::preset_kind::nginx:
            return pool_choice::dispatch_strategy<
                pool_choice::signal_maps<forwarding::nginx_master, forwarding::nginx_worker>>(
                cfg.pool, visit);
    }
    return 1;  // not reached: every preset_kind is a case
}

// The master's line about forwarding, or "" without it.
std::string forwarding_line(const config& cfg) {
    if (!forwards_signals(cfg)) return "";
    const std::string names = cfg.pool.preset == pool_choice::preset_kind::seed
                                  ? forwarding::rows<forwarding::seed_master>::forwarded_names()
                                  : forwarding::rows<forwarding::nginx_master>::forwarded_names();
    return "forwarding " + names + " to every copy";
}

// ============================================================================
// The command, prepared in the master before anything starts
// ============================================================================

struct command {
    std::string path;                      // the file execve(2) runs
    std::vector<std::string> args;         // COMMAND [ARGS...], argv[0] as typed
    std::vector<std::string> environment;  // ours, without the master's own variables
    int ready_fd = -1;                     // kept open across exec, or -1
    int parent_death_signal = 0;           // options::parent_death_signal
};

// Why `path` cannot be executed, or nothing if it can: it must be a regular
// file this process may execute (for root: one with an execute bit).
std::optional<std::string> not_executable(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::string(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) {
        return std::string(S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    }
    if (::access(path.c_str(), X_OK) != 0) return std::string("not executable");
    return std::nullopt;
}

// The file COMMAND names, found as execvp(3) finds it: as given when it holds
// a '/', else the first executable file of that name in a directory of $PATH
// (an empty entry is the current directory). Resolved once, here, so a typo is
// exit status 2 instead of N copies failing to start.
std::string resolve(const std::string& name) {
    if (name.empty()) throw usage_error("the command is an empty string");
    if (name.find('/') != std::string::npos) {
        if (const auto why = not_executable(name)) {
            throw usage_error("cannot execute '" + name + "': " + *why);
        }
        return name;
    }
    std::string search;
    if (const char* path = std::getenv("PATH")) {
        search = path;
    } else {
        // POSIX's default search path, as execvp uses it.
        search.resize(::confstr(_CS_PATH, nullptr, 0));
        ::confstr(_CS_PATH, search.data(), search.size());
        search.resize(std::strlen(search.c_str()));
    }
    for (std::size_t begin = 0; begin <= search.size();) {
        std::size_t end = search.find(':', begin);
        if (end == std::string::npos) end = search.size();
        const std::string dir = end == begin ? "." : search.substr(begin, end - begin);
        std::string candidate = dir;
        candidate += '/';
        candidate += name;
        if (!not_executable(candidate)) return candidate;
        begin = end + 1;
    }
    throw usage_error("'" + name + "' is not an executable file in any directory of PATH (" +
                      search + ")");
}

// The copies' environment: ours, without systemd's notification variables.
// The service is the master's to report: the pool sends READY=1 once every
// copy is ready, with MAINPID= its own pid. A copy that spoke to
// $NOTIFY_SOCKET itself would announce the whole service ready as soon as it
// alone is, or name itself the main process; under systemd's default
// NotifyAccess=main its messages are refused anyway. $WATCHDOG_PID names the
// master, so $WATCHDOG_USEC is not the copies' either. Inherited
// SUPERVISE_WORKER_* (a supervise-exec under another one) give way to ours.
// systemd's LISTEN_* were supervise-exec's (the pool took or ignored them,
// and unset them, after this copy of the environment was made): each copy
// gets its own (listener_environment).
std::vector<std::string> command_environment() {
    constexpr std::string_view removed[] = {"NOTIFY_SOCKET",
                                            "WATCHDOG_USEC",
                                            "WATCHDOG_PID",
                                            "SUPERVISE_WORKER_INDEX",
                                            "SUPERVISE_WORKER_GENERATION",
                                            "LISTEN_FDS",
                                            "LISTEN_PID",
                                            "LISTEN_FDNAMES"};
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view variable = *entry;
        const std::string_view name = variable.substr(0, variable.find('='));
        bool keep = true;
        for (const std::string_view r : removed) keep = keep && name != r;
        if (keep) environment.emplace_back(variable);
    }
    return environment;
}

command prepare(const config& cfg) {
    command cmd;
    cmd.args = cfg.command;
    cmd.path = resolve(cfg.command.front());
    cmd.environment = command_environment();
    cmd.ready_fd = cfg.ready_fd;
    cmd.parent_death_signal = pool_options(cfg).parent_death_signal;
    return cmd;
}

// ============================================================================
// The worker: from a forked copy of the master to COMMAND
// ============================================================================

// Every signal back to SIG_DFL. exec(2) resets caught signals by itself but
// keeps ignored ones ignored, and the worker maps set some to SIG_IGN (SIGHUP,
// SIGPIPE, ...), as may whoever started supervise-exec.
void reset_dispositions() {
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        if (::sigaction(sig, &default_action, nullptr) != 0) {
            // glibc refuses its two internal signals (32 and 33), which can
            // still arrive ignored (Bazel's test sandbox hands them down so).
            // The kernel reads an all-zero sigaction as SIG_DFL, no flags and
            // an empty mask, whatever the architecture's layout of it.
            const unsigned long zero[8] = {};
            ::syscall(SYS_rt_sigaction, sig, zero, nullptr, _NSIG / 8);
        }
    }
}

// Closes every descriptor from `first` (3, or past the listeners the copy
// gets at 3, 4, ...) but `keep`: the master's pipes, pidfds and whatever
// supervise-exec inherited are not the command's business. close_range(2)
// (Linux 5.9) does it in one or two calls; without it, the descriptors
// /proc/self/fd lists; without /proc, every number up to the limit.
void close_descriptors(int first, int keep) {
    if (keep < first) keep = -1;  // among those kept anyway, or none
#if defined(SYS_close_range)
    const auto close_range = [](unsigned from, unsigned last) {
        return from > last || ::syscall(SYS_close_range, from, last, 0U) == 0;
    };
    const auto from = static_cast<unsigned>(first);
    const bool closed = keep < 0 ? close_range(from, ~0U)
                                 : close_range(from, static_cast<unsigned>(keep) - 1) &&
                                       close_range(static_cast<unsigned>(keep) + 1, ~0U);
    if (closed) return;
#endif
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        std::vector<int> open;
        while (const dirent* entry = ::readdir(dir)) {
            const std::string_view name = entry->d_name;
            int fd = -1;
            const auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), fd);
            if (error != std::errc() || end != name.data() + name.size()) continue;  // "." and ".."
            if (fd >= first && fd != keep && fd != ::dirfd(dir)) open.push_back(fd);
        }
        ::closedir(dir);
        for (const int fd : open) ::close(fd);
        return;
    }
    const long limit = ::sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < limit; ++fd) {
        if (fd != keep) ::close(static_cast<int>(fd));
    }
}

// The pool's listeners at 3, 4, ... in the order of LISTEN_FDNAMES, without
// close-on-exec (dup2 clears it on the copy). First each goes above the
// range (F_DUPFD takes the lowest free number from there, so never the ready
// descriptor, which is open): a listener may already sit where another one
// goes. False (errno set) if a descriptor cannot be had.
bool place_listeners(const std::vector<supervise::listening_socket>& listeners) {
    const int count = static_cast<int>(listeners.size());
    std::vector<int> moved;
    for (const supervise::listening_socket& s : listeners) {
        const int fd = ::fcntl(s.fd, F_DUPFD, 3 + count);
        if (fd < 0) return false;
        moved.push_back(fd);
    }
    for (int i = 0; i < count; ++i) {
        int rc;
        do {
            rc = ::dup2(moved[static_cast<std::size_t>(i)], 3 + i);
        } while (rc < 0 && errno == EINTR);
        if (rc < 0) return false;
    }
    return true;  // the copies above are closed with the rest
}

// "NAME=VALUE" for a number.
std::string variable(std::string_view name, unsigned value) {
    char digits[16];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    return std::string(name) + "=" + std::string(digits, end);
}

// systemd's variables for a copy (sd_listen_fds(3)): LISTEN_PID is the
// copy's own pid, which exec keeps; none without listeners.
void add_listener_environment(const std::vector<supervise::listening_socket>& listeners,
                              std::vector<std::string>& environment) {
    if (listeners.empty()) return;
    std::string names;
    for (const supervise::listening_socket& s : listeners) {
        names += (names.empty() ? "" : ":") + s.name;
    }
    environment.push_back(variable("LISTEN_FDS", static_cast<unsigned>(listeners.size())));
    environment.push_back(variable("LISTEN_PID", static_cast<unsigned>(::getpid())));
    environment.push_back("LISTEN_FDNAMES=" + names);
}

// Runs in the worker process, after the pool's set-up (process group, worker
// signal map, parent-death signal, privilege drop). The master is single-
// threaded (the pool refuses to fork otherwise), so allocating here is safe.
// Returns only if exec fails: 127, as a shell does for a command it cannot run.
int exec_command(const command& cmd, supervise::worker_context& ctx) {
    // From here on no handler runs: a signal waits, blocked, for the command.
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    reset_dispositions();
    // A stop the pool's handler took before the block would be lost across
    // exec: end the way the command would have, of that signal.
    if (ctx.stop_requested()) {
        const int sig = ctx.stop_signal();
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, sig);
        ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
        ::raise(sig);
        return 128 + sig;
    }
    // Changing the effective user (--user) clears the parent-death signal
    // (prctl(2)); the pool set it before dropping privileges, so set it again
    // and check, as the pool does, that the master did not die meanwhile.
    if (cmd.parent_death_signal != 0) {
        ::prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(cmd.parent_death_signal), 0UL, 0UL,
                0UL);
        if (::getppid() != ctx.master_pid()) return 127;
    }

    std::vector<std::string> environment = cmd.environment;
    environment.push_back(variable("SUPERVISE_WORKER_INDEX", static_cast<unsigned>(ctx.index())));
    environment.push_back(variable("SUPERVISE_WORKER_GENERATION", ctx.generation()));
    add_listener_environment(ctx.listeners(), environment);
    std::vector<char*> envp;
    envp.reserve(environment.size() + 1);
    for (std::string& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const std::string& arg : cmd.args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);

    if (!place_listeners(ctx.listeners())) {
        log("worker " + std::to_string(ctx.index()) +
            ": cannot place the listeners at 3..: " + std::strerror(errno));
        return 127;
    }
    close_descriptors(3 + static_cast<int>(ctx.listeners().size()), cmd.ready_fd);
    // The pool dup2()s its pipe onto the ready descriptor, which clears
    // FD_CLOEXEC, except when the pipe already has that number: then dup2 does
    // nothing and exec would close it. Clear the flag either way.
    if (cmd.ready_fd >= 0) ::fcntl(cmd.ready_fd, F_SETFD, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(cmd.path.c_str(), argv.data(), envp.data());
    log("worker " + std::to_string(ctx.index()) + ": cannot execute " + cmd.path + ": " +
        std::strerror(errno));
    return 127;
}

// ============================================================================
// The pool
// ============================================================================

// The worker whose end stopped the pool, as the pool's one-line reason names
// it ("worker N (pid P) ..."), and how it ended. The library's outcome does not
// carry it as data (see docs/supervise-exec.md).
std::optional<std::pair<int, supervise::exit_info>> failed_worker(
    const supervise::outcome& result, const supervise::statistics& stats) {
    if (result.reason != supervise::stop_reason::worker_failed) return std::nullopt;
    constexpr std::string_view prefix = "worker ";
    const std::string_view detail = result.detail;
    if (detail.substr(0, prefix.size()) != prefix) return std::nullopt;
    const char* const last = detail.data() + detail.size();
    int index = -1;
    const auto [end, error] = std::from_chars(detail.data() + prefix.size(), last, index);
    const std::string_view rest(end, static_cast<std::size_t>(last - end));
    if (error != std::errc() || rest.substr(0, 5) != " (pid" || index < 0 ||
        index >= static_cast<int>(stats.workers.size())) {
        return std::nullopt;
    }
    return std::make_pair(index, stats.workers[static_cast<std::size_t>(index)].last_exit);
}

// 0 for a requested stop; the failed copy's own status, 128+N for signal N,
// 1 when it exited 0 (a service that ends by itself has failed); 1 otherwise.
// A copy's status says more than "failed" (127: not found, 137: SIGKILLed, for
// example by the OOM killer), and it is what tini and a shell give.
int exit_status(const supervise::outcome& result, const supervise::statistics& stats) {
    if (result.exit_status == EXIT_SUCCESS) return EXIT_SUCCESS;
    const auto failed = failed_worker(result, stats);
    if (!failed) return result.exit_status;
    const supervise::exit_info& how = failed->second;
    int status = result.exit_status;
    if (how.how == supervise::exit_info::kind::exited && how.code != 0) status = how.code;
    if (how.how == supervise::exit_info::kind::killed) status = 128 + how.signal;
    log("exit status " + std::to_string(status) + " (worker " + std::to_string(failed->first) +
        " " + how.describe() + ")");
    return status;
}

// Readies the listeners for the copies and says where they are; empty, or
// why the command line cannot work with them. Blocking mode, as systemd
// hands sockets over by default (NonBlocking=no): a command written for
// socket activation may rely on accept(2) waiting. The mode belongs to the
// socket, shared by every copy, and the master never accepts on it.
std::string hand_out_listeners(const config& cfg,
                               const std::vector<supervise::listening_socket>& listeners) {
    const int count = static_cast<int>(listeners.size());
    if (cfg.ready_fd >= 0 && cfg.ready_fd < 3 + count) {
        return "--ready-fd " + std::to_string(cfg.ready_fd) + " is where a copy gets listener " +
               std::to_string(cfg.ready_fd - 3) + " (the " + std::to_string(count) +
               " listeners take descriptors 3 to " + std::to_string(2 + count) + ")";
    }
    for (int i = 0; i < count; ++i) {
        const supervise::listening_socket& s = listeners[static_cast<std::size_t>(i)];
        const int flags = ::fcntl(s.fd, F_GETFL);
        if (flags >= 0) ::fcntl(s.fd, F_SETFL, flags & ~O_NONBLOCK);
        log("listener " + s.name + " on " + s.address + (s.inherited ? " (from systemd)" : "") +
            ": descriptor " + std::to_string(3 + i) + " of every copy");
    }
    return "";
}

// Runs the pool with the maps and the strategy of `Types`.
template <class Types>
int run_with(const config& cfg, const command& cmd) {
    auto worker = [&cmd](supervise::worker_context& ctx) { return exec_command(cmd, ctx); };
    std::optional<typename Types::template pool<decltype(worker)>> pool;
    try {
        // Checks the options (the user, RLIMIT_NPROC, ...) and opens the
        // listeners (--listen, or systemd's); starts no process.
        pool.emplace(worker, pool_options(cfg));
    } catch (const std::invalid_argument& e) {
        return usage_failure(e.what());
    } catch (const std::exception& e) {
        // An address in use, systemd's sockets not what they should be.
        log(e.what());
        return EXIT_FAILURE;
    }
    if (const std::string failed = hand_out_listeners(cfg, pool->listeners()); !failed.empty()) {
        return usage_failure(failed);
    }
    if (const std::string line = forwarding_line(cfg); !line.empty()) log(line);
    try {
        const supervise::outcome result = pool->run();
        return exit_status(result, pool->snapshot());
    } catch (const std::exception& e) {
        log(e.what());
        return EXIT_FAILURE;
    }
}

}  // namespace

// tests/fuzz includes this file with SUPERVISE_EXAMPLE_NO_MAIN defined, to
// reach parse_command_line without a second copy of it.
#ifndef SUPERVISE_EXAMPLE_NO_MAIN
int main(int argc, char** argv) {
    config cfg;
    command cmd;
    try {
        cfg = parse_command_line(argc, argv);
        if (cfg.help) {
            std::fputs(usage, stdout);
            return 0;
        }
        cmd = prepare(cfg);
    } catch (const usage_error& e) {
        return usage_failure(e.what());
    }
    return dispatch(cfg, [&](auto types) { return run_with<decltype(types)>(cfg, cmd); });
}
#endif  // SUPERVISE_EXAMPLE_NO_MAIN
