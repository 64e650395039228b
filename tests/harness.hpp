// Test harness: real processes, bounded waits, nothing left behind.
//
// Rules every test follows (see docs/testing.md):
// - a process under test runs in a child of its own process group; the child
//   object kills that group and reaps it whatever happens to the test;
// - processes report through pipes; every wait is bounded by poll(2) on a
//   pipe or a pidfd, never by a sleep;
// - the test binary is a child subreaper (test_main.cpp), so workers orphaned
//   by a killed master come back to it and can be reaped and counted.
#ifndef SUPERVISE_TESTS_HARNESS_HPP
#define SUPERVISE_TESTS_HARNESS_HPP

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <utility>
#include <vector>

namespace harness {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// The bound on any single wait in a test. Generous: it only matters when
// something is broken, and then the test fails instead of hanging.
inline constexpr milliseconds patience = 10s;

inline std::int64_t now_ms() { return supervise::detail::monotonic_ms(); }

// A pipe whose ends close themselves.
class pipe_pair {
  public:
    pipe_pair() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
        read_fd = fds[0];
        write_fd = fds[1];
    }
    ~pipe_pair() {
        close_read();
        close_write();
    }
    pipe_pair(const pipe_pair&) = delete;
    pipe_pair& operator=(const pipe_pair&) = delete;
    void close_read() {
        if (read_fd >= 0) ::close(read_fd);
        read_fd = -1;
    }
    void close_write() {
        if (write_fd >= 0) ::close(write_fd);
        write_fd = -1;
    }
    int read_fd = -1;
    int write_fd = -1;
};

// Writes all of `text` (retrying short writes and EINTR); gives up silently
// if the descriptor fails. For child processes: no doctest there.
inline void write_all(int fd, const std::string& text) {
    const char* data = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, data, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

// Writes a whole line; used by workers and hooks inside child processes.
inline void say(int fd, const std::string& line) { write_all(fd, line + "\n"); }

// Accumulates what a pipe delivers and waits, bounded, for text to appear.
class reader {
  public:
    explicit reader(int fd) : fd_(fd) {}

    // Reads until `done()` holds, end of file or the timeout; returns done().
    template <class Done>
    bool wait_until(Done done, milliseconds timeout = patience) {
        const std::int64_t deadline = now_ms() + timeout.count();
        while (!done()) {
            if (!read_some(deadline)) return done();
        }
        return true;
    }

    // True once the accumulated text contains `needle` `count` times.
    bool wait_for(std::string_view needle, int count = 1, milliseconds timeout = patience) {
        return wait_until([&] { return occurrences(needle) >= count; }, timeout);
    }

    // Reads until EOF (every writer closed), bounded.
    bool wait_eof(milliseconds timeout = patience) {
        return wait_until([&] { return eof_; }, timeout);
    }

    // The first complete line that contains `needle` at or after offset `from`.
    std::optional<std::string> line_with(std::string_view needle, std::size_t from = 0) const {
        const std::size_t at = text_.find(needle, from);
        if (at == std::string::npos) return std::nullopt;
        const std::size_t end = text_.find('\n', at);
        if (end == std::string::npos) return std::nullopt;
        const std::size_t begin = text_.rfind('\n', at);
        const std::size_t start = begin == std::string::npos ? 0 : begin + 1;
        return text_.substr(start, end - start);
    }

    // Waits, bounded, for such a line and returns it.
    std::optional<std::string> wait_for_line(std::string_view needle, std::size_t from = 0,
                                             milliseconds timeout = patience) {
        wait_until([&] { return line_with(needle, from).has_value(); }, timeout);
        return line_with(needle, from);
    }

    int occurrences(std::string_view needle) const {
        int n = 0;
        for (std::size_t at = text_.find(needle); at != std::string::npos;
             at = text_.find(needle, at + needle.size())) {
            ++n;
        }
        return n;
    }

    // Lines that start with `prefix`.
    std::vector<std::string> lines_starting(std::string_view prefix) const {
        std::vector<std::string> found;
        std::istringstream in(text_);
        for (std::string line; std::getline(in, line);) {
            if (line.rfind(prefix, 0) == 0) found.push_back(line);
        }
        return found;
    }

    const std::string& text() const { return text_; }

  private:
    bool read_some(std::int64_t deadline) {
        if (eof_) return false;
        const std::int64_t left = deadline - now_ms();
        if (left <= 0) return false;
        struct pollfd pfd {
            fd_, POLLIN, 0
        };
        const int rc = ::poll(&pfd, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) return true;
        if (rc <= 0) return false;
        char buf[4096];
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) return true;
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        text_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_;
    std::string text_;
    bool eof_ = false;
};

// A client connection to a listening_socket::address ("127.0.0.1:P",
// "[::1]:P", "unix:/path", "unix:@name"), or -1.
inline int connect_to(const std::string& address) {
    sockaddr_storage storage{};
    socklen_t size = 0;
    if (address.rfind("unix:", 0) == 0) {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        const std::string path = address.substr(5);
        std::memcpy(un.sun_path, path.data(), path.size());
        size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
        if (path[0] == '@') un.sun_path[0] = '\0';
        std::memcpy(&storage, &un, sizeof un);
    } else if (address[0] == '[') {
        const std::size_t close = address.find(']');
        sockaddr_in6 in6{};
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(close + 2))));
        if (::inet_pton(AF_INET6, address.substr(1, close - 1).c_str(), &in6.sin6_addr) != 1) {
            return -1;
        }
        size = sizeof in6;
        std::memcpy(&storage, &in6, sizeof in6);
    } else {
        const std::size_t colon = address.rfind(':');
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
        if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &in.sin_addr) != 1) return -1;
        size = sizeof in;
        std::memcpy(&storage, &in, sizeof in);
    }
    const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&storage), size) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Connects, reads the server's answer to the end (bounded), closes.
