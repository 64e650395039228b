// Listeners (options::listeners, socket activation), with real sockets and
// real processes: bound by the pool's constructor (TCP v4, v6, unix), found by
// the workers by name and index, clients served through them; every kind of
// bad input refused with nothing left open; systemd's protocol (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES) taken only when it is this process's, checked,
// and hidden from the workers; failures injected through the seam; the
// sockets and unix socket files kept until every worker has exited.
//
// Everything that changes the environment or descriptors 3.. runs in a child
// process (harness::master_process), never in the test binary itself.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "harness.hpp"

using namespace harness;

namespace {

// A directory of its own under /tmp: Bazel's TEST_TMPDIR is longer than the
// 107 bytes a unix socket path may have. Removed with what is left in it.
class scratch {
  public:
    scratch() {
        char dir[] = "/tmp/supervise-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        path_ = dir;
    }
    ~scratch() {
        for (const std::string& name : made_) ::unlink(name.c_str());
        ::rmdir(path_.c_str());
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;
    // A path in the directory, removed at the end if the test left it.
    std::string file(const std::string& name) {
        made_.push_back(path_ + "/" + name);
        return made_.back();
    }

  private:
    std::string path_;
    std::vector<std::string> made_;
};

bool exists(const std::string& path) {
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0;
}

// A listening socket of the test's making, as systemd would hand it over.
int listening_tcp_socket(bool listening = true, int type = SOCK_STREAM) {
    const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
    if (listening) REQUIRE(::listen(fd, 16) == 0);
    return fd;
}

// In a child: moves `log_fd` and `report_fd` out of the way, then puts
// `sockets` at descriptors 3, 4, ... without close-on-exec, as systemd does.
// Whatever else the child inherited below 100 is closed, so that a
// descriptor LISTEN_FDS counts beyond `sockets` is not open.
void hand_over(std::vector<int> sockets, int& log_fd, int& report_fd) {
    log_fd = ::fcntl(log_fd, F_DUPFD_CLOEXEC, 100);
    report_fd = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 100);
    for (int& fd : sockets) fd = ::fcntl(fd, F_DUPFD, 200);
    for (int fd = 3; fd < 100; ++fd) ::close(fd);
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        ::dup2(sockets[i], 3 + static_cast<int>(i));
        ::close(sockets[i]);
    }
}

std::string or_unset(const char* value) { return value != nullptr ? value : "(unset)"; }

// The three variables as one line.
std::string activation_variables() {
    return "LISTEN_FDS=" + or_unset(std::getenv("LISTEN_FDS")) +
           " LISTEN_PID=" + or_unset(std::getenv("LISTEN_PID")) +
           " LISTEN_FDNAMES=" + or_unset(std::getenv("LISTEN_FDNAMES"));
}

// "name fd address inherited cloexec nonblock" for each listener.
template <class Pool>
void report_listeners(int report_fd, const Pool& pool) {
    for (const supervise::listening_socket& s : pool.listeners()) {
        const int fd_flags = ::fcntl(s.fd, F_GETFD);
        const int fl_flags = ::fcntl(s.fd, F_GETFL);
        say(report_fd, "listener " + s.name + " " + std::to_string(s.fd) + " " + s.address + " " +
                           (s.inherited ? "inherited" : "bound") + " cloexec " +
                           std::to_string((fd_flags & FD_CLOEXEC) != 0) + " nonblock " +
                           std::to_string((fl_flags & O_NONBLOCK) != 0));
    }
}

// The address part of a "listener NAME FD ADDRESS ..." report.
std::string reported_address(reader& reports, const std::string& name) {
    const auto line = reports.wait_for_line("listener " + name + " ");
    REQUIRE_MESSAGE(line, "no listener " << name << " reported:\n" << reports.text());
    std::istringstream words(*line);
    std::string word, reported_name, fd, address;
    words >> word >> reported_name >> fd >> address;
    return address;
}

