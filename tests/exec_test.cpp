// Integration tests of supervise-exec (//examples/exec), from outside: the real
// binary supervising real commands (sh, sleep, grep, ls, id), real signals.
//
// supervise-exec runs in a harness::child (a process group of its own) with
// stdout and stderr on pipes; it dies with this test process
// (PR_SET_PDEATHSIG) and is SIGKILLed and reaped when its test ends. The
// commands it starts die with it, and this binary being a child subreaper
// (test_main.cpp), whatever is orphaned comes back here, so every test can
// prove that nothing was left running. Commands report on their stdout, the
// master's log is on stderr; every wait is bounded.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"

using namespace harness;

namespace {

std::string exec_binary() {
    // Outside Bazel: SUPERVISE_EXEC=/path/to/supervise-exec ./exec_test
    return runfile("examples/exec/supervise-exec", "SUPERVISE_EXEC");
}

// A directory of this test's own for files.
std::string scratch_directory() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    return tmp != nullptr ? tmp : "/tmp";
}

// What the test hands to supervise-exec besides its arguments.
struct launch {
    // Words before supervise-exec's own path (unshare ...), or none.
    std::vector<std::string> prefix;
    // Runs in the forked child just before exec (signal state, descriptors,
    // environment to hand down).
    std::function<void()> before_exec;
};

// supervise-exec run as a program_process, with stdin from /dev/null.
class exec_process : public program_process {
  public:
    explicit exec_process(const std::vector<std::string>& args, const launch& how = {}) {
        std::vector<std::string> words = how.prefix;
        words.push_back(exec_binary());
        words.insert(words.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& word : words) argv.push_back(word.data());
        argv.push_back(nullptr);
        spawn([&] {
            const int nothing = ::open("/dev/null", O_RDONLY);
            ::dup2(nothing, STDIN_FILENO);
            if (how.before_exec) how.before_exec();
            ::execvp(argv[0], argv.data());
        });
    }

    void signal(int sig) {
        REQUIRE(pid() > 0);
        REQUIRE(::kill(pid(), sig) == 0);
    }

    // Waits for the pool's "started N workers" line.
    void wait_started(int workers) {
        const std::string line = "started " + std::to_string(workers) + " workers";
        REQUIRE_MESSAGE(err.wait_for(line), "no '" << line << "'; stderr:\n" << err.text());
    }

    // Waits for the exit and for both pipes to be closed by everyone.
    std::optional<int> finish() {
        const std::optional<int> status = wait_exit();
        err.wait_eof();
        out.wait_eof();
        return status;
    }

    // Sends SIGTERM, then finish().
    std::optional<int> terminate() {
        signal(SIGTERM);
        return finish();
    }
};

// A command that reports "up INDEX GENERATION PID" on stdout, then sleeps
// until it is signalled; `before` runs first in the same shell.
std::vector<std::string> reporting_command(const std::string& before = "") {
    return {"sh", "-c",
            before +
                "echo \"up $SUPERVISE_WORKER_INDEX $SUPERVISE_WORKER_GENERATION $$\"; "
                "exec sleep 1000"};
}

struct up_line {
    int index = -1;
    unsigned generation = 0;
    pid_t pid = 0;
};

std::vector<up_line> up_lines(const reader& out) {
    std::vector<up_line> found;
    for (const std::string& line : out.lines_starting("up ")) {
        up_line up;
        long pid = 0;
        if (std::sscanf(line.c_str(), "up %d %u %ld", &up.index, &up.generation, &pid) == 3) {
            up.pid = static_cast<pid_t>(pid);
            found.push_back(up);
        }
    }
    return found;
}

// Waits until a copy of slot `index` in `generation` reported; returns it.
up_line wait_up(exec_process& exec, int index, unsigned generation) {
    const auto find = [&]() -> std::optional<up_line> {
        for (const up_line& up : up_lines(exec.out)) {
            if (up.index == index && up.generation == generation) return up;
        }
        return std::nullopt;
    };
    exec.out.wait_until([&] { return find().has_value(); });
    const std::optional<up_line> up = find();
    REQUIRE_MESSAGE(up, "no copy " << index << " generation " << generation << "; stdout:\n"
                                   << exec.out.text() << "stderr:\n"
                                   << exec.err.text());
    return *up;
}

int count_up(const reader& out, int index) {
    const std::vector<up_line> ups = up_lines(out);
    return static_cast<int>(std::count_if(ups.begin(), ups.end(),
                                          [&](const up_line& up) { return up.index == index; }));
}

std::vector<std::string> concat(std::vector<std::string> first,
                                const std::vector<std::string>& second) {
    first.insert(first.end(), second.begin(), second.end());
    return first;
}

// Named pipes, one per slot, that hold each copy back until the test opens
// its gate: a copy runs `read line <"$0/go-$SUPERVISE_WORKER_INDEX"` (with
// the directory as $0). The test holds each pipe open for reading and
// writing, so its "go" never blocks and waits in the pipe until the copy
// reads it; the shell reads a byte at a time, so each copy takes one line.
class gates {
  public:
    explicit gates(int count) {
        static int made = 0;
        directory_ = scratch_directory() + "/gates-" + std::to_string(::getpid()) + "-" +
                     std::to_string(++made);
        REQUIRE(::mkdir(directory_.c_str(), 0755) == 0);
        for (int i = 0; i < count; ++i) {
            const std::string path = directory_ + "/go-" + std::to_string(i);
            REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
            fds_.push_back(::open(path.c_str(), O_RDWR | O_CLOEXEC));
            REQUIRE(fds_.back() >= 0);
        }
    }
    ~gates() {
        for (const int fd : fds_) ::close(fd);
    }
    gates(const gates&) = delete;
    gates& operator=(const gates&) = delete;

    // The shell's words for waiting at the gate; pass directory() as $0.
    static std::string wait() { return "read line <\"$0/go-$SUPERVISE_WORKER_INDEX\"; "; }
    const std::string& directory() const { return directory_; }
    void open(int index) { say(fds_[static_cast<std::size_t>(index)], "go"); }

  private:
    std::string directory_;
    std::vector<int> fds_;
};

}  // namespace

// ---- the command line ----

TEST_CASE("--help prints every option on stdout and exits 0") {
    exec_process exec({"--help"});
    const std::optional<int> status = exec.finish();
    CHECK(exited_with(status, 0));
    CHECK(exec.out.text().rfind("Usage: supervise-exec [OPTIONS] -- COMMAND [ARGS...]", 0) == 0);
    std::vector<std::string> words = {"--workers", "--preset", "--strategy", "--ready-fd"};
    words.insert(words.end(), {"--shutdown-timeout", "--max-restarts", "--restart-period"});
    words.insert(words.end(), {"--backoff-max", "--pid1", "--help", "--forward-signals"});
    words.insert(words.end(), {"--restart-delay", "--min-uptime"});
    words.insert(words.end(), {"--user", "--allow-new-privileges", "--listen", "LISTEN_FDS",
                               "LISTEN_PID", "LISTEN_FDNAMES"});
    words.insert(words.end(), {"SUPERVISE_WORKER_INDEX", "one_for_one", "shutdown_all",
                               "Exit status", "128+N", "127", "NOTIFY_SOCKET"});
    for (const std::string& word : words) {
        CAPTURE(word);
        CHECK(exec.out.text().find(word) != std::string::npos);
    }
    CHECK(exec.err.text().empty());
}

