// The example daemon (//examples/daemon) seen from outside, for the tests that
// run it (daemon_test, chaos_test, security_test): the binary in a process
// group of its own with stdout and stderr on pipes, its statistics table, and
// HTTP clients over real sockets on 127.0.0.1, including one meant to run in a
// forked client process (try_get), the parser of what such clients report, and
// client processes that keep the daemon under load.
//
// Every daemon runs in a harness::child and is SIGKILLed and reaped when its
// object goes, whatever happened. Its workers live in another group (the pool
// makes one); they die with the master (PR_SET_PDEATHSIG) and, the test binary
// being a child subreaper (test_main.cpp), come back to the test to be reaped.
#ifndef SUPERVISE_TESTS_DAEMON_CLIENT_HPP
#define SUPERVISE_TESTS_DAEMON_CLIENT_HPP

#include <dirent.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"

namespace daemon_client {

using namespace harness;

inline std::string daemon_binary() {
    // Outside Bazel: DAEMON_BINARY=/path/to/daemon ./daemon_test
    return runfile("examples/daemon/daemon", "DAEMON_BINARY");
}

// ---- processes ----

// True if `pid` has `sig` set to SIG_IGN (the SigIgn mask of /proc/PID/status).
inline bool ignores(pid_t pid, int sig) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(file, line);) {
        if (line.rfind("SigIgn:", 0) == 0) {
            const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
            return (mask >> (sig - 1)) & 1;
        }
    }
    return false;
}

// A program other than the daemon that speaks its command line and its log
// lines ("listening on", "ready:"): examples/asio and examples/libuv.
struct program_path {
    std::string path;
};

// The daemon binary run as a program_process, with this process's
// environment plus `extra_env` ("NAME=value" each).
class daemon_process : public program_process {
  public:
    explicit daemon_process(const std::vector<std::string>& args,
                            const std::vector<std::string>& extra_env = {})
        : daemon_process(program_path{daemon_binary()}, args, extra_env) {}

    daemon_process(const program_path& program, const std::vector<std::string>& args,
                   const std::vector<std::string>& extra_env = {}) {
        const std::string& path = program.path;
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(path.c_str()));
        for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
        argv.push_back(nullptr);
        std::vector<char*> envp;
        for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
        for (const std::string& e : extra_env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        spawn([&] { ::execve(path.c_str(), argv.data(), envp.data()); });
    }

    // Waits for the "listening on" and "ready" lines; returns the port.
    int start() {
        const auto listening = err.wait_for_line("listening on ");
        REQUIRE_MESSAGE(listening, "no 'listening on' line; stderr:\n" << err.text());
        REQUIRE_MESSAGE(err.wait_for_line(": ready: "), "no 'ready' line; stderr:\n" << err.text());
        const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
        REQUIRE(port > 0);
        return port;
    }

    void signal(int sig) {
        REQUIRE(pid() > 0);
        REQUIRE(::kill(pid(), sig) == 0);
    }

    // Sends SIGTERM; the daemon's wait status once it has exited.
    std::optional<int> terminate() {
        signal(SIGTERM);
        return wait_exit();
    }

    // True while the daemon has not exited.
    bool running() { return !wait_exit(0ms); }
};

// One parsed statistics table (the library prints it on SIGUSR1, or SIGUSR2
// with --preset nginx).
struct stats_table {
    pid_t master = 0;
    std::vector<pid_t> workers;  // by worker index; 0 for a slot without a process
    std::vector<std::string> states;
    std::vector<unsigned> restarts;
};

// Parses the first table at or after `from`, complete lines only: the header
// "statistics: master pid N, ...", a column header, then one row per worker
// ("  INDEX PID STATE UPTIME s RESTARTS ...", PID "-" when there is no
// process), each row indented by two spaces.
inline stats_table parse_table(const std::string& text, std::size_t from) {
    stats_table table;
    const std::size_t at = text.find("statistics: master pid ", from);
    if (at == std::string::npos) return table;
    std::istringstream lines(text.substr(at));
    std::string line;
    std::getline(lines, line);
    table.master =
        static_cast<pid_t>(std::atoi(line.c_str() + std::strlen("statistics: master pid ")));
    while (std::getline(lines, line) && !lines.eof() && line.rfind("  ", 0) == 0) {
        std::istringstream row(line);
        int index = 0;
        std::string pid, state, uptime, unit;
        unsigned restarts = 0;
        if (!(row >> index >> pid >> state >> uptime >> unit >> restarts)) continue;  // header
        if (index != static_cast<int>(table.workers.size())) break;
        table.workers.push_back(pid == "-" ? 0 : static_cast<pid_t>(std::stol(pid)));
        table.states.push_back(state);
        table.restarts.push_back(restarts);
    }
    return table;
}