// Serves one connection on each listener in order, looked up by index and
// by name (which must agree), answering "served NAME INDEX"; then waits for
// its stop.
auto serving_worker(int report_fd) {
    return [report_fd](supervise::worker_context& ctx) {
        say(report_fd, "worker up, " + activation_variables());
        for (std::size_t i = 0; i < ctx.listeners().size(); ++i) {
            const supervise::listening_socket& s = ctx.listeners()[i];
            const int fd = ctx.listener(i);
            if (fd != ctx.listener(s.name) || fd != s.fd) return 3;
            for (;;) {
                if (ctx.wait_readable(fd) == supervise::wait_status::stop_requested) return 0;
                const int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (client < 0) continue;  // EAGAIN: woken for nothing
                const std::string answer = "served " + s.name + " " + std::to_string(i) + "\n";
                (void)!::write(client, answer.data(), answer.size());
                ::close(client);
                break;
            }
        }
        while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
        }
        return 0;
    };
}

supervise::listener_spec spec(std::string name, std::string address) {
    supervise::listener_spec s;
    s.name = std::move(name);
    s.address = std::move(address);
    return s;
}

// What a pool's constructor says about these listeners: the exception's
// message, or "accepted".
template <class System = supervise::posix_system>
std::string construction_error(const std::vector<supervise::listener_spec>& specs,
                               std::error_code* code = nullptr) {
    supervise::options opts;
    opts.workers = 1;
    opts.log_fd = -1;
    opts.listeners = specs;
    try {
        auto pool = supervise::make_pool<supervise::default_master_signals,
                                         supervise::default_worker_signals, supervise::shutdown_all,
                                         System>([](supervise::worker_context&) {}, opts);
        (void)pool;
    } catch (const std::system_error& e) {
        if (code != nullptr) *code = e.code();
        return e.what();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST_CASE("listeners on IPv4, IPv6 and a unix socket: workers serve on them by index and name") {
    scratch dir;
    const std::string path = dir.file("app.sock");
    master_process master([&](int log_fd, int report_fd) {
        supervise::options opts = test_options(1, log_fd);
        opts.listeners = {spec("web", "127.0.0.1:0"), spec("six", "[::1]:0"),
                          spec("local", "unix:" + path)};
        opts.listeners[2].unix_mode = 0600;
        supervise::pool pool(serving_worker(report_fd), opts);
        report_listeners(report_fd, pool);
        return pool.run().exit_status;
    });
    const std::string web = reported_address(master.reports, "web");
    const std::string six = reported_address(master.reports, "six");
    const std::string local = reported_address(master.reports, "local");
    CHECK(web.rfind("127.0.0.1:", 0) == 0);
    CHECK(web != "127.0.0.1:0");  // the port the kernel chose
    CHECK(six.rfind("[::1]:", 0) == 0);
    CHECK(local == "unix:" + path);
    // Close-on-exec and non-blocking, bound here.
    CHECK(master.reports.occurrences("bound cloexec 1 nonblock 1") == 3);

    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK(S_ISSOCK(info.st_mode));
    CHECK((info.st_mode & 07777) == 0600);

    CHECK(ask(web) == "served web 0\n");
    CHECK(ask(six) == "served six 1\n");
    CHECK(ask(local) == "served local 2\n");
    CHECK(master.reports.wait_for("worker up, LISTEN_FDS=(unset) LISTEN_PID=(unset)"));

    const auto status = master.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status) << "\n" << master.logs.text());
    // The pool removed the file it bound, once it was done with it.
    CHECK_FALSE(exists(path));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("the unix socket and its file outlive every worker and every destroy hook") {
    scratch dir;
    const std::string path = dir.file("late.sock");
    master_process master([&](int log_fd, int report_fd) {
        supervise::options opts = test_options(2, log_fd);
        opts.listeners = {spec("local", "unix:" + path)};
        supervise::pool pool(
            [report_fd, &path](supervise::worker_context& ctx) {
                say_up(report_fd, ctx);
                while (ctx.wait_readable(-1) != supervise::wait_status::stop_requested) {
                }
                // Asked to stop, a worker may still finish what it queued:
                // the socket must still be there to be reached by its path.
                const int client = connect_to("unix:" + path);
                say(report_fd, "stopping, connect " + std::to_string(client >= 0));
                return 0;
            },
            opts);
        pool.on_destroy("look", [&] {
            say(report_fd, "hook: file " + std::to_string(exists(path)) + " fd " +
                               std::to_string(::fcntl(pool.listener("local"), F_GETFD) != -1));
        });
        const int status = pool.run().exit_status;
        say(report_fd,
            "after run: fd " + std::to_string(::fcntl(pool.listener("local"), F_GETFD) != -1));
        return status;
    });
    REQUIRE(master.reports.wait_for("up ", 2));
    const auto status = master.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status) << "\n" << master.logs.text());
    master.reports.wait_eof();
    CHECK(master.reports.occurrences("stopping, connect 1") == 2);
    CHECK(master.reports.occurrences("hook: file 1 fd 1") == 1);
    CHECK(master.reports.occurrences("after run: fd 1") == 1);
    CHECK_FALSE(exists(path));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("an address in use: a clear error, and nothing left open or behind") {
    scratch dir;
    const std::string path = dir.file("first.sock");
    const int taken = listening_tcp_socket();
    sockaddr_in in{};
    socklen_t size = sizeof in;
    REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&in), &size) == 0);
    const std::string address = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));

    const int open_before = count_open_fds();
    std::error_code code;
    const std::string error =
        construction_error({spec("first", "unix:" + path), spec("second", address)}, &code);
    CHECK(error ==
          "supervise: listener 'second' (" + address + "): bind: " + std::strerror(EADDRINUSE));
    CHECK(code == std::errc::address_in_use);
    CHECK(count_open_fds() == open_before);
    CHECK_FALSE(exists(path));  // the first listener's file went with it

    // The same for a unix socket whose file is there already: it is not the
    // pool's to remove.
    const std::string other = dir.file("other.sock");
    REQUIRE(construction_error({spec("x", "unix:" + other)}) == "accepted");
    const int squatter = ::open(other.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(squatter >= 0);
    ::close(squatter);
    CHECK(construction_error({spec("x", "unix:" + other)}) ==
          "supervise: listener 'x' (unix:" + other + "): bind: " + std::strerror(EADDRINUSE));
    CHECK(exists(other));
    CHECK(count_open_fds() == open_before);
    ::close(taken);
}