TEST_CASE("bad input: one line, exit status 2, and nothing started") {
    const std::string not_executable = scratch_directory() + "/not-executable";
    std::ofstream(not_executable) << "#!/bin/sh\necho started\n";
    REQUIRE(::chmod(not_executable.c_str(), 0644) == 0);
    // A command that would show on stdout had it been started.
    const std::vector<std::string> command = {"--", "sh", "-c", "echo started"};
    const auto with_command = [&](std::vector<std::string> args) { return concat(args, command); };
    const std::vector<std::vector<std::string>> bad = {
        {},
        {"--"},
        {"--workers", "2"},
        {"--workers", "2", "--"},
        {"--workers"},
        with_command({"--frobnicate"}),
        with_command({"-w", "2"}),
        with_command({"--workers", "0"}),
        with_command({"--workers", "many"}),
        with_command({"--workers=4097"}),
        with_command({"--workers="}),
        with_command({"--strategy", "one_for_none"}),
        with_command({"--preset", "apache"}),
        with_command({"--shutdown-timeout", "0"}),
        with_command({"--shutdown-timeout", "5s"}),
        with_command({"--max-restarts", "-1"}),
        with_command({"--restart-period", "3600001"}),
        with_command({"--backoff-max", "-5"}),
        // Restart settings without a strategy that restarts.
        with_command({"--strategy", "shutdown_all", "--max-restarts", "3"}),
        with_command({"--strategy=shutdown_all", "--backoff-max", "100"}),
        with_command({"--strategy=shutdown_all", "--min-uptime", "100"}),
        with_command({"--strategy=shutdown_all", "--restart-delay", "100"}),
        with_command({"--min-uptime", "-1"}),
        with_command({"--restart-delay", "2000", "--restart-delay-max", "1000"}),
        with_command({"--backoff-max", "100", "--restart-delay-max", "100"}),
        // 0, 1, 2 are the command's; the library takes 3 to 1023.
        with_command({"--ready-fd", "2"}),
        with_command({"--ready-fd", "1024"}),
        with_command({"--pid1=yes"}),
        with_command({"--forward-signals=1"}),
        with_command({"--allow-new-privileges"}),
        with_command({"--user", "nobody", "--allow-new-privileges=yes"}),
        with_command({"--help=please"}),
        with_command({"--user="}),
        with_command({"--user", "no-such-user-here"}),
        // Listeners that cannot be: no NAME=, a name or an address the
        // library refuses, the ready descriptor where a listener goes.
        with_command({"--listen", "web"}),
        with_command({"--listen=127.0.0.1:0"}),
        with_command({"--listen", "=127.0.0.1:0"}),
        with_command({"--listen", "web=localhost:80"}),
        with_command({"--listen", "a:b=127.0.0.1:0"}),
        with_command({"--listen", "web=127.0.0.1:0", "--listen", "web=127.0.0.1:0"}),
        with_command({"--listen", "web=127.0.0.1:0", "--ready-fd", "3"}),
        // Commands that cannot be executed.
        {"--", "no-such-command-here"},
        {"no-such-command-here", "--workers", "2"},
        {"--", "/no/such/file"},
        {"--", "/"},
        {"--", not_executable},
        {"--", ""},
    };
    for (const std::vector<std::string>& args : bad) {
        std::string command_line;
        for (const std::string& arg : args) command_line += " '" + arg + "'";
        CAPTURE(command_line);
        exec_process exec(args);
        const std::optional<int> status = exec.finish();
        CAPTURE(exec.err.text());
        CHECK(exited_with(status, 2));
        CHECK(exec.err.text().rfind("supervise-exec: ", 0) == 0);
        CHECK(std::count(exec.err.text().begin(), exec.err.text().end(), '\n') == 1);
        CHECK(exec.err.text().find("see 'supervise-exec --help'") != std::string::npos);
        CHECK(exec.out.text().empty());
        // Not a single worker was forked (it would be our child by now).
        CHECK(no_child_left());
    }
}

TEST_CASE("bad input names the problem") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--workers", "2"}, "no command given"},
        {{"--frobnicate", "--", "true"}, "unknown option '--frobnicate'"},
        {{"--", "no-such-command-here"}, "'no-such-command-here' is not an executable file in"},
        {{"--", "/no/such/file"}, "cannot execute '/no/such/file': No such file or directory"},
        {{"--", "/"}, "cannot execute '/': a directory"},
        {{"--", "/dev/null"}, "cannot execute '/dev/null': not a regular file"},
        {{"--workers", "0", "--", "true"}, "--workers must be between 1 and 4096 (got 0)"},
        {{"--user", "no-such-user-here", "--", "true"}, "unknown user 'no-such-user-here'"},
        {{"--strategy", "shutdown_all", "--backoff-max", "1", "--", "true"},
         "--backoff-max applies to a restarting --strategy"},
        {{"--allow-new-privileges", "--", "true"}, "--allow-new-privileges applies with --user"},
        {{"--strategy", "shutdown_all", "--min-uptime", "1", "--", "true"},
         "--min-uptime apply to a restarting --strategy"},
        {{"--restart-delay", "20", "--restart-delay-max", "10", "--", "true"},
         "--restart-delay (20) must not exceed --restart-delay-max (10)"},
        {{"--backoff-max", "1", "--restart-delay-max", "1", "--", "true"},
         "--backoff-max and --restart-delay-max are the same setting"},
        {{"--listen", "web", "--", "true"}, "--listen takes NAME=ADDRESS (got 'web')"},
        {{"--listen", "web=localhost:80", "--", "true"},
         "supervise: listener 'web': cannot use address 'localhost:80': 'localhost' is not an "
         "IPv4 address"},
        {{"--listen", "a=127.0.0.1:0", "--listen", "b=[::1]:0", "--ready-fd", "4", "--", "true"},
         "--ready-fd 4 is where a copy gets listener 1 (the 2 listeners take descriptors 3 to 4)"},
    };
    for (const auto& [args, message] : cases) {
        // CAPTURE keeps a reference in a lambda, and clang (before C++20)
        // cannot capture a structured binding: name a plain reference.
        const std::string& expected = message;
        CAPTURE(expected);
        exec_process exec(args);
        CHECK(exited_with(exec.finish(), 2));
        CHECK_MESSAGE(exec.err.text().find(message) != std::string::npos, exec.err.text());
    }
    CHECK(no_child_left());
}

// ---- workers and what each copy starts with ----