// Sends `sig` (SIGUSR1, SIGUSR2 with --preset nginx) and returns the table it
// printed, with `workers` rows.
inline stats_table request_stats(daemon_process& daemon, int workers, int sig = SIGUSR1) {
    const std::size_t from = daemon.err.text().size();
    daemon.signal(sig);
    const bool complete = daemon.err.wait_until([&] {
        return parse_table(daemon.err.text(), from).workers.size() ==
               static_cast<std::size_t>(workers);
    });
    REQUIRE_MESSAGE(complete, "no statistics table with " << workers << " workers; stderr:\n"
                                                          << daemon.err.text());
    const stats_table table = parse_table(daemon.err.text(), from);
    // A slot that is not running shows pid 0; signalling "pid 0" would hit
    // this test's own process group, so such a table is a failure here.
    for (const pid_t pid : table.workers) {
        REQUIRE_MESSAGE(pid > 0, "a worker without a pid; stderr:\n" << daemon.err.text());
    }
    return table;
}

// "Ready" means every worker was forked, not that each one finished setting
// itself up. A worker answers SIGUSR1 with its own statistics line only from
// its loop, so once every worker has answered, all of them run worker code.
inline void wait_until_workers_run(daemon_process& daemon, const stats_table& table) {
    for (std::size_t index = 0; index < table.workers.size(); ++index) {
        const std::size_t from = daemon.err.text().size();
        REQUIRE(table.workers[index] > 0);  // never kill(0, ...): that is our group
        REQUIRE(::kill(table.workers[index], SIGUSR1) == 0);
        const std::string line = "worker " + std::to_string(index) + " pid " +
                                 std::to_string(table.workers[index]) + " generation";
        REQUIRE_MESSAGE(daemon.err.wait_for_line(line, from), "no statistics line from worker "
                                                                  << index << "; stderr:\n"
                                                                  << daemon.err.text());
    }
}

inline bool contains(const std::vector<pid_t>& pids, pid_t pid) {
    return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// ---- HTTP ----

// A socket connected to 127.0.0.1:port, or -1 (errno says why). On loopback
// the kernel completes the handshake at once, whether or not a worker has
// accepted yet.
inline int connect_local(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
}

// Everything the peer sends until it closes (or resets), or what arrived
// before the timeout.
inline std::string receive_until_closed(int fd, milliseconds timeout) {
    const std::int64_t deadline = now_ms() + timeout.count();
    std::string data;
    for (;;) {
        struct pollfd p {};
        p.fd = fd;
        p.events = POLLIN;
        const int rc =
            ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, deadline - now_ms())));
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) return data;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return data;  // closed, or reset
        data.append(buf, static_cast<std::size_t>(n));
    }
}

// A TCP connection to 127.0.0.1:port that closes itself.
class connection {
  public:
    explicit connection(int port) : fd_(connect_local(port)) {
        REQUIRE_MESSAGE(fd_ >= 0, "connect: " << std::strerror(errno));
    }
    ~connection() { ::close(fd_); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    void send(std::string_view data) {
        REQUIRE_MESSAGE(try_send(data), "send: " << std::strerror(errno));
    }

    // False (errno says why) if the server closed or reset the connection.
    bool try_send(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // Everything the server sends until it closes (Connection: close), or
    // what arrived before the timeout.
    std::string receive_all(milliseconds timeout = patience) {
        return receive_until_closed(fd_, timeout);
    }

    // One answer on a keep-alive connection: the head, then Content-Length
    // bytes of body. Empty if the server closed first or the timeout passed;
    // bytes of the next answer stay buffered for the next call.
    std::string receive_response(milliseconds timeout = patience) {
        const std::int64_t deadline = now_ms() + timeout.count();
        for (;;) {
            const std::size_t end = buffered_.find("\r\n\r\n");
            if (end != std::string::npos) {
                const std::size_t field = buffered_.find("Content-Length: ");
                if (field != std::string::npos && field < end) {
                    const std::size_t size =
                        end + 4 + std::strtoul(buffered_.c_str() + field + 16, nullptr, 10);
                    if (buffered_.size() >= size) {
                        std::string response = buffered_.substr(0, size);
                        buffered_.erase(0, size);
                        return response;
                    }
                }
            }
            struct pollfd p {};
            p.fd = fd_;
            p.events = POLLIN;
            const int rc =
                ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, deadline - now_ms())));
            if (rc < 0 && errno == EINTR) continue;
            if (rc <= 0) return {};
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return {};
            buffered_.append(buf, static_cast<std::size_t>(n));
        }
    }

    // True once the server closed its side (read returns 0) within `timeout`,
    // reading past any answer still buffered.
    bool closed_by_server(milliseconds timeout = patience) {
        buffered_ += receive_until_closed(fd_, timeout);
        struct pollfd p {};
        p.fd = fd_;
        p.events = POLLIN;
        if (::poll(&p, 1, 0) != 1) return false;
        char byte = 0;
        return ::recv(fd_, &byte, 1, MSG_DONTWAIT) == 0;
    }

    int fd() const { return fd_; }

  private:
    int fd_ = -1;
    std::string buffered_;
};