inline std::string ask(const std::string& address) {
    const int fd = connect_to(address);
    if (fd < 0) return "cannot connect to " + address + ": " + std::strerror(errno);
    reader answer(fd);
    answer.wait_eof();
    ::close(fd);
    return answer.text();
}

inline int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Waits for a child of this process to end, bounded. Returns its wait status.
inline std::optional<int> wait_exit(pid_t pid, milliseconds timeout = patience) {
    const int fd = pidfd_open(pid);
    if (fd >= 0) {
        struct pollfd pfd {
            fd, POLLIN, 0
        };
        int rc;
        do {
            rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
        } while (rc < 0 && errno == EINTR);
        ::close(fd);
        if (rc == 0) return std::nullopt;
    }
    int status = 0;
    pid_t rc;
    do {
        rc = ::waitpid(pid, &status, fd >= 0 ? WNOHANG : 0);
    } while (rc < 0 && errno == EINTR);
    if (rc != pid) return std::nullopt;
    return status;
}

inline std::string describe_status(std::optional<int> status) {
    if (!status) return "still running after the test's patience ran out";
    return supervise::detail::decode_wait_status(*status).describe();
}

inline bool exited_with(std::optional<int> status, int code) {
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

inline bool killed_by(std::optional<int> status, int sig) {
    return status && WIFSIGNALED(*status) && WTERMSIG(*status) == sig;
}

// The children of `pid`, running or zombie (those of its main thread: the
// only one a test or a master under test forks from).
inline std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> found;
    std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                       "/children");
    for (long child; file >> child;) found.push_back(static_cast<pid_t>(child));
    return found;
}

// This process's children.
inline std::vector<pid_t> children() { return children_of(::getpid()); }

// How many descriptors `pid` holds open.
inline int open_fds(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    int count = 0;
    if (DIR* fds = ::opendir(dir.c_str())) {
        while (const dirent* entry = ::readdir(fds)) {
            if (entry->d_name[0] != '.') ++count;
        }
        ::closedir(fds);
    }
    return count;
}

// How many descriptors this process holds open, without the one that
// open_fds() holds while it reads the list.
inline int count_open_fds() { return open_fds(::getpid()) - 1; }

// True when this process has no child at all, running or zombie. Unlike
// reap_leftovers() it reaps nothing: an orphan that already died still counts.
inline bool no_child_left() {
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

// True in a user namespace that denies setgroups(2), as Bazel's linux-sandbox
// does: there a privilege drop (options::user) can only fail.
inline bool setgroups_denied() {
    char policy[8] = "";
    if (FILE* f = std::fopen("/proc/self/setgroups", "r")) {
        if (std::fscanf(f, "%7s", policy) != 1) policy[0] = '\0';
        std::fclose(f);
    }
    return std::strcmp(policy, "deny") == 0;
}

// Reaps every remaining descendant that ended up as our child (orphans come
// to us: we are a subreaper). Returns how many were still running and had to
// be killed; 0 means nothing was left behind.
inline int reap_leftovers() {
    int still_running = 0;
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid > 0) continue;
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) return still_running;  // ECHILD: nothing left
        // Something is still alive: find it through /proc and kill it.
        const std::vector<pid_t> alive = children();
        if (alive.empty()) return still_running + 1;
        for (pid_t p : alive) {
            ::kill(p, SIGKILL);
            ++still_running;
            wait_exit(p);
        }
    }
}