TEST_CASE(
    "--workers N: N copies, each with its SUPERVISE_WORKER_INDEX; SIGTERM stops all, exit 0") {
    // The command is found through PATH, and "--" may be left out.
    exec_process exec(concat({"--workers=3"}, reporting_command()));
    exec.wait_started(3);
    std::set<int> indexes;
    std::set<pid_t> pids;
    for (int index = 0; index < 3; ++index) {
        const up_line up = wait_up(exec, index, 0);
        indexes.insert(up.index);
        pids.insert(up.pid);
        // The copy is the pool's worker process itself: no shell or wrapper between.
        CHECK(parent_of(up.pid) == exec.pid());
    }
    CHECK(indexes == std::set<int>{0, 1, 2});
    CHECK(pids.size() == 3);
    CHECK(exited_with(exec.terminate(), 0));
    INFO(exec.err.text());
    CHECK(exec.err.occurrences("killed by signal 15 (SIGTERM)") == 3);
    CHECK(exec.err.line_with("stopped (SIGTERM received); exit status 0"));
    CHECK(up_lines(exec.out).size() == 3);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a copy starts with default dispositions and an empty signal mask") {
    // Whoever starts supervise-exec may hand down ignored and blocked
    // signals, and the pool's worker maps ignore some (SIGHUP, SIGUSR2, SIGPIPE,
    // SIGWINCH): none of it reaches the command.
    const launch how{{}, [] {
                         for (const int sig : {SIGHUP, SIGQUIT, SIGTERM, SIGXFSZ}) {
                             std::signal(sig, SIG_IGN);
                         }
                         sigset_t blocked;
                         sigemptyset(&blocked);
                         sigaddset(&blocked, SIGUSR2);
                         sigaddset(&blocked, SIGPROF);
                         ::sigprocmask(SIG_SETMASK, &blocked, nullptr);
                     }};
    for (const char* preset : {"seed", "nginx"}) {
        // With forwarding the worker maps differ: the forwarded signals have no row.
        for (const bool forwarding : {false, true}) {
            CAPTURE(preset);
            CAPTURE(forwarding);
            std::vector<std::string> args = {"--preset", preset, "--max-restarts", "1000"};
            if (forwarding) args.emplace_back("--forward-signals");
            // grep is the copy itself (no shell between) and reads its own
            // status; it exits and is started again, which keeps the master up.
            exec_process exec(
                concat(args, {"--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"}), how);
            REQUIRE(exec.out.wait_for("SigIgn:"));
            // The twin: the master did receive that state (SIGXFSZ and SIGPROF
            // are in no signal map, so the pool leaves them as they came).
            CHECK(has_signal(status_field(exec.pid(), "SigIgn"), SIGXFSZ));
            CHECK(has_signal(status_field(exec.pid(), "SigBlk"), SIGPROF));
            CHECK(exited_with(exec.terminate(), 0));
            INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
            CHECK(exec.out.occurrences("SigBlk:\t0000000000000000\n") ==
                  exec.out.occurrences("SigBlk:"));
            CHECK(exec.out.occurrences("SigIgn:\t0000000000000000\n") ==
                  exec.out.occurrences("SigIgn:"));
        }
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("a copy has only descriptors 0, 1, 2 and the --ready-fd open") {
    // supervise-exec inherits a descriptor without O_CLOEXEC; the pool has
    // pipes and pidfds of its own, more with every copy.
    pipe_pair leak;
    const launch how{{}, [&] { ::dup2(leak.read_fd, 7); }};
    for (const bool ready_fd : {false, true}) {
        CAPTURE(ready_fd);
        // ls is the copy itself and lists its own descriptors, in one write;
        // it exits and is started again, which keeps the master up.
        std::vector<std::string> args = {"--workers", "3", "--max-restarts", "1000"};
        if (ready_fd) args.insert(args.end(), {"--ready-fd", "9"});
        exec_process exec(concat(args, {"--", "ls", "-l", "/proc/self/fd"}), how);
        REQUIRE(exec.out.wait_for("total ", 3));
        // The twin: the master does hold descriptor 7.
        CHECK(::access(("/proc/" + std::to_string(exec.pid()) + "/fd/7").c_str(), F_OK) == 0);
        CHECK(exited_with(exec.terminate(), 0));
        INFO(exec.out.text());
        // "lr-x------ 1 root root 64 Nov 24 06:10 9 -> pipe:[1259879]", one
        // line per descriptor after each "total" line; the descriptor ls
        // reads the directory through points at /proc/PID/fd: not the copy's.
        std::vector<std::string> listings;
        std::istringstream lines(exec.out.text());
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind("total ", 0) == 0) {
                listings.emplace_back();
                continue;
            }
            const std::size_t arrow = line.find(" -> ");
            if (listings.empty() || arrow == std::string::npos) continue;
            const std::string target = line.substr(arrow + 4);
            if (target.rfind("/proc/", 0) == 0 && target.size() > 3 &&
                target.compare(target.size() - 3, 3, "/fd") == 0) {
                continue;
            }
            const std::size_t name = line.rfind(' ', arrow - 1) + 1;
            listings.back() +=
                (listings.back().empty() ? "" : " ") + line.substr(name, arrow - name);
        }
        REQUIRE(listings.size() >= 3);
        for (const std::string& listed : listings) {
            CHECK(listed == (ready_fd ? "0 1 2 9" : "0 1 2"));
        }
    }
    CHECK(reap_leftovers() == 0);
}

// ---- readiness ----

TEST_CASE("--ready-fd: a copy is ready once it writes a newline there, not when it starts") {
    // Each copy says it is up, waits at its gate, says on stderr that it is
    // about to be ready, and writes its newline to descriptor 9.
    gates gate(2);
    exec_process exec({"--workers", "2", "--ready-fd=9", "--", "sh", "-c",
                       "echo \"up $SUPERVISE_WORKER_INDEX 0 $$\"; " + gates::wait() +
                           "echo \"copy $SUPERVISE_WORKER_INDEX writes its newline\" >&2; "
                           "echo >&9; exec sleep 1000",
                       gate.directory()});
    wait_up(exec, 0, 0);
    wait_up(exec, 1, 0);
    // Both run the command, neither is ready: a statistics table (SIGUSR1)
    // comes out, with no "started" line before it.
    exec.signal(SIGUSR1);
    REQUIRE(exec.err.wait_for("statistics: master pid"));
    CHECK_FALSE(exec.err.line_with("started 2 workers"));
    gate.open(1);
    REQUIRE(exec.err.wait_for("copy 1 writes its newline"));
    gate.open(0);
    exec.wait_started(2);
    // The master's line comes after both copies wrote theirs (one pipe: the
    // order in it is the order of the writes).
    const std::string& log = exec.err.text();
    const std::size_t started = log.find("started 2 workers");
    CHECK(log.find("copy 0 writes its newline") < started);
    CHECK(log.find("copy 1 writes its newline") < started);
    CHECK(exited_with(exec.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--ready-fd reaches the command when the pool's pipe already has that number") {
    // With exactly one inherited descriptor above 2 (here 3), the pool's
    // third pipe gets descriptors 8 and 9: the write end is already 9,
    // dup2(9, 9) does nothing, and FD_CLOEXEC would close it at exec.
    const launch how{{}, [] {
                         ::syscall(SYS_close_range, 3U, ~0U, 0U);
                         ::open("/dev/null", O_RDONLY);  // descriptor 3
                     }};
    exec_process exec(concat({"--ready-fd", "9", "--"}, reporting_command("echo >&9; ")), how);
    // Ready only if the newline came through descriptor 9.
    exec.wait_started(1);
    CHECK(exited_with(exec.terminate(), 0));
    INFO(exec.err.text());
    CHECK_FALSE(exec.err.line_with("Bad file descriptor"));
    CHECK(reap_leftovers() == 0);
}

namespace {

// An abstract unix datagram socket playing systemd's part: $NOTIFY_SOCKET
// names it "@...".
class notify_socket {
  public:
    notify_socket() {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        name_ = "supervise-exec-test-" + std::to_string(::getpid());
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path + 1, name_.data(), name_.size());
        const auto size =
            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name_.size());
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), size) == 0);
    }
    ~notify_socket() { ::close(fd_); }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    std::string variable() const { return "@" + name_; }

    // The next datagram, or nothing after `timeout`.
    std::optional<std::string> receive(milliseconds timeout = patience) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
        char buf[1024];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, static_cast<std::size_t>(n));
    }

  private:
    int fd_ = -1;
    std::string name_;
};

}  // namespace