struct http_response {
    int status = 0;  // 0: no status line came back
    std::string head;
    std::string body;

    bool has_header(std::string_view line) const {
        return head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
    }
};

inline http_response parse_response(const std::string& raw) {
    http_response response;
    const std::size_t end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return response;
    response.status = std::atoi(raw.c_str() + 9);
    response.head = raw.substr(0, end + 2);
    response.body = raw.substr(end + 4);
    return response;
}

inline http_response http_exchange(int port, std::string_view request) {
    connection c(port);
    c.send(request);
    return parse_response(c.receive_all());
}

// One request on a connection of its own, which the daemon closes after the
// answer (Connection: close; keep-alive has tests of its own).
inline http_response http_get(int port, const std::string& path) {
    return http_exchange(
        port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

// "worker <index> pid <pid><suffix>\n" from GET / (and GET /hang).
struct served_by {
    int index = -1;
    pid_t pid = 0;
};

// The decimal number (one digit or more) at `at` in `text`, moving `at` past
// it; nothing when no digit is there or the number does not fit a long.
inline std::optional<long> number_at(std::string_view text, std::size_t& at) {
    long value = 0;
    const char* begin = text.data() + std::min(at, text.size());
    const char* end = text.data() + text.size();
    // Digits only: from_chars would also take a leading '-'.
    if (begin == end || *begin < '0' || *begin > '9') return std::nullopt;
    const std::from_chars_result read = std::from_chars(begin, end, value);
    if (read.ec != std::errc()) return std::nullopt;
    at = static_cast<std::size_t>(read.ptr - text.data());
    return value;
}

// True if `text` holds `word` at `at`, moving `at` past it.
inline bool literal_at(std::string_view text, std::size_t& at, std::string_view word) {
    if (text.substr(std::min(at, text.size()), word.size()) != word) return false;
    at += word.size();
    return true;
}

// "worker <index><between><pid><after>" at `at` in `text`, the shape of the
// daemon's replies and of its log lines about one worker; `end` is set past
// it. Nothing if the text there has another shape.
inline std::optional<served_by> worker_at(std::string_view text, std::size_t at,
                                          std::string_view between, std::string_view after,
                                          std::size_t* end = nullptr) {
    if (!literal_at(text, at, "worker ")) return std::nullopt;
    const std::optional<long> index = number_at(text, at);
    if (!index || !literal_at(text, at, between)) return std::nullopt;
    const std::optional<long> pid = number_at(text, at);
    if (!pid || !literal_at(text, at, after)) return std::nullopt;
    if (end != nullptr) *end = at;
    served_by who;
    who.index = static_cast<int>(*index);
    who.pid = static_cast<pid_t>(*pid);
    return who;
}

// Every "worker <index><between><pid><after>" anywhere in `text`, in order.
inline std::vector<served_by> worker_lines(std::string_view text, std::string_view between,
                                           std::string_view after) {
    std::vector<served_by> found;
    for (std::size_t at = text.find("worker "); at != std::string_view::npos;
         at = text.find("worker ", at + 1)) {
        if (const std::optional<served_by> who = worker_at(text, at, between, after)) {
            found.push_back(*who);
        }
    }
    return found;
}

// The reply's body is exactly "worker <index> pid <pid><suffix>\n", or the
// result says no worker (index -1, pid 0).
inline served_by parse_body(const std::string& body, const std::string& suffix = "") {
    std::size_t end = 0;
    const std::optional<served_by> who = worker_at(body, 0, " pid ", suffix + "\n", &end);
    return who && end == body.size() ? *who : served_by{};
}

// The worker that answers a GET /, which one must.
inline served_by answering_worker(int port) {
    const served_by who = parse_body(http_get(port, "/").body);
    REQUIRE_MESSAGE(who.pid > 0, "GET / was not answered by a worker");
    return who;
}

// GET /hang (--chaos): the worker that takes it ignores SIGTERM from then on
// (the reply comes after that) and serves no more. Returns which one it was.
inline served_by hang_a_worker(int port) {
    const http_response hang = http_get(port, "/hang");
    REQUIRE(hang.status == 200);
    const served_by hung = parse_body(hang.body, " hanging");
    REQUIRE(hung.pid > 0);
    return hung;
}

inline const std::vector<std::string> local = {"--listen", "127.0.0.1:0"};

inline std::vector<std::string> with_local(std::vector<std::string> args) {
    args.insert(args.begin(), local.begin(), local.end());
    return args;
}

// ---- the daemon's log ----

// The first "worker <index><between><pid><after>" in the daemon's stderr (of
// slot `slot` when given), waiting (bounded) for it; index -1 and pid 0 if
// none came.
inline served_by wait_for_worker_line(daemon_process& daemon, std::string_view between,
                                      std::string_view after,
                                      std::optional<int> slot = std::nullopt) {
    const auto first = [&]() -> std::optional<served_by> {
        for (const served_by& who : worker_lines(daemon.err.text(), between, after)) {
            if (!slot || who.index == *slot) return who;
        }
        return std::nullopt;
    };
    daemon.err.wait_until([&] { return first().has_value(); });
    return first().value_or(served_by{});
}

// The worker that took GET /crash ("worker N pid P: GET /crash: calling abort()").
inline served_by crashed_worker(daemon_process& daemon) {
    return wait_for_worker_line(daemon, " pid ", ": GET /crash");
}

// The successor in slot `index` ("worker N (pid P) is back, generation G").
inline served_by successor(daemon_process& daemon, int index, int generation) {
    return wait_for_worker_line(
        daemon, " (pid ", ") is back, generation " + std::to_string(generation) + "\n", index);
}

// ---- a worker's sockets ----

// How many sockets `pid` holds open (/proc/PID/fd links read "socket:[N]").
inline int open_sockets(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
    int sockets = 0;
    if (DIR* fds = ::opendir(dir.c_str())) {
        while (const dirent* entry = ::readdir(fds)) {
            char target[64];
            const ssize_t n = ::readlink((dir + entry->d_name).c_str(), target, sizeof target);
            if (n > 7 && std::string_view(target, 7) == "socket:") ++sockets;
        }
        ::closedir(fds);
    }
    return sockets;
}

// Waits, bounded, until one of `workers` holds `connections` sockets beside
// its listening one: it has accepted them. Returns its pid, or 0. Nothing
// tells a client that its connection was accepted, so this looks at /proc, a
// millisecond apart.
inline pid_t wait_until_accepted(const std::vector<pid_t>& workers, int connections = 1) {
    const std::int64_t deadline = now_ms() + patience.count();
    for (;;) {
        for (const pid_t pid : workers) {
            if (open_sockets(pid) >= 1 + connections) return pid;
        }
        if (now_ms() > deadline) return 0;
        ::poll(nullptr, 0, 1);
    }
}

// ---- a client in a process of its own ----

// One GET / on a fresh connection, for a forked client (no doctest there):
// "ok <index> <pid>", or "fail <what went wrong>" on one line.
inline std::string try_get(int port) {
    const int fd = connect_local(port);
    if (fd < 0) return std::string("fail connect: ") + std::strerror(errno);
    const std::string_view request =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    const ssize_t sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    const int send_error = errno;
    const std::string raw = sent > 0 ? receive_until_closed(fd, 5s) : "";
    ::close(fd);
    if (sent != static_cast<ssize_t>(request.size())) {
        return std::string("fail send: ") + std::strerror(send_error);
    }
    const http_response response = parse_response(raw);
    const served_by who = parse_body(response.body);
    if (response.status != 200 ||
        !response.has_header("Content-Length: " + std::to_string(response.body.size())) ||
        who.pid <= 0) {
        std::string shown = raw.substr(0, 60);
        std::replace_if(
            shown.begin(), shown.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
        return "fail reply (" + std::to_string(raw.size()) + " bytes): '" + shown + "'";
    }
    return "ok " + std::to_string(who.index) + " " + std::to_string(who.pid);
}

// What the client reported: one line per request, "<start ms> ok <index>
// <pid>" or "<start ms> fail ...", parsed as the lines come in.
class client_replies {
  public:
    struct reply {
        std::int64_t started_ms = 0;
        bool ok = false;
        pid_t pid = 0;
        std::string line;
    };

    explicit client_replies(int fd) : lines_(fd) {}

    // Waits, bounded, until at least `n` replies came in (that started after
    // `since`); returns whether they did.
    bool wait_for(std::size_t n, std::int64_t since = 0) {
        return lines_.wait_until([&] {
            parse();
            return static_cast<std::size_t>(
                       std::count_if(replies_.begin(), replies_.end(),
                                     [&](const reply& r) { return r.started_ms > since; })) >= n;
        });
    }
    // Takes in what arrives during `period`: clients block once their pipe
    // is full, so a test that does something else meanwhile calls this
    // between its steps to keep the load flowing.
    void read_for(milliseconds period) {
        lines_.wait_until([] { return false; }, period);
        parse();
    }
    void read_to_end() {
        lines_.wait_eof();
        parse();
    }
    const std::vector<reply>& all() { return parse(), replies_; }

  private:
    void parse() {
        const std::string& text = lines_.text();
        for (std::size_t end; (end = text.find('\n', parsed_)) != std::string::npos;) {
            reply r;
            r.line = text.substr(parsed_, end - parsed_);
            parsed_ = end + 1;
            char word[8] = "";
            int index = 0;
            long pid = 0;
            long long started = 0;
            const int fields =
                std::sscanf(r.line.c_str(), "%lld %7s %d %ld", &started, word, &index, &pid);
            r.started_ms = started;
            r.ok = fields == 4 && std::string_view(word) == "ok";
            r.pid = static_cast<pid_t>(pid);
            replies_.push_back(r);
        }
    }

    reader lines_;
    std::size_t parsed_ = 0;
    std::vector<reply> replies_;
};

// `clients` processes, each sending GET / on a fresh connection after the
// previous reply, until stop() (or `give_up`). Every reply is one line on a
// shared pipe (one write(2) of less than PIPE_BUF: lines never interleave),
// read through client_replies.
class load {
  public:
    load(int port, int clients, milliseconds give_up) {
        for (int i = 0; i < clients; ++i) {
            processes_.push_back(std::make_unique<child>([&] {
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                stop_.close_write();
                results_.close_read();
                const std::int64_t end = now_ms() + give_up.count();
                struct pollfd told {};
                told.fd = stop_.read_fd;
                told.events = POLLIN;
                while (now_ms() < end && ::poll(&told, 1, 0) == 0) {
                    const std::int64_t started = now_ms();
                    say(results_.write_fd, std::to_string(started) + " " + try_get(port));
                }
                return 0;
            }));
        }
        results_.close_write();
        stop_.close_read();
    }
    load(const load&) = delete;
    load& operator=(const load&) = delete;

    // Closes the stop pipe, reads the clients' last replies, and waits for
    // every client. Reading comes first: a client blocked on a full pipe
    // (one that fails at once, against a dead daemon, fills it in a moment)
    // would never see the stop, and end of file comes once all have exited.
    void stop() {
        stop_.close_write();
        replies.read_to_end();
        for (auto& process : processes_) CHECK(exited_with(process->wait(), 0));
    }

    std::size_t failures() {
        const auto& all = replies.all();
        return static_cast<std::size_t>(
            std::count_if(all.begin(), all.end(), [](const auto& r) { return !r.ok; }));
    }

  private:
    pipe_pair results_;
    pipe_pair stop_;
    std::vector<std::unique_ptr<child>> processes_;

  public:
    client_replies replies{results_.read_fd};
};

}  // namespace daemon_client

#endif  // SUPERVISE_TESTS_DAEMON_CLIENT_HPP