// A function run in a forked child that is the leader of a new process group.
// The destructor kills the group and reaps the child if the test did not.
class child {
  public:
    template <class Body>
    explicit child(Body&& body) {
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) std::abort();
        if (pid_ == 0) {
            ::setpgid(0, 0);
            int code = 99;
            try {
                code = body();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "test child threw: %s\n", e.what());
                code = 98;
            } catch (...) {
                code = 98;
            }
            std::fflush(nullptr);
            ::_exit(code);
        }
        ::setpgid(pid_, pid_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;
    ~child() {
        if (!reaped_) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
            wait_exit(pid_);
        }
    }

    pid_t pid() const { return pid_; }

    std::optional<int> wait(milliseconds timeout = patience) {
        auto status = wait_exit(pid_, timeout);
        if (status) reaped_ = true;
        return status;
    }

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
};

// A process under test in a harness::child that reports on a pipe the test
// reads. `body(report_fd)` runs in the child and returns its exit code.
class reporting_process {
  public:
    template <class Body>
    explicit reporting_process(Body body) : process_([&] { return body(report_.write_fd); }) {
        report_.close_write();
    }

    pid_t pid() const { return process_.pid(); }

    std::optional<int> wait(milliseconds timeout = patience) { return process_.wait(timeout); }

    // Sends SIGTERM; the wait status once the process has exited.
    std::optional<int> terminate() {
        ::kill(pid(), SIGTERM);
        return wait();
    }

    // The wait status once the process has exited and its reports were read
    // to the end (every writer, its children included, closed the pipe).
    std::optional<int> finish() {
        const std::optional<int> status = process_.wait();
        reports.wait_eof();
        return status;
    }

  private:
    pipe_pair report_;
    child process_;

  public:
    reader reports{report_.read_fd};
};

// The log pipe of a master_process, a base so that it exists before the
// reporting_process forks.
struct log_pipe {
    pipe_pair log_;
};

// A master under test: a reporting_process whose log is on a pipe of its own.
// `body(log_fd, report_fd)` builds the pool in the child, runs it, and
// returns the exit status.
class master_process : private log_pipe, public reporting_process {
  public:
    template <class Body>
    explicit master_process(Body body)
        : reporting_process([&](int report_fd) { return body(log_.write_fd, report_fd); }) {
        log_.close_write();
    }

    // The master's wait status once it has exited and its log (not its
    // reports, as reporting_process::finish) was read to the end.
    std::optional<int> finish() {
        const std::optional<int> status = wait();
        logs.wait_eof();
        return status;
    }

    reader logs{log_.read_fd};
};

// A program under test (the example daemon, supervise-exec) run in a
// harness::child, with stdout and stderr on pipes the test reads. When the
// object goes, the child's group is SIGKILLed and reaped, and so is whatever
// the program left behind: in a group of its own, it came back to us.
class program_process {
  public:
    ~program_process() {
        process_.reset();
        reap_leftovers();
    }
    program_process(const program_process&) = delete;
    program_process& operator=(const program_process&) = delete;

    pid_t pid() const { return process_->pid(); }

    // The program's wait status once it has exited, or nothing after `timeout`.
    std::optional<int> wait_exit(milliseconds timeout = patience) {
        if (!status_) status_ = process_->wait(timeout);
        return status_;
    }

  protected:
    program_process() = default;

    // Forks the child; `exec` runs there last and returns only if the exec
    // failed. Everything it uses must be built before: between fork and exec
    // the child makes only async-signal-safe calls.
    template <class Exec>
    void spawn(Exec exec) {
        const pid_t test_pid = ::getpid();
        process_.emplace([&] {
            // Its own group protects the test runner from the program, but
            // also hides the program from a runner that kills the test's group
            // on a timeout: if this test process dies, the program dies too.
            // Kept across execve.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != test_pid) return 127;
            ::dup2(out_pipe_.write_fd, STDOUT_FILENO);
            ::dup2(err_pipe_.write_fd, STDERR_FILENO);
            // Workers and commands that crash on purpose leave no core file.
            const struct rlimit no_core {};
            ::setrlimit(RLIMIT_CORE, &no_core);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            exec();
            return 127;
        });
        out_pipe_.close_write();
        err_pipe_.close_write();
    }

  private:
    pipe_pair out_pipe_;
    pipe_pair err_pipe_;
    std::optional<child> process_;
    std::optional<int> status_;

  public:
    reader out{out_pipe_.read_fd};
    reader err{err_pipe_.read_fd};
};