TEST_CASE("a unix socket file replaced since it was bound is not the pool's to remove") {
    scratch dir;
    const std::string path = dir.file("replaced.sock");
    int replacement = -1;
    {
        supervise::options opts;
        opts.workers = 1;
        opts.log_fd = -1;
        opts.listeners = {spec("local", "unix:" + path)};
        supervise::pool pool([](supervise::worker_context&) {}, opts);
        // Another program removed it and bound its own socket there.
        REQUIRE(::unlink(path.c_str()) == 0);
        replacement = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, path.data(), path.size());
        REQUIRE(::bind(replacement, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
    }
    CHECK(exists(path));
    ::close(replacement);
}

TEST_CASE("bad listener specs are refused before any socket exists") {
    const int open_before = count_open_fds();
    const std::string long_path = "/tmp/" + std::string(103, 'x');  // 108 bytes
    struct bad {
        supervise::listener_spec spec;
        std::string message;
    };
    auto with = [](supervise::listener_spec s, auto change) {
        change(s);
        return s;
    };
    const std::vector<bad> cases = {
        {spec("web", "localhost:80"),
         "supervise: listener 'web': cannot use address 'localhost:80': 'localhost' is not an "
         "IPv4 address (IPv6 goes in brackets: [::1]:PORT)"},
        {spec("web", "127.0.0.1"),
         "supervise: listener 'web': cannot use address '127.0.0.1': expected HOST:PORT, "
         "[IPV6]:PORT, unix:/path or unix:@name, with PORT 0..65535"},
        {spec("web", "127.0.0.1:65536"),
         "supervise: listener 'web': cannot use address '127.0.0.1:65536': expected HOST:PORT, "
         "[IPV6]:PORT, unix:/path or unix:@name, with PORT 0..65535"},
        {spec("web", "::1:80"),
         "supervise: listener 'web': cannot use address '::1:80': '::1' is not an IPv4 address "
         "(IPv6 goes in brackets: [::1]:PORT)"},
        {spec("web", "[::g]:80"),
         "supervise: listener 'web': cannot use address '[::g]:80': '::g' is not an IPv6 address"},
        {spec("web", "unix:relative.sock"),
         "supervise: listener 'web': cannot use address 'unix:relative.sock': a unix socket "
         "address is unix:/absolute/path or unix:@abstract-name"},
        {spec("web", "unix:" + long_path),
         "supervise: listener 'web': cannot use address 'unix:" + long_path +
             "': the socket's path is 108 bytes, longer than the 107 a unix socket address "
             "holds"},
        {spec("", "127.0.0.1:0"),
         "supervise: listener 1: the name must be 1 to 255 printable ASCII characters without "
         "':' (got '')"},
        {spec("a:b", "127.0.0.1:0"),
         "supervise: listener 'a:b': the name must be 1 to 255 printable ASCII characters "
         "without ':' (got 'a:b')"},
        {with(spec("web", "127.0.0.1:0"), [](auto& s) { s.backlog = 0; }),
         "supervise: listener 'web': backlog must be 1 or more (got 0)"},
        {with(spec("web", "127.0.0.1:0"), [](auto& s) { s.ipv6_only = true; }),
         "supervise: listener 'web': ipv6_only applies to an [IPV6]:PORT address (got "
         "'127.0.0.1:0')"},
        {with(spec("web", "127.0.0.1:0"), [](auto& s) { s.unix_mode = 0600; }),
         "supervise: listener 'web': unix_mode is -1 or a file mode 0..07777, for a unix:/path "
         "address (got 384 for '127.0.0.1:0')"},
        {with(spec("web", "unix:/tmp/x.sock"), [](auto& s) { s.unix_mode = 010000; }),
         "supervise: listener 'web': unix_mode is -1 or a file mode 0..07777, for a unix:/path "
         "address (got 4096 for 'unix:/tmp/x.sock')"},
    };
    for (const bad& c : cases) {
        CAPTURE(c.spec.address);
        // After a good listener: it must not be left open either.
        CHECK(construction_error({spec("good", "127.0.0.1:0"), c.spec}) == c.message);
    }
    CHECK(construction_error({spec("web", "127.0.0.1:0"), spec("web", "127.0.0.1:0")}) ==
          "supervise: listener 'web': the name is used twice");
    CHECK(count_open_fds() == open_before);

    // The longest path that fits, and an abstract name, are fine.
    const std::string longest = "/tmp/" + std::string(102, 'y');
    CHECK(construction_error({spec("long", "unix:" + longest)}) == "accepted");
    CHECK_FALSE(exists(longest));
    CHECK(construction_error({spec(
              "abstract", "unix:@supervise-test-" + std::to_string(::getpid()))}) == "accepted");
    CHECK(count_open_fds() == open_before);
}

TEST_CASE("IPv6: [::]:PORT is dual-stack by default and IPv6 only with ipv6_only") {
    supervise::options opts;
    opts.workers = 1;
    opts.log_fd = -1;
    opts.listeners = {spec("dual", "[::]:0"), spec("only", "[::]:0")};
    opts.listeners[1].ipv6_only = true;
    supervise::pool pool([](supervise::worker_context&) {}, opts);
    const auto port_of = [](const std::string& address) {
        return address.substr(address.rfind(':') + 1);
    };
    const std::string dual = port_of(pool.listeners()[0].address);
    const std::string only = port_of(pool.listeners()[1].address);
    int v6_only = -1;
    socklen_t size = sizeof v6_only;
    REQUIRE(::getsockopt(pool.listener("only"), IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, &size) == 0);
    CHECK(v6_only == 1);
    REQUIRE(::getsockopt(pool.listener("dual"), IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, &size) == 0);
    CHECK(v6_only == 0);
    // An IPv4 client reaches the dual-stack one only.
    const int through_v4 = connect_to("127.0.0.1:" + dual);
    CHECK(through_v4 >= 0);
    if (through_v4 >= 0) ::close(through_v4);
    CHECK(connect_to("127.0.0.1:" + only) < 0);
}

TEST_CASE("the program finds listeners by name and index; an unknown one is std::out_of_range") {
    supervise::options opts;
    opts.workers = 1;
    opts.log_fd = -1;
    opts.listeners = {spec("web", "127.0.0.1:0"), spec("admin", "127.0.0.1:0")};
    supervise::pool pool([](supervise::worker_context&) {}, opts);
    REQUIRE(pool.listeners().size() == 2);
    CHECK(pool.listener("web") == pool.listener(0));
    CHECK(pool.listener("admin") == pool.listener(1));
    CHECK_FALSE(pool.listeners()[0].inherited);
    CHECK_THROWS_WITH_AS(pool.listener("nope"),
                         "supervise: no listener named 'nope' (listeners: web, admin)",
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(pool.listener(2), "supervise: no listener 2 (there are 2)",
                         std::out_of_range);

    // Moving the pool moves the sockets: one owner closes them, once.
    const int fd = pool.listener("web");
    {
        auto moved = std::move(pool);
        CHECK(moved.listener("web") == fd);
        CHECK(pool.listeners().empty());
    }
    CHECK(::fcntl(fd, F_GETFD) == -1);
}

TEST_CASE("no_fork: the inline worker sees the same listeners") {
    master_process master([](int log_fd, int report_fd) {
        supervise::options opts = test_options(1, log_fd);
        opts.no_fork = true;
        opts.listeners = {spec("web", "127.0.0.1:0")};
        std::optional<int> master_fd;
        auto pool = supervise::make_pool(
            [&](supervise::worker_context& ctx) {
                say(report_fd, "inline " + std::to_string(ctx.listener("web") == *master_fd));
                return 0;
            },
            opts);
        master_fd = pool.listener("web");
        return pool.run().exit_status;
    });
    master.finish();
    CHECK(master.reports.wait_for("inline 1"));
}

// ---- socket activation ----

TEST_CASE("socket activation: systemd's sockets are taken, checked, and hidden from workers") {
    master_process master([](int log_fd, int report_fd) {
        hand_over({listening_tcp_socket(), listening_tcp_socket()}, log_fd, report_fd);
        ::setenv("LISTEN_FDS", "2", 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDNAMES", "web:admin", 1);
        supervise::options opts = test_options(1, log_fd);
        // Configured, so it must be among systemd's; its address is then not bound.
        opts.listeners = {spec("admin", "127.0.0.1:1")};
        supervise::pool pool(serving_worker(report_fd), opts);
        report_listeners(report_fd, pool);
        say(report_fd, "master after construction: " + activation_variables());
        return pool.run().exit_status;
    });
    CHECK(master.reports.wait_for("listener web 3 127.0.0.1:"));
    CHECK(master.reports.wait_for("listener admin 4 127.0.0.1:"));
    // Close-on-exec and non-blocking from now on, like the pool's own.
    CHECK(master.reports.occurrences("inherited cloexec 1 nonblock 1") == 2);
    CHECK(master.reports.wait_for(
        "master after construction: LISTEN_FDS=(unset) LISTEN_PID=(unset) LISTEN_FDNAMES=(unset)"));
    CHECK(master.reports.wait_for(
        "worker up, LISTEN_FDS=(unset) LISTEN_PID=(unset) LISTEN_FDNAMES=(unset)"));
    CHECK(ask(reported_address(master.reports, "web")) == "served web 0\n");
    CHECK(ask(reported_address(master.reports, "admin")) == "served admin 1\n");
    CHECK(
        master.logs.wait_for("socket activation: 2 listeners from systemd: web (fd 3, 127.0.0.1:"));
    const auto status = master.terminate();
    CHECK_MESSAGE(exited_with(status, 0), describe_status(status) << "\n" << master.logs.text());
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("socket activation: without LISTEN_FDNAMES every socket is 'unknown'") {
    master_process master([](int log_fd, int report_fd) {
        hand_over({listening_tcp_socket()}, log_fd, report_fd);
        ::setenv("LISTEN_FDS", "1", 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        supervise::options opts = test_options(1, log_fd);
        supervise::pool pool([](supervise::worker_context&) {}, opts);
        report_listeners(report_fd, pool);
        return 0;
    });
    master.finish();
    CHECK(master.reports.wait_for("listener unknown 3 127.0.0.1:"));
}

TEST_CASE("socket activation: LISTEN_FDS for another pid is ignored with a log line") {
    master_process master([](int log_fd, int report_fd) {
        hand_over({listening_tcp_socket()}, log_fd, report_fd);
        ::setenv("LISTEN_FDS", "1", 1);
        // The test's pid: systemd's variables for a parent, left in the
        // environment it passed down.
        ::setenv("LISTEN_PID", std::to_string(::getppid()).c_str(), 1);
        ::setenv("LISTEN_FDNAMES", "web", 1);
        supervise::options opts = test_options(1, log_fd);
        opts.listeners = {spec("web", "127.0.0.1:0")};
        supervise::pool pool([](supervise::worker_context&) {}, opts);
        report_listeners(report_fd, pool);
        say(report_fd, "after: " + activation_variables() + " fd3 " +
                           std::to_string(::fcntl(3, F_GETFD) != -1));
        return 0;
    });
    const auto status = master.finish();
    CHECK(exited_with(status, 0));
    master.reports.wait_eof();
    // The configured listener is bound (not fd 3), the variables are gone,
    // the descriptor is left alone.
    CHECK(master.reports.text().find("listener web 3 ") == std::string::npos);
    CHECK(master.reports.occurrences(" bound cloexec 1") == 1);
    CHECK(master.reports.wait_for(
        "after: LISTEN_FDS=(unset) LISTEN_PID=(unset) LISTEN_FDNAMES=(unset) fd3 1"));
    CHECK(master.logs.wait_for("socket activation: LISTEN_PID=" + std::to_string(::getpid()) +
                               " is not this process (pid " + std::to_string(master.pid()) +
                               "): LISTEN_FDS=1 ignored"));
}

// What the constructor of a pool in a child says when it is handed `sockets`
// with the three variables (LISTEN_PID this child's), and the variables and
// fd 3 after it.
template <class Make>
std::string activation_error(
    Make make_sockets, const std::string& fds, const char* names,
    const std::vector<supervise::listener_spec>& specs = {},
    supervise::socket_activation_mode mode = supervise::socket_activation_mode::automatic) {
    master_process master([&](int log_fd, int report_fd) {
        hand_over(make_sockets(), log_fd, report_fd);
        ::setenv("LISTEN_FDS", fds.c_str(), 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        if (names != nullptr) ::setenv("LISTEN_FDNAMES", names, 1);
        supervise::options opts = test_options(1, log_fd);
        opts.listeners = specs;
        opts.socket_activation = mode;
        try {
            supervise::pool pool([](supervise::worker_context&) {}, opts);
            report_listeners(report_fd, pool);
            say(report_fd, "accepted");
        } catch (const std::exception& e) {
            say(report_fd, e.what());
        }
        const bool kept = std::getenv("LISTEN_FDS") != nullptr && std::getenv("LISTEN_PID");
        say(report_fd, std::string("variables ") + (kept ? "kept" : "unset") + ", fd 3 " +
                           (::fcntl(3, F_GETFD) != -1 ? "open" : "closed"));
        return 0;
    });
    master.finish();
    master.reports.wait_eof();
    return master.reports.text();
}

TEST_CASE("socket activation: a descriptor that is not a socket is refused, nothing changed") {
    const std::string text = activation_error(
        [] {
            pipe_pair p;
            const int fd = ::fcntl(p.read_fd, F_DUPFD_CLOEXEC, 0);
            return std::vector<int>{fd};
        },
        "1", "web");
    CHECK(text ==
          "supervise: socket activation: fd 3 ('web', of LISTEN_FDS=1) is not a socket\n"
          "variables kept, fd 3 open\n");
}

TEST_CASE("socket activation: a socket that is not listening, or not a stream, is refused") {
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket(false)}; }, "1",
                           "web") ==
          "supervise: socket activation: fd 3 ('web', of LISTEN_FDS=1) is not listening (no "
          "listen(2) on it)\nvariables kept, fd 3 open\n");
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket(false, SOCK_DGRAM)}; },
                           "1", "web") ==
          "supervise: socket activation: fd 3 ('web', of LISTEN_FDS=1) is not a stream socket "
          "(SO_TYPE 2)\nvariables kept, fd 3 open\n");
    // The second of two is the bad one: the first is not changed either.
    CHECK(activation_error(
              [] {
                  return std::vector<int>{listening_tcp_socket(), listening_tcp_socket(false)};
              },
              "2", "a:b") ==
          "supervise: socket activation: fd 4 ('b', of LISTEN_FDS=2) is not listening (no "
          "listen(2) on it)\nvariables kept, fd 3 open\n");
}