TEST_CASE(
    "under systemd the master reports readiness for every copy; the copies see no NOTIFY_SOCKET") {
    notify_socket systemd;
    const std::string socket_name = systemd.variable();
    const launch how{{}, [&] {
                         ::setenv("NOTIFY_SOCKET", socket_name.c_str(), 1);
                         ::setenv("WATCHDOG_USEC", "60000000", 1);
                         ::setenv("WATCHDOG_PID", "1", 1);  // not supervise-exec's
                     }};
    gates gate(2);
    exec_process exec({"--workers", "2", "--ready-fd", "9", "--", "sh", "-c",
                       "echo \"env ${NOTIFY_SOCKET-unset} ${WATCHDOG_USEC-unset} "
                       "${WATCHDOG_PID-unset}\"; " +
                           gates::wait() + "echo >&9; exec sleep 1000",
                       gate.directory()},
                      how);
    REQUIRE(exec.out.wait_for("env ", 2));
    CHECK(exec.out.occurrences("env unset unset unset") == 2);
    // Nothing is ready yet, so systemd has heard nothing.
    CHECK_FALSE(systemd.receive(0ms));
    gate.open(0);
    gate.open(1);
    const std::optional<std::string> ready = systemd.receive();
    REQUIRE(ready);
    CHECK(*ready ==
          "READY=1\nMAINPID=" + std::to_string(exec.pid()) + "\nSTATUS=2 of 2 workers ready");
    exec.signal(SIGTERM);
    const std::optional<std::string> stopping = systemd.receive();
    REQUIRE(stopping);
    CHECK(stopping->rfind("STOPPING=1\n", 0) == 0);
    CHECK(exited_with(exec.finish(), 0));
    CHECK(reap_leftovers() == 0);
}

// ---- stopping ----

TEST_CASE("--shutdown-timeout: a command that ignores SIGTERM gets SIGKILL, exit status still 0") {
    exec_process exec(
        concat({"--shutdown-timeout", "300", "--"}, reporting_command("trap '' TERM; ")));
    exec.wait_started(1);
    const up_line up = wait_up(exec, 0, 0);
    // The copy (sleep, exec'd by the shell) kept SIGTERM ignored.
    CHECK(has_signal(status_field(up.pid, "SigIgn"), SIGTERM));
    const std::int64_t asked = now_ms();
    const std::optional<int> status = exec.terminate();
    INFO(exec.err.text());
    CHECK(exited_with(status, 0));
    // The timeout is the behaviour under test: it was waited for.
    CHECK(now_ms() - asked >= 300);
    CHECK(exec.err.line_with("workers still running after 300 ms; sending SIGKILL"));
    CHECK(exec.err.line_with("worker 0 (pid " + std::to_string(up.pid) +
                             ") killed by signal 9 (SIGKILL)"));
    CHECK(reap_leftovers() == 0);
}

// ---- failures, restarts and the exit status ----