// The line of /proc/PID/syscall once the process's main thread is blocked in
// ppoll(2) (the master's wait: nothing it still had to do is left), or the
// last line read when `patience` ran out first. Its fields: the call's
// number, then its arguments (the timeout is the third).
inline std::string syscall_once_in_ppoll(pid_t pid) {
    std::string line;
    const std::int64_t deadline = now_ms() + patience.count();
    while (now_ms() < deadline) {
        if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/syscall").c_str(), "r")) {
            char buf[512] = {};
            if (std::fgets(buf, sizeof buf, f) != nullptr) line = buf;
            std::fclose(f);
        }
        if (std::strtol(line.c_str(), nullptr, 10) == SYS_ppoll) break;
        ::sched_yield();
    }
    return line;
}

// The line of /proc/PID/status that starts with `field` ("SigIgn"), without
// the field name, or "".
inline std::string status_field(pid_t pid, const std::string& field) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(file, line);) {
        if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 2);
    }
    return "";
}

// True if bit `sig` is set in a /proc signal mask ("0000000000000001" is SIGHUP).
inline bool has_signal(const std::string& mask, int sig) {
    return !mask.empty() && ((std::stoull(mask, nullptr, 16) >> (sig - 1)) & 1) != 0;
}

// A worker's report that it runs: "up <index> <pid> <pgid> <generation>".
inline void say_up(int report_fd, supervise::worker_context& ctx) {
    say(report_fd, "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()) + " " +
                       std::to_string(::getpgid(0)) + " " + std::to_string(ctx.generation()));
}

// A worker for tests: says it is up (say_up) and waits for a stop.
inline auto reporting_worker(int report_fd) {
    return [report_fd](supervise::worker_context& ctx) {
        say_up(report_fd, ctx);
        while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
        }
        return 0;
    };
}

// Has `pool` say its statistics as one line, "json {...}", on `fd` from a
// destroy hook named `name`: what they were when the pool stopped.
template <class Pool>
void say_json_on_destroy(Pool& pool, const char* name, int fd) {
    pool.on_destroy(name, [&pool, fd] { say(fd, "json " + pool.snapshot().json()); });
}

// Field 1 (pid) or 2 (pgid) of worker `index`'s first "up" line, or -1.
inline pid_t up_field(const reader& report, int index, int field) {
    for (const std::string& line : report.lines_starting("up ")) {
        int i = -1;
        long ids[2] = {0, 0};
        if (std::sscanf(line.c_str(), "up %d %ld %ld", &i, &ids[0], &ids[1]) >= 2 && i == index) {
            return static_cast<pid_t>(ids[field - 1]);
        }
    }
    return -1;
}

inline pid_t worker_pid(const reader& report, int index) { return up_field(report, index, 1); }
inline pid_t worker_pgid(const reader& report, int index) { return up_field(report, index, 2); }

// What a pool's constructor says about `opts`: the std::invalid_argument
// message, or "accepted".
template <class Strategy = supervise::shutdown_all>
std::string construction_error(const supervise::options& opts) {
    try {
        auto pool =
            supervise::make_pool<supervise::seed_master_signals, supervise::seed_worker_signals,
                                 Strategy>([](supervise::worker_context&) {}, opts);
        (void)pool;
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "accepted";
}

// A file of this workspace. $ENV_NAME names it when set (a sanitizer twin of a
// test names the twin of the program it runs, tools/build/testing.bzl), as a
// path under the runfiles tree under `bazel test`; otherwise the runfiles
// tree's copy of PATH, or PATH relative to the current directory.
inline std::string runfile(const std::string& path, const char* env_name) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    const char* override_path = std::getenv(env_name);
    const std::string chosen =
        override_path != nullptr && *override_path != '\0' ? override_path : path;
    if (srcdir != nullptr && chosen.front() != '/') {
        return std::string(srcdir) + "/" + (workspace != nullptr ? workspace : "supervise") + "/" +
               chosen;
    }
    return chosen;
}

// Parent pid from /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold
// spaces and parentheses, so parse after the last ')'), or 0.
inline pid_t parent_of(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(file, stat);
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::istringstream rest(stat.substr(paren + 1));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    return ppid;
}

// Options every master under test uses: logs and statistics on pipes the
// test reads, short timeouts so failures are quick.
inline supervise::options test_options(int workers, int log_fd, int stats_fd = -1) {
    supervise::options opts;
    opts.workers = workers;
    opts.log_fd = log_fd;
    opts.stats_fd = stats_fd;
    opts.shutdown_timeout = 5s;
    return opts;
}

}  // namespace harness

#endif  // SUPERVISE_TESTS_HARNESS_HPP