TEST_CASE("socket activation: a name that systemd did not pass, or names that do not add up") {
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket()}; }, "1", "other",
                           {spec("web", "127.0.0.1:0")}) ==
          "supervise: socket activation: no socket named 'web' among those systemd passed "
          "(other); the names come from FileDescriptorName= of the socket unit\n"
          "variables kept, fd 3 open\n");
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket()}; }, "1", "a:b") ==
          "supervise: socket activation: LISTEN_FDNAMES='a:b' names 2 descriptors, "
          "LISTEN_FDS=1\nvariables kept, fd 3 open\n");
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket()}; }, "1x", "a") ==
          "supervise: socket activation: LISTEN_FDS=1x is not a number of descriptors\n"
          "variables kept, fd 3 open\n");
    // A descriptor LISTEN_FDS counts that is not there.
    CHECK(activation_error([] { return std::vector<int>{listening_tcp_socket()}; }, "2", "a:b")
              .rfind("supervise: socket activation: fd 4 ('b', of LISTEN_FDS=2) is not open: ",
                     0) == 0);
}

TEST_CASE("socket activation off: the variables and descriptors are left to the program") {
    const std::string text =
        activation_error([] { return std::vector<int>{listening_tcp_socket()}; }, "1", "web",
                         {spec("web", "127.0.0.1:0")}, supervise::socket_activation_mode::off);
    CHECK(text.find(" bound cloexec 1 nonblock 1\naccepted\nvariables kept, fd 3 open\n") !=
          std::string::npos);
    CHECK(text.find("listener web 3 ") == std::string::npos);
}