TEST_CASE("--max-restarts: a command that fails on every start stops with its own exit status") {
    exec_process exec({"--max-restarts", "2", "--restart-period=60000", "--backoff-max", "0", "--",
                       "sh", "-c", "echo start; exit 3"});
    const std::optional<int> status = exec.finish();
    INFO(exec.err.text());
    CHECK(exited_with(status, 3));
    // Started once, restarted twice, then the limit.
    CHECK(exec.out.occurrences("start") == 3);
    CHECK(exec.err.line_with(
        "exited with status 3; more than 2 restarts within 60000 ms, giving up"));
    CHECK(exec.err.line_with("exit status 3 (worker 0 exited with status 3)"));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--backoff-max caps the doubling delay between restarts of a failing copy") {
    exec_process exec({"--max-restarts", "4", "--backoff-max", "150", "--", "sh", "-c", "exit 4"});
    const std::optional<int> status = exec.finish();
    INFO(exec.err.text());
    CHECK(exited_with(status, 4));
    // At once, then 100 ms, then 200 ms capped to 150 twice; the fifth exit gives up.
    CHECK(exec.err.occurrences("; restarting worker 0\n") == 1);
    CHECK(exec.err.occurrences("; restarting worker 0 in 100 ms") == 1);
    CHECK(exec.err.occurrences("; restarting worker 0 in 150 ms") == 2);
    CHECK(exec.err.occurrences(" in 200 ms") == 0);
    CHECK(exec.err.line_with("more than 4 restarts"));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--min-uptime and --restart-delay: a copy that was ready restarts at once, else backs off") {
    // A copy is ready once its process is up (no --ready-fd), so with --min-uptime 0 every
    // death is one of a copy that served: no wait, even with a 60 s first delay.
    exec_process served({"--max-restarts", "3", "--restart-delay", "60000", "--min-uptime", "0",
                         "--", "sh", "-c", "exit 4"});
    const std::optional<int> served_status = served.finish();
    INFO(served.err.text());
    CHECK(exited_with(served_status, 4));
    CHECK(served.err.occurrences("; restarting worker 0\n") == 3);
    CHECK(served.err.occurrences("; restarting worker 0 in ") == 0);
    // The twin: the default min_uptime (1 s) is longer than the copy lived.
    exec_process looping({"--max-restarts", "3", "--restart-delay", "30", "--", "sh", "-c",
                          "exit 4"});
    const std::optional<int> looping_status = looping.finish();
    INFO(looping.err.text());
    CHECK(exited_with(looping_status, 4));
    CHECK(looping.err.occurrences("; restarting worker 0\n") == 1);
    CHECK(looping.err.occurrences("; restarting worker 0 in 30 ms") == 1);
    CHECK(looping.err.occurrences("; restarting worker 0 in 60 ms") == 1);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("exit status: the failed copy's own status, 128+N for signal N, 1 for a clean exit") {
    struct expectation {
        std::vector<std::string> args;
        int status;
        std::string log;
    };
    const std::vector<expectation> cases = {
        // A crash: the shell kills itself with SIGSEGV.
        {{"--strategy", "shutdown_all", "--", "sh", "-c", "kill -SEGV $$"},
         128 + SIGSEGV,
         "worker 0 killed by signal 11 (SIGSEGV)"},
        {{"--max-restarts", "1", "--backoff-max", "0", "--", "sh", "-c", "kill -SEGV $$"},
         128 + SIGSEGV,
         "more than 1 restarts"},
        {{"--strategy", "shutdown_all", "--", "sh", "-c", "exit 7"}, 7, "exited with status 7"},
        // A service that ends by itself has failed, even with status 0.
        {{"--strategy", "shutdown_all", "--", "true"}, 1, "worker 0 (pid"},
        {{"--max-restarts", "0", "--", "true"}, 1, "more than 0 restarts"},
        // 125 (s6's permanent failure) is not restarted.
        {{"--", "sh", "-c", "echo start; exit 125"}, 125, "(fatal: not restarted)"},
    };
    for (const expectation& e : cases) {
        CAPTURE(e.log);
        exec_process exec(e.args);
        const std::optional<int> status = exec.finish();
        INFO(exec.err.text());
        CHECK_MESSAGE(exited_with(status, e.status), describe_status(status));
        CHECK(exec.err.line_with(e.log));
        CHECK(exec.out.occurrences("start") <= 1);
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE(
    "a command that cannot be executed at run time exits 127, and the restart limit ends it") {
    // An executable file whose interpreter does not exist passes the check
    // before start-up; execve(2) then fails in every copy.
    const std::string script = scratch_directory() + "/no-interpreter";
    std::ofstream(script) << "#!/no/such/interpreter\n";
    REQUIRE(::chmod(script.c_str(), 0755) == 0);
    exec_process exec({"--workers", "2", "--max-restarts", "1", "--", script});
    const std::optional<int> status = exec.finish();
    INFO(exec.err.text());
    CHECK(exited_with(status, 127));
    CHECK(exec.err.line_with("cannot execute " + script + ": No such file or directory"));
    CHECK(exec.err.line_with("more than 1 restarts"));
    CHECK(reap_leftovers() == 0);
}

// ---- strategies and presets ----

TEST_CASE("--strategy: which copies a crash restarts") {
    struct expectation {
        const char* strategy;
        std::set<int> restarted;
    };
    for (const expectation& e :
         {expectation{"one_for_one", {1}}, expectation{"one_for_all", {0, 1, 2}},
          expectation{"rest_for_one", {1, 2}}}) {
        CAPTURE(e.strategy);
        exec_process exec(
            concat({"--workers", "3", "--strategy", e.strategy, "--"}, reporting_command()));
        exec.wait_started(3);
        // Every copy runs the command before one is killed.
        for (int index = 0; index < 3; ++index) wait_up(exec, index, 0);
        REQUIRE(::kill(wait_up(exec, 1, 0).pid, SIGKILL) == 0);
        for (const int index : e.restarted) wait_up(exec, index, 1);
        CHECK(exited_with(exec.terminate(), 0));
        INFO(exec.out.text() << exec.err.text());
        for (int index = 0; index < 3; ++index) {
            CAPTURE(index);
            CHECK(count_up(exec.out, index) == (e.restarted.count(index) != 0 ? 2 : 1));
        }
    }
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--preset nginx: SIGHUP replaces the copies one at a time, each new one ready first") {
    gates gate(2);
    exec_process exec({"--workers", "2", "--preset", "nginx", "--ready-fd", "9", "--", "sh", "-c",
                       "echo \"up $SUPERVISE_WORKER_INDEX $SUPERVISE_WORKER_GENERATION $$\"; " +
                           gates::wait() + "echo >&9; exec sleep 1000",
                       gate.directory()});
    gate.open(0);
    gate.open(1);
    exec.wait_started(2);
    const pid_t old0 = wait_up(exec, 0, 0).pid;
    const pid_t old1 = wait_up(exec, 1, 0).pid;
    exec.signal(SIGHUP);
    wait_up(exec, 0, 1);
    // The successor runs but is not ready: its predecessor is not asked to
    // stop yet (SIGUSR2 prints the table, with no "retired" line before it).
    exec.signal(SIGUSR2);
    REQUIRE(exec.err.wait_for("statistics: master pid"));
    CHECK_FALSE(exec.err.line_with("retired"));
    CHECK(::kill(old0, 0) == 0);
    gate.open(0);
    wait_up(exec, 1, 1);
    gate.open(1);
    REQUIRE(exec.err.wait_for("rolling reload done"));
    // Each predecessor got the preset's graceful stop signal, SIGQUIT, which
    // ends sleep.
    for (const pid_t old : {old0, old1}) {
        CHECK(exec.err.wait_for_line("(pid " + std::to_string(old) +
                                     ", retired) killed by signal 3 (SIGQUIT)"));
    }
    CHECK(exited_with(exec.terminate(), 0));
    INFO(exec.err.text());
    CHECK(up_lines(exec.out).size() == 4);
    CHECK(reap_leftovers() == 0);
}

// ---- PID 1 and orphans ----

namespace {

// A copy whose subshells leave orphans behind: one that exits as soon as it
// is an orphan and one that runs on. Reports "orphan PID" for each, then
// "up ...". The first waits until its parent subshell is gone (the ppid in
// its /proc/PID/stat is no longer the subshell's pid, which the subshell read
// from /proc/self/stat with the builtin read): one that ended while the
// subshell still ran would be the subshell's zombie, not an orphan.
std::vector<std::string> orphaning_command() {
    return reporting_command(
        "(read -r me rest </proc/self/stat; "
        "sh -c 'while read -r a b c q r </proc/$$/stat && [ \"$q\" = \"$1\" ]; do :; done' "
        "orphan \"$me\" & echo \"orphan $!\"); (exec sleep 1000 & echo \"orphan $!\"); ");
}

std::vector<pid_t> orphans(const reader& out) {
    std::vector<pid_t> found;
    for (const std::string& line : out.lines_starting("orphan ")) {
        found.push_back(static_cast<pid_t>(std::atol(line.c_str() + 7)));
    }
    return found;
}

}  // namespace

TEST_CASE("--pid1 as PID 1 of a new PID namespace reaps orphaned grandchildren") {
    // The container entry point: unshare makes a PID namespace whose first
    // process (PID 1 there) is supervise-exec.
    exec_process exec(concat({"--pid1", "--"}, orphaning_command()),
                      launch{{"unshare", "--pid", "--fork", "--mount-proc"}, {}});
    exec.wait_started(1);
    INFO(exec.err.text());
    // Its lines carry its pid inside the namespace.
    CHECK(exec.err.line_with("supervise-exec[1]: started 1 workers"));
    REQUIRE(exec.out.wait_for("orphan ", 2));
    const std::vector<pid_t> orphan = orphans(exec.out);
    REQUIRE(orphan.size() == 2);
    CHECK(exec.err.wait_for_line("reaped orphan pid " + std::to_string(orphan[0]) +
                                 ", exited with status 0"));
    // unshare waits for supervise-exec; the SIGTERM goes to supervise-exec itself.
    const std::vector<pid_t> inside = children_of(exec.pid());
    REQUIRE(inside.size() == 1);
    REQUIRE(::kill(inside[0], SIGTERM) == 0);
    CHECK(exited_with(exec.finish(), 0));
    // The orphan still running got a SIGTERM before supervise-exec exited,
    // rather than the kernel's SIGKILL when the namespace ends.
    CHECK(exec.err.line_with("reaped orphan pid " + std::to_string(orphan[1]) +
                             ", killed by signal 15 (SIGTERM)"));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--pid1 without being PID 1: supervise-exec adopts orphans as a subreaper") {
    for (const bool pid1 : {true, false}) {
        CAPTURE(pid1);
        exec_process exec(
            concat(pid1 ? std::vector<std::string>{"--pid1", "--"} : std::vector<std::string>{"--"},
                   orphaning_command()));
        exec.wait_started(1);
        wait_up(exec, 0, 0);
        REQUIRE(exec.out.wait_for("orphan ", 2));
        const std::vector<pid_t> orphan = orphans(exec.out);
        REQUIRE(orphan.size() == 2);
        INFO(exec.err.text());
        if (pid1) {
            CHECK(exec.err.wait_for_line("reaped orphan pid " + std::to_string(orphan[0]) +
                                         ", exited with status 0"));
            // The orphan that runs on is supervise-exec's child now.
            CHECK(parent_of(orphan[1]) == exec.pid());
        } else {
            // Without --pid1 orphans go past supervise-exec to the next
            // subreaper up: this test process.
            CHECK(exited_with(wait_exit(orphan[0]), 0));
            CHECK(parent_of(orphan[1]) == ::getpid());
            CHECK_FALSE(exec.err.line_with("reaped orphan"));
        }
        exec.signal(SIGTERM);
        CHECK(exited_with(exec.wait_exit(), 0));
        if (pid1) {
            // With --pid1 the orphan still running is stopped and reaped
            // before supervise-exec exits: nothing it adopted outlives it.
            exec.err.wait_eof();
            CHECK(exec.err.line_with("reaped orphan pid " + std::to_string(orphan[1]) +
                                     ", killed by signal 15 (SIGTERM)"));
            CHECK(::kill(orphan[1], 0) == -1);
        } else {
            // Without it the orphan is no business of supervise-exec's: it
            // runs on as this process's child (it still holds the pipes).
            CHECK(parent_of(orphan[1]) == ::getpid());
            REQUIRE(::kill(orphan[1], SIGKILL) == 0);
            CHECK(killed_by(wait_exit(orphan[1]), SIGKILL));
        }
        exec.finish();
        CHECK(reap_leftovers() == 0);
    }
}

// ---- signals passed on to the copies ----

namespace {

// The signals forwarding may pass on, and their names as the reports and the
// statistics table write them.
struct named {
    int number;
    const char* name;  // without SIG
};
constexpr named askable[] = {
    {SIGHUP, "HUP"}, {SIGQUIT, "QUIT"}, {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGWINCH, "WINCH"}};

void write_line(const std::string& line) {
    const std::string text = line + "\n";
    if (::write(STDOUT_FILENO, text.data(), text.size()) < 0) {
    }
}

// The command the forwarding tests run: this test binary itself, with
// EXEC_TEST_COMMAND=report-signals in its environment (a shell's traps cannot
// be relied on here: dash clears its note of a signal that arrives while
// another trap runs). First it reports, as "start INDEX ignored: ... blocked:
// ...", which of these signals (and SIGTERM) it found ignored or blocked when
// it started; then it blocks them, says "up INDEX GENERATION PID", and takes
// them one by one with sigwaitinfo(2), without a race: "got NAME INDEX from
// SENDER" for each of `askable`, and "bye INDEX" and exit status 0 for SIGTERM.
int report_signals() {
    const char* index_text = std::getenv("SUPERVISE_WORKER_INDEX");
    const char* generation_text = std::getenv("SUPERVISE_WORKER_GENERATION");
    const std::string index = index_text != nullptr ? index_text : "?";
    std::vector<named> watched(std::begin(askable), std::end(askable));
    watched.push_back({SIGTERM, "TERM"});
    sigset_t set;
    sigemptyset(&set);
    sigset_t started_with;
    ::sigprocmask(SIG_SETMASK, nullptr, &started_with);
    std::string ignored;
    std::string blocked;
    for (const named& s : watched) {
        struct sigaction action {};
        ::sigaction(s.number, nullptr, &action);
        if (action.sa_handler == SIG_IGN) ignored += std::string(" ") + s.name;
        if (sigismember(&started_with, s.number) == 1) blocked += std::string(" ") + s.name;
        sigaddset(&set, s.number);
    }
    write_line("start " + index + " ignored:" + ignored + " blocked:" + blocked);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    write_line("up " + index + " " + (generation_text != nullptr ? generation_text : "?") + " " +
               std::to_string(::getpid()));
    for (;;) {
        siginfo_t info{};
        const int sig = ::sigwaitinfo(&set, &info);
        if (sig < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (sig == SIGTERM) {
            write_line("bye " + index);
            return 0;
        }
        for (const named& s : askable) {
            if (s.number != sig) continue;
            write_line("got " + std::string(s.name) + " " + index + " from " +
                       std::to_string(info.si_pid));
        }
    }
}

// Before doctest's main: run as that command, this binary is not the test.
[[maybe_unused]] const bool is_command = [] {
    const char* role = std::getenv("EXEC_TEST_COMMAND");
    if (role != nullptr && std::strcmp(role, "report-signals") == 0) ::_exit(report_signals());
    return false;
}();

std::string this_binary() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    REQUIRE(n > 0);
    return std::string(path, static_cast<std::size_t>(n));
}

// supervise-exec running copies of report_signals(), as `how` says, with the
// signals it may forward handed down to it ignored, and some of them blocked:
// the copies must not start so.
launch reporting_signals(std::vector<std::string> prefix = {}) {
    return {std::move(prefix), [] {
                ::setenv("EXEC_TEST_COMMAND", "report-signals", 1);
                for (const named& s : askable) std::signal(s.number, SIG_IGN);
                sigset_t blocked;
                sigemptyset(&blocked);
                sigaddset(&blocked, SIGHUP);
                sigaddset(&blocked, SIGUSR2);
                ::sigprocmask(SIG_SETMASK, &blocked, nullptr);
            }};
}

// "got NAME INDEX from " (the sender follows).
std::string got(const named& s, int index) {
    return "got " + std::string(s.name) + " " + std::to_string(index) + " from ";
}

int reports_of_signals(const reader& out) {
    return static_cast<int>(out.lines_starting("got ").size());
}

// Waits for every copy's "up" line and checks its "start" line: it began with
// none of the watched signals ignored or blocked.
void wait_copies_up(exec_process& exec, int copies) {
    exec.wait_started(copies);
    for (int index = 0; index < copies; ++index) {
        wait_up(exec, index, 0);
        CHECK(exec.out.line_with("start " + std::to_string(index) + " ignored: blocked:\n"));
    }
}

}  // namespace

TEST_CASE(
    "forwarding: every copy gets HUP, QUIT, USR1, USR2 and WINCH from the master, with "
    "--forward-signals, --pid1, and as PID 1") {
    struct way {
        const char* name;
        std::vector<std::string> flags;
        std::vector<std::string> prefix;  // unshare: PID 1 of a new PID namespace
    };
    const way ways[] = {
        {"--forward-signals", {"--forward-signals"}, {}},
        {"--pid1", {"--pid1"}, {}},
        {"PID 1 without a flag", {}, {"unshare", "--pid", "--fork", "--mount-proc"}},
    };
    for (const way& w : ways) {
        const std::string name = w.name;
        CAPTURE(name);
        exec_process exec(concat(concat({"--workers", "3"}, w.flags), {"--", this_binary()}),
                          reporting_signals(w.prefix));
        INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
        wait_copies_up(exec, 3);
        // Under unshare the signals go to supervise-exec inside the namespace,
        // where it is pid 1.
        pid_t master = exec.pid();
        pid_t master_seen_inside = exec.pid();
        if (!w.prefix.empty()) {
            const std::vector<pid_t> inside = children_of(exec.pid());
            REQUIRE(inside.size() == 1);
            master = inside[0];
            master_seen_inside = 1;
        }
        CHECK(exec.err.line_with(
            "forwarding SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH to every copy"));
        // One signal at a time, each until every copy reported it: standard
        // signals sent together may merge.
        for (const named& s : askable) {
            CAPTURE(s.name);
            REQUIRE(::kill(master, s.number) == 0);
            for (int index = 0; index < 3; ++index) {
                CAPTURE(index);
                // From the master: the test signalled nobody else.
                CHECK(exec.out.wait_for(got(s, index) + std::to_string(master_seen_inside) + "\n"));
            }
        }
        REQUIRE(::kill(master, SIGTERM) == 0);
        CHECK(exited_with(exec.finish(), 0));
        for (int index = 0; index < 3; ++index) {
            CAPTURE(index);
            for (const named& s : askable) CHECK(exec.out.occurrences(got(s, index)) == 1);
            CHECK(exec.out.occurrences("bye " + std::to_string(index) + "\n") == 1);
            // None of them ended a copy: each ran once.
            CHECK(count_up(exec.out, index) == 1);
        }
        CHECK(reports_of_signals(exec.out) == 3 * 5);
        CHECK(reap_leftovers() == 0);
    }
}

TEST_CASE("without forwarding the seed preset passes none of them on (the default)") {
    exec_process exec({"--workers", "2", "--", this_binary()}, reporting_signals());
    INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
    wait_copies_up(exec, 2);
    CHECK_FALSE(exec.err.line_with("forwarding"));
    // HUP and USR2 are ignored, USR1 prints the statistics table; WINCH has no
    // row, and supervise-exec got it ignored. The tables show that the master
    // took each ignored signal (one may take two tables: when both are
    // pending, the lower-numbered USR1 comes first).
    exec.signal(SIGWINCH);
    int tables = 0;
    for (const auto& [sig, counted] : {std::pair<int, const char*>{SIGHUP, "SIGHUP 1"},
                                       std::pair<int, const char*>{SIGUSR2, "SIGUSR2 1"}}) {
        exec.signal(sig);
        const std::string needle = counted;
        CAPTURE(needle);
        bool seen = false;
        while (!seen && tables < 6) {
            exec.signal(SIGUSR1);
            ++tables;
            REQUIRE(exec.err.wait_for("statistics: master pid", tables));
            seen = exec.err.text().find(needle) != std::string::npos;
        }
        CHECK(seen);
    }
    // The copies take their signals in order: a SIGTERM after the master
    // acted on those comes after anything it could have sent them for them.
    CHECK(exited_with(exec.terminate(), 0));
    CHECK(reports_of_signals(exec.out) == 0);
    CHECK(exec.out.occurrences("bye ") == 2);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("without forwarding SIGQUIT ends supervise-exec by its default action (the default)") {
    // No row under the seed preset: the disposition supervise-exec was started
    // with, here the default. The copies die with it (parent-death signal).
    exec_process exec({"--workers", "2", "--", this_binary()},
                      {{}, [] { ::setenv("EXEC_TEST_COMMAND", "report-signals", 1); }});
    INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
    wait_copies_up(exec, 2);
    exec.signal(SIGQUIT);
    CHECK(killed_by(exec.finish(), SIGQUIT));
    CHECK(reports_of_signals(exec.out) == 0);
    CHECK(exec.out.occurrences("bye ") == 0);
    // Orphans of this subreaper now, they die of the parent-death signal.
    for (const up_line& up : up_lines(exec.out)) CHECK(killed_by(wait_exit(up.pid), SIGKILL));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE(
    "--preset nginx: USR1 reaches every copy; WINCH stops them (SIGQUIT) without forwarding, "
    "reaches them with it") {
    const named usr1{SIGUSR1, "USR1"};
    const named winch{SIGWINCH, "WINCH"};
    const named quit{SIGQUIT, "QUIT"};
    for (const bool forwarding : {false, true}) {
        CAPTURE(forwarding);
        std::vector<std::string> args = {"--workers", "2", "--preset", "nginx"};
        // The copies take SIGQUIT and stay: SIGTERM follows after this long.
        args.insert(args.end(), {"--shutdown-timeout", "200"});
        if (forwarding) args.emplace_back("--forward-signals");
        exec_process exec(concat(args, {"--", this_binary()}), reporting_signals());
        INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
        wait_copies_up(exec, 2);
        const bool announced =
            exec.err.line_with("forwarding SIGUSR1, SIGWINCH to every copy").has_value();
        CHECK(announced == forwarding);
        const std::string from_master = std::to_string(exec.pid()) + "\n";
        exec.signal(SIGUSR1);
        for (int index = 0; index < 2; ++index) {
            CHECK(exec.out.wait_for(got(usr1, index) + from_master));
        }
        exec.signal(SIGWINCH);
        if (forwarding) {
            for (int index = 0; index < 2; ++index) {
                CHECK(exec.out.wait_for(got(winch, index) + from_master));
            }
        } else {
            // nginx's WINCH: each copy gets the graceful stop signal, then
            // SIGTERM, and supervise-exec stays.
            for (int index = 0; index < 2; ++index) {
                CHECK(exec.out.wait_for(got(quit, index) + from_master));
                CHECK(exec.out.wait_for("bye " + std::to_string(index) + "\n"));
            }
            CHECK(exec.err.wait_for("SIGWINCH received; stopping every worker, the master stays"));
        }
        CHECK(exited_with(exec.terminate(), 0));
        for (int index = 0; index < 2; ++index) {
            CAPTURE(index);
            CHECK(exec.out.occurrences(got(usr1, index)) == 1);
            CHECK(exec.out.occurrences(got(winch, index)) == (forwarding ? 1 : 0));
            CHECK(exec.out.occurrences(got(quit, index)) == (forwarding ? 0 : 1));
            CHECK(exec.out.occurrences("bye " + std::to_string(index) + "\n") == 1);
        }
        CHECK(reap_leftovers() == 0);
    }
}

// ---- privileges ----

TEST_CASE("--user nobody: copies run as nobody, and still die with supervise-exec") {
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    REQUIRE(::geteuid() == 0);
    exec_process exec(concat({"--user", "nobody", "--"},
                             reporting_command("echo \"ids $(id -u) $(id -g) $(id -G)\"; ")));
    if (setgroups_denied()) {
        // linux-sandbox's user namespace: the drop fails and stops everything
        // with the fatal status, never running the command as root.
        const std::optional<int> status = exec.finish();
        INFO(exec.err.text());
        CHECK(exited_with(status, 125));
        CHECK(exec.err.line_with("cannot drop privileges to 'nobody': setgroups"));
        CHECK(exec.out.text().empty());
        return;
    }
    const up_line up = wait_up(exec, 0, 0);
    const std::string uid = std::to_string(nobody->pw_uid);
    const std::string gid = std::to_string(nobody->pw_gid);
    CHECK(exec.out.line_with("ids " + uid + " " + gid + " "));
    CHECK(status_field(up.pid, "Uid") == uid + "\t" + uid + "\t" + uid + "\t" + uid);
    CHECK(status_field(exec.pid(), "Uid") == "0\t0\t0\t0");  // the master stays root
    // Changing the user clears the parent-death signal; the copy must still
    // die with the master.
    exec.signal(SIGKILL);
    CHECK(killed_by(exec.wait_exit(), SIGKILL));
    // The copy was orphaned to this subreaper: it dies (SIGKILL from the
    // parent-death signal) without anyone else's help.
    CHECK(killed_by(wait_exit(up.pid), SIGKILL));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--user: copies cannot gain privileges through exec; --allow-new-privileges keeps that") {
    REQUIRE(::geteuid() == 0);
    REQUIRE_MESSAGE(!setgroups_denied(), "a user namespace that denies setgroups(2)");
    for (const bool allow : {false, true}) {
        CAPTURE(allow);
        std::vector<std::string> args = {"--user", "nobody", "--max-restarts", "1000"};
        if (allow) args.emplace_back("--allow-new-privileges");
        // grep is the copy itself and reads its own status; it exits and is
        // started again, which keeps the master up.
        exec_process exec(
            concat(args, {"--", "grep", "-E", "^(NoNewPrivs|CapBnd):", "/proc/self/status"}));
        REQUIRE(exec.out.wait_for("NoNewPrivs:"));
        const std::string bounding_set = status_field(exec.pid(), "CapBnd");
        CHECK(exited_with(exec.terminate(), 0));
        INFO("stdout:\n" << exec.out.text() << "stderr:\n" << exec.err.text());
        const int copies = exec.out.occurrences("NoNewPrivs:");
        REQUIRE(copies >= 1);
        CHECK(exec.out.occurrences(allow ? "NoNewPrivs:\t0\n" : "NoNewPrivs:\t1\n") == copies);
        const std::string expected_set = allow ? bounding_set : "0000000000000000";
        CHECK(exec.out.occurrences("CapBnd:\t" + expected_set + "\n") == copies);
        // The master keeps its own.
        CHECK(bounding_set != "0000000000000000");
    }
    CHECK(reap_leftovers() == 0);
}

// ---- listeners: --listen, and what systemd gave supervise-exec ----

namespace {

// A copy that serves every connection on fd 3 with one line about itself:
// "answer PID LISTEN_PID LISTEN_FDS LISTEN_FDNAMES nonblock 0|1 index N".
std::vector<std::string> answering_command() {
    return {"python3", "-c",
            "import fcntl, os, socket\n"
            "s = socket.socket(fileno=3)\n"
            "while True:\n"
            "    c, _ = s.accept()\n"
            "    e = os.environ\n"
            "    c.sendall(('answer %d %s %s %s nonblock %d index %s\\n' % (os.getpid(),\n"
            "        e.get('LISTEN_PID'), e.get('LISTEN_FDS'), e.get('LISTEN_FDNAMES'),\n"
            "        (fcntl.fcntl(3, fcntl.F_GETFL) & os.O_NONBLOCK) != 0,\n"
            "        e.get('SUPERVISE_WORKER_INDEX'))).encode())\n"
            "    c.close()\n"};
}

// The address supervise-exec logged for listener `name` ("listener web on
// 127.0.0.1:41234: descriptor 3 of every copy").
std::string logged_address(exec_process& exec, const std::string& name) {
    const auto line = exec.err.wait_for_line("listener " + name + " on ");
    REQUIRE_MESSAGE(line, "no listener line for " << name << "; stderr:\n" << exec.err.text());
    const std::size_t from = line->find(" on ") + 4;
    return line->substr(from, line->find(": descriptor") - from);
}

// The answer's words after "answer".
struct answer {
    long pid = 0;
    std::string listen_pid, listen_fds, names;
    int nonblock = -1;
};
answer parse_answer(const std::string& text) {
    answer a;
    std::istringstream words(text);
    std::string word, nonblock;
    words >> word >> a.pid >> a.listen_pid >> a.listen_fds >> a.names >> nonblock >> a.nonblock;
    return a;
}

}  // namespace

TEST_CASE(
    "--listen: every copy gets the sockets at 3, 4 with LISTEN_FDS, its own LISTEN_PID, "
    "LISTEN_FDNAMES") {
    const std::string path = "/tmp/supervise-exec-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    exec_process exec(
        {"--workers", "2", "--listen", "web=127.0.0.1:0", "--listen=local=unix:" + path, "--", "sh",
         "-c",
         "echo \"env $SUPERVISE_WORKER_INDEX $$ $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES "
         "$(readlink /proc/$$/fd/3) $(readlink /proc/$$/fd/4)\"; exec sleep 1000"});
    exec.wait_started(2);
    REQUIRE(exec.out.wait_for("env ", 2));
    const std::string web = logged_address(exec, "web");
    CHECK(web.rfind("127.0.0.1:", 0) == 0);
    CHECK(logged_address(exec, "local") == "unix:" + path);
    for (const std::string& line : exec.out.lines_starting("env ")) {
        CAPTURE(line);
        std::istringstream words(line);
        std::string word, index, pid, listen_pid, fds, names, fd3, fd4;
        words >> word >> index >> pid >> listen_pid >> fds >> names >> fd3 >> fd4;
        CHECK(listen_pid == pid);  // the copy's own, set after the fork
        CHECK(fds == "2");
        CHECK(names == "web:local");
        CHECK(fd3.rfind("socket:", 0) == 0);
        CHECK(fd4.rfind("socket:", 0) == 0);
        CHECK(fd3 != fd4);
    }
    CHECK(exited_with(exec.terminate(), 0));
    // The socket file went with supervise-exec.
    struct stat info {};
    CHECK(::lstat(path.c_str(), &info) != 0);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--listen: copies serve clients through the socket, in blocking mode") {
    exec_process exec(
        concat({"--workers", "2", "--listen", "web=127.0.0.1:0", "--"}, answering_command()));
    exec.wait_started(2);
    const std::string web = logged_address(exec, "web");
    std::set<long> pids;
    for (int i = 0; i < 4; ++i) {
        const std::string text = ask(web);
        CAPTURE(text);
        const answer a = parse_answer(text);
        CHECK(std::to_string(a.pid) == a.listen_pid);
        CHECK(a.listen_fds == "1");
        CHECK(a.names == "web");
        CHECK(a.nonblock == 0);
        pids.insert(a.pid);
    }
    CHECK(!pids.empty());
    CHECK(exited_with(exec.terminate(), 0));
    INFO("stderr:\n" << exec.err.text());
    CHECK(exec.err.text().find("restarting") == std::string::npos);
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("--listen on an address in use: exit status 1 with the reason, nothing started") {
    const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(taken >= 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
    REQUIRE(::listen(taken, 1) == 0);
    socklen_t size = sizeof in;
    REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&in), &size) == 0);
    const std::string address = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
    exec_process exec({"--listen", "web=" + address, "--", "sh", "-c", "echo started"});
    CHECK(exited_with(exec.finish(), 1));
    CHECK(exec.err.text().find("supervise: listener 'web' (" + address +
                               "): bind: Address already in use") != std::string::npos);
    CHECK(exec.out.text().empty());
    CHECK(no_child_left());
    ::close(taken);
}

// The real launcher: Debian's systemd-socket-activate binds the socket,
// waits for the first client, then execs supervise-exec with LISTEN_FDS=1,
// LISTEN_PID (its own pid, which exec keeps) and LISTEN_FDNAMES.
TEST_CASE(
    "systemd-socket-activate starts supervise-exec: clients are served through the "
    "inherited socket") {
    REQUIRE_MESSAGE(::access("/usr/bin/systemd-socket-activate", X_OK) == 0,
                    "needs Debian's systemd package (tools/bazel installs it)");
    const std::string path = "/tmp/supervise-activate-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    launch how;
    how.prefix = {"/usr/bin/systemd-socket-activate", "--listen=" + path, "--fdname=web"};
    exec_process exec(concat({"--workers", "2", "--"}, answering_command()), how);
    REQUIRE_MESSAGE(exec.err.wait_for("Listening on " + path), exec.err.text());
    // The first client makes the launcher start supervise-exec; its
    // connection waits in the socket's queue for a copy to accept it.
    const std::string first = ask("unix:" + path);
    INFO("stderr:\n" << exec.err.text());
    CHECK(exec.err.wait_for("socket activation: 1 listeners from systemd: web (fd 3, unix:" + path +
                            ")"));
    std::vector<std::string> answers = {first};
    for (int i = 0; i < 3; ++i) answers.push_back(ask("unix:" + path));
    for (const std::string& text : answers) {
        CAPTURE(text);
        const answer a = parse_answer(text);
        CHECK(a.pid > 0);
        CHECK(a.pid != exec.pid());  // a copy, not supervise-exec
        CHECK(std::to_string(a.pid) == a.listen_pid);
        CHECK(a.listen_fds == "1");
        CHECK(a.names == "web");
        CHECK(a.nonblock == 0);
    }
    CHECK(exited_with(exec.terminate(), 0));
    // systemd's socket file is systemd's (here the launcher's): not removed.
    struct stat info {};
    CHECK(::lstat(path.c_str(), &info) == 0);
    ::unlink(path.c_str());
    CHECK(reap_leftovers() == 0);
}
