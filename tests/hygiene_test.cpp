// Process hygiene: pidfds, orphan reaping as a subreaper, privilege drop, and
// the statistics as a value and as JSON.
#include <dirent.h>
#include <doctest/doctest.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>

#include <fstream>
#include <set>

#include "harness.hpp"

using namespace harness;

TEST_CASE("the master holds a pidfd for every worker and signals through it") {
    master_process master([&](int log_fd, int report_fd) {
        auto pool = supervise::make_pool(reporting_worker(report_fd), test_options(3, log_fd));
        pool.on_ready([fd = report_fd] {
            // fdinfo of a pidfd names the process it refers to (proc(5)).
            std::set<long> pids;
            if (DIR* dir = ::opendir("/proc/self/fdinfo")) {
                while (const dirent* entry = ::readdir(dir)) {
                    std::ifstream info(std::string("/proc/self/fdinfo/") + entry->d_name);
                    for (std::string line; std::getline(info, line);) {
                        if (line.rfind("Pid:", 0) == 0) pids.insert(std::stol(line.substr(4)));
                    }
                }
                ::closedir(dir);
            }
            std::string line = "pidfds";
            for (long pid : pids) line += " " + std::to_string(pid);
            say(fd, line);
        });
        return pool.run().exit_status;
    });
    REQUIRE(master.reports.wait_for("pidfds"));
    REQUIRE(master.reports.wait_for("up ", 3));
    const std::string line = master.reports.lines_starting("pidfds").at(0);
    for (int i = 0; i < 3; ++i) {
        CHECK(line.find(" " + std::to_string(worker_pid(master.reports, i))) != std::string::npos);
    }
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

namespace {

// A worker whose first generation leaves a grandchild behind and dies: the
// grandchild is orphaned, and who adopts it depends on subreaper mode.
auto orphaning_worker(int report_fd, int hold_fd) {
    return [report_fd, hold_fd](supervise::worker_context& ctx) {
        if (ctx.generation() == 0) {
            const pid_t grandchild = ::fork();
            if (grandchild == 0) {
                // Waits for the test to let go, then ends.
                char byte;
                while (::read(hold_fd, &byte, 1) < 0 && errno == EINTR) {
                }
                ::_exit(0);
            }
            say(report_fd, "grandchild " + std::to_string(grandchild));
            return 3;  // dies, orphaning it
        }
        say(report_fd, "up " + std::to_string(ctx.index()) + " " + std::to_string(::getpid()));
        while (ctx.sleep_for(-1ms)) {
        }
        return 0;
    };
}

}  // namespace

TEST_CASE("subreaper mode adopts and reaps the workers' orphaned children") {
    pipe_pair hold;
    master_process master([&](int log_fd, int report_fd) {
        hold.close_write();
        auto opts = test_options(1, log_fd);
        opts.subreaper = true;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            orphaning_worker(report_fd, hold.read_fd), opts);
        return pool.run().exit_status;
    });
    hold.close_read();
    REQUIRE(master.reports.wait_for("grandchild "));
    REQUIRE(master.reports.wait_for("up 0 "));
    const long grandchild =
        std::stol(master.reports.lines_starting("grandchild ").at(0).substr(11));
    // Adopted by the master, not by us.
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string text;
    std::getline(stat, text);
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    char state = 0;
    long parent = 0;
    fields >> state >> parent;
    CHECK(parent == master.pid());
    hold.close_write();  // the grandchild ends now
    REQUIRE(master.logs.wait_for("reaped orphan pid " + std::to_string(grandchild) +
                                 ", exited with status 0"));
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("without subreaper mode the pool never reaps children that are not its workers") {
    pipe_pair hold;
    master_process master([&](int log_fd, int report_fd) {
        hold.close_write();
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            orphaning_worker(report_fd, hold.read_fd), test_options(1, log_fd));
        // A child of the embedding program's own, which it will reap itself.
        const pid_t own = ::fork();
        if (own == 0) ::_exit(7);
        pool.on_ready([] { ::raise(SIGTERM); });
        const auto result = pool.run();
        int status = 0;
        const bool still_ours = ::waitpid(own, &status, 0) == own && WEXITSTATUS(status) == 7;
        say(report_fd, still_ours ? "own child still ours" : "own child stolen");
        return result.exit_status;
    });
    hold.close_read();
    hold.close_write();
    CHECK(exited_with(master.wait(), 0));
    master.reports.wait_eof();
    master.logs.wait_eof();
    CHECK(master.reports.occurrences("own child still ours") == 1);
    CHECK(master.logs.occurrences("reaped orphan") == 0);
    // The orphaned grandchild came to us (the test binary is a subreaper).
    const pid_t grandchild = static_cast<pid_t>(
        std::stol(master.reports.lines_starting("grandchild ").at(0).substr(11)));
    CHECK(exited_with(wait_exit(grandchild), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("workers drop to the configured user, group and groups; root cannot come back") {
    if (::geteuid() != 0) {
        // Asking for another user without root is refused up front.
        supervise::options opts;
        opts.user = "root";
        CHECK(construction_error(opts).find("needs a master running as root") != std::string::npos);
        return;
    }
    const struct passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(1, log_fd);
        opts.user = "nobody";
        auto pool = supervise::make_pool(
            [fd = report_fd](supervise::worker_context& ctx) {
                gid_t groups[64];
                const int count = ::getgroups(64, groups);
                std::string line = "ids " + std::to_string(::getuid()) + " " +
                                   std::to_string(::geteuid()) + " " + std::to_string(::getgid()) +
                                   " " + std::to_string(::getegid()) + " groups";
                for (int i = 0; i < count; ++i) line += " " + std::to_string(groups[i]);
                say(fd, line);
                say(fd, ::setuid(0) == 0 ? "regained root" : "root stays out");
                while (ctx.sleep_for(-1ms)) {
                }
            },
            opts);
        return pool.run().exit_status;
    });
    // In a user namespace that denies setgroups (Bazel's linux-sandbox does;
    // the target is tagged no-sandbox for that reason), dropping must fail
    // loudly and stop the pool, never run the worker with root's groups.
    std::ifstream setgroups_policy("/proc/self/setgroups");
    std::string policy;
    setgroups_policy >> policy;
    if (policy == "deny") {
        const auto status = master.finish();
        master.reports.wait_eof();
        INFO(master.logs.text());
        CHECK(exited_with(status, 1));
        CHECK(master.logs.occurrences("cannot drop privileges to 'nobody': setgroups") == 1);
        CHECK(master.reports.occurrences("ids ") == 0);
        CHECK(reap_leftovers() == 0);
        return;
    }
    REQUIRE(master.reports.wait_for("root stays out"));
    const std::string ids = std::to_string(nobody->pw_uid) + " " + std::to_string(nobody->pw_uid) +
                            " " + std::to_string(nobody->pw_gid) + " " +
                            std::to_string(nobody->pw_gid) + " groups";
    INFO(master.reports.text());
    CHECK(master.reports.occurrences("ids " + ids) == 1);
    // No group of root's is left: only nobody's own ones.
    const std::string line = master.reports.lines_starting("ids ").at(0);
    CHECK(line.find(" 0 ") == std::string::npos);
    CHECK(exited_with(master.terminate(), 0));
    CHECK(reap_leftovers() == 0);
}

TEST_CASE("an unknown user or group is refused before anything starts") {
    struct refusal {
        const char* user;
        const char* group;
        const char* phrase;
    };
    // Named fields, not a structured binding: CAPTURE's lambda cannot capture
    // a binding before C++20, which clang++ 14 enforces.
    for (const refusal& r :
         {refusal{"no-such-user-here", "", "unknown user 'no-such-user-here'"},
          refusal{"nobody", "no-such-group-here", "unknown group 'no-such-group-here'"},
          refusal{"", "nogroup", "group needs user"}}) {
        CAPTURE(r.user);
        supervise::options opts;
        opts.user = r.user;
        opts.group = r.group;
        CHECK(construction_error(opts) == std::string("supervise: ") + r.phrase);
    }
}

TEST_CASE("statistics: the table and one JSON object with restarts, last exits, heartbeat age") {
    pipe_pair stats;
    master_process master([&](int log_fd, int report_fd) {
        auto opts = test_options(2, log_fd, stats.write_fd);
        opts.heartbeat_timeout = 10s;
        auto pool = supervise::make_pool<supervise::seed_master_signals,
                                         supervise::seed_worker_signals, supervise::one_for_one>(
            [fd = report_fd](supervise::worker_context& ctx) {
                say_up(fd, ctx);
                if (ctx.index() == 1 && ctx.generation() == 0) return 4;
                while (ctx.sleep_for(-1ms)) {
                }
                return 0;
            },
            opts);
        say_json_on_destroy(pool, "json", report_fd);
        return pool.run().exit_status;
    });
    stats.close_write();
    REQUIRE(master.reports.wait_for("up 1 ", 2));
    CHECK(exited_with(master.terminate(), 0));
    master.reports.wait_eof();
    const std::string json = master.reports.lines_starting("json ").at(0).substr(5);
    INFO(json);
    CHECK(json.rfind("{\"master_pid\":" + std::to_string(master.pid()) + ",", 0) == 0);
    CHECK(json.find("\"SIGCHLD\":") != std::string::npos);
    CHECK(json.find("\"index\":1,\"pid\":null,\"state\":\"exited\"") != std::string::npos);
    CHECK(json.find("\"generation\":1,\"restarts\":1,\"heartbeat_age_ms\":null,"
                    "\"last_exit\":\"exited with status 0\"") != std::string::npos);
    CHECK(json.back() == '}');
    CHECK(reap_leftovers() == 0);
}