// ---- failures injected through the seam ----

namespace {

// Fails call number `fail_at` (counted from 1 since the last arm()) of one
// listener system call with `err`.
enum class call { socket, setsockopt, bind, chmod, listen, getsockname };
struct injected {
    static inline call which = call::bind;
    static inline int fail_at = 0;
    static inline int seen = 0;
    static inline int err = 0;
    static void arm(call c, int at, int e) {
        which = c;
        fail_at = at;
        seen = 0;
        err = e;
    }
    static bool fails(call c) {
        if (c != which || ++seen != fail_at) return false;
        errno = err;
        return true;
    }
};
struct failing_listeners : supervise::posix_system {
    using base = supervise::posix_system;
    static int socket(int domain, int type, int protocol) noexcept {
        return injected::fails(call::socket) ? -1 : base::socket(domain, type, protocol);
    }
    static int setsockopt(int fd, int level, int name, const void* value, socklen_t size) noexcept {
        return injected::fails(call::setsockopt) ? -1
                                                 : base::setsockopt(fd, level, name, value, size);
    }
    static int bind(int fd, const sockaddr* address, socklen_t size) noexcept {
        return injected::fails(call::bind) ? -1 : base::bind(fd, address, size);
    }
    static int chmod(const char* path, mode_t mode) noexcept {
        return injected::fails(call::chmod) ? -1 : base::chmod(path, mode);
    }
    static int listen(int fd, int backlog) noexcept {
        return injected::fails(call::listen) ? -1 : base::listen(fd, backlog);
    }
    static int getsockname(int fd, sockaddr* address, socklen_t* size) noexcept {
        return injected::fails(call::getsockname) ? -1 : base::getsockname(fd, address, size);
    }
};

}  // namespace

TEST_CASE("injected failures of socket, setsockopt, bind, chmod, listen and getsockname") {
    scratch dir;
    const std::string path = dir.file("fault.sock");
    const int open_before = count_open_fds();
    std::vector<supervise::listener_spec> specs = {
        spec("local", "unix:" + path), spec("web", "127.0.0.1:0"), spec("six", "[::1]:0")};
    specs[0].unix_mode = 0660;
    struct fault {
        call which;
        int at;
        int err;
        std::string message;
    };
    const std::vector<fault> faults = {
        {call::socket, 2, EMFILE, "listener 'web' (127.0.0.1:0): socket"},
        {call::setsockopt, 1, ENOPROTOOPT,
         "listener 'web' (127.0.0.1:0): setsockopt(SO_REUSEADDR)"},
        {call::setsockopt, 2, ENOPROTOOPT, "listener 'six' ([::1]:0): setsockopt(SO_REUSEADDR)"},
        {call::setsockopt, 3, ENOPROTOOPT, "listener 'six' ([::1]:0): setsockopt(IPV6_V6ONLY)"},
        {call::bind, 1, EACCES, "listener 'local' (unix:" + path + "): bind"},
        {call::bind, 2, EACCES, "listener 'web' (127.0.0.1:0): bind"},
        {call::bind, 3, EADDRNOTAVAIL, "listener 'six' ([::1]:0): bind"},
        {call::chmod, 1, EPERM, "listener 'local' (unix:" + path + "): chmod"},
        {call::listen, 1, EADDRINUSE, "listener 'local' (unix:" + path + "): listen"},
        {call::listen, 3, EADDRINUSE, "listener 'six' ([::1]:0): listen"},
        {call::getsockname, 2, ENOBUFS, "listener 'web' (127.0.0.1:0): getsockname"},
    };
    for (const fault& f : faults) {
        CAPTURE(f.message);
        injected::arm(f.which, f.at, f.err);
        std::error_code code;
        CHECK(construction_error<failing_listeners>(specs, &code) ==
              "supervise: " + f.message + ": " + std::strerror(f.err));
        CHECK(code.value() == f.err);
        CHECK(count_open_fds() == open_before);
        CHECK_FALSE(exists(path));
    }
    injected::arm(call::bind, 0, 0);
    CHECK(construction_error<failing_listeners>(specs) == "accepted");
    CHECK(count_open_fds() == open_before);
    CHECK_FALSE(exists(path));
}
