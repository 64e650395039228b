// The restarting strategies' arithmetic (detail::restart_policy) as plain values: no fork, no
// signal, no clock. strategy_test.cpp checks the same rules with real processes.
#include <doctest/doctest.h>

#include <supervise.hpp>

namespace {

using supervise::exit_info;
using supervise::restart_type;
using verdict = supervise::detail::restart_decision::verdict;

supervise::options restarting(int max_restarts = 5, long period_ms = 10000, long delay_ms = 100,
                              long delay_max_ms = 5000) {
    supervise::options opts;
    opts.max_restarts = max_restarts;
    opts.restart_period = std::chrono::milliseconds(period_ms);
    opts.restart_delay = std::chrono::milliseconds(delay_ms);
    opts.restart_delay_max = std::chrono::milliseconds(delay_max_ms);
    return opts;
}

exit_info exited(int code) { return exit_info{exit_info::kind::exited, code, 0, false}; }
exit_info killed(int sig) { return exit_info{exit_info::kind::killed, 0, sig, false}; }

}  // namespace

TEST_CASE("back-off: the first restart is immediate, then delay, 2*delay, ... capped") {
    const supervise::detail::restart_policy policy(restarting(5, 10000, 100, 1000));
    CHECK(policy.backoff_ms(1) == 0);
    CHECK(policy.backoff_ms(2) == 100);
    CHECK(policy.backoff_ms(3) == 200);
    CHECK(policy.backoff_ms(4) == 400);
    CHECK(policy.backoff_ms(5) == 800);
    CHECK(policy.backoff_ms(6) == 1000);
    CHECK(policy.backoff_ms(60) == 1000);
}

TEST_CASE("a slot that keeps failing backs off; one that lived a whole period starts afresh") {
    supervise::detail::restart_policy policy(restarting(100, 10000, 100, 5000));
    int failures = 0;
    std::int64_t now = 50000;
    const std::int64_t delays[] = {0, 100, 200, 400};
    for (const std::int64_t expected : delays) {
        const auto d = policy.decide(killed(SIGKILL), now - 10, now, failures);
        CHECK(d.what == verdict::restart);
        CHECK(d.delay_ms == expected);
        now += 1000;
    }
    CHECK(failures == 4);
    const auto fresh = policy.decide(killed(SIGKILL), now - 10000, now, failures);
    CHECK(fresh.what == verdict::restart);
    CHECK(fresh.delay_ms == 0);
    CHECK(failures == 1);
}

TEST_CASE("min_uptime: a death after the worker was ready and up that long ends the run") {
    supervise::options opts = restarting(100, 10000, 100, 5000);
    opts.min_uptime = std::chrono::milliseconds(1000);
    supervise::detail::restart_policy policy(opts);
    int failures = 0;
    // Not ready, or ready but younger than min_uptime: the back-off goes on.
    CHECK(policy.decide(killed(SIGKILL), 45000, 50000, failures, false).delay_ms == 0);
    CHECK(policy.decide(killed(SIGKILL), 45010, 50010, failures, false).delay_ms == 100);
    CHECK(policy.decide(killed(SIGKILL), 49021, 50020, failures, true).delay_ms == 200);
    CHECK(failures == 3);
    // Ready and up for min_uptime exactly: restarted at once, the run starts afresh.
    const auto served = policy.decide(killed(SIGKILL), 49030, 50030, failures, true);
    CHECK(served.what == verdict::restart);
    CHECK(served.delay_ms == 0);
    CHECK(failures == 1);
    CHECK(policy.decide(killed(SIGKILL), 50030, 50040, failures, false).delay_ms == 100);
}

TEST_CASE("min_uptime: the intensity limit counts the restarts of workers that served") {
    supervise::options opts = restarting(2, 10000);
    opts.min_uptime = std::chrono::milliseconds(0);
    supervise::detail::restart_policy policy(opts);
    int failures = 0;
    CHECK(policy.decide(killed(SIGKILL), 0, 100, failures, true).delay_ms == 0);
    CHECK(policy.decide(killed(SIGKILL), 100, 200, failures, true).delay_ms == 0);
    CHECK(policy.decide(killed(SIGKILL), 200, 300, failures, true).what == verdict::give_up);
}

TEST_CASE("intensity: more than max_restarts within restart_period gives up") {
    supervise::detail::restart_policy policy(restarting(3, 1000));
    int failures = 0;
    for (int i = 0; i < 3; ++i) {
        CHECK(policy.decide(exited(1), 0, 100 + i, failures).what == verdict::restart);
    }
    CHECK(policy.decide(exited(1), 0, 200, failures).what == verdict::give_up);
    // Restarts older than the period no longer count.
    CHECK(policy.decide(exited(1), 0, 1200, failures).what == verdict::restart);
}

TEST_CASE("max_restarts 0: the first unrequested exit gives up") {
    supervise::detail::restart_policy policy(restarting(0));
    int failures = 0;
    CHECK(policy.decide(exited(1), 0, 10, failures).what == verdict::give_up);
    CHECK(failures == 0);
}

TEST_CASE("the fatal exit status stops the pool whatever the restart type") {
    for (const restart_type type :
         {restart_type::permanent, restart_type::transient, restart_type::temporary}) {
        supervise::options opts = restarting();
        opts.restart = type;
        supervise::detail::restart_policy policy(opts);
        int failures = 0;
        CHECK(policy.decide(exited(opts.fatal_exit_code), 0, 10, failures).what == verdict::fatal);
        CHECK(policy.decide(exited(opts.fatal_exit_code + 1), 0, 10, failures).what !=
              verdict::fatal);
    }
}

TEST_CASE("restart types: permanent restarts every exit, transient only abnormal ones") {
    int failures = 0;
    supervise::options opts = restarting();
    supervise::detail::restart_policy permanent(opts);
    CHECK(permanent.decide(exited(0), 0, 10, failures).what == verdict::restart);
    opts.restart = restart_type::transient;
    supervise::detail::restart_policy transient(opts);
    CHECK(transient.decide(exited(0), 0, 10, failures).what == verdict::not_restarted);
    CHECK(transient.decide(exited(3), 0, 10, failures).what == verdict::restart);
    CHECK(transient.decide(killed(SIGTERM), 0, 10, failures).what == verdict::restart);
    opts.restart = restart_type::temporary;
    supervise::detail::restart_policy temporary(opts);
    CHECK(temporary.decide(killed(SIGSEGV), 0, 10, failures).what == verdict::not_restarted);
}

TEST_CASE("an exit that is not restarted does not count against the intensity limit") {
    supervise::options opts = restarting(1, 1000);
    opts.restart = restart_type::transient;
    supervise::detail::restart_policy policy(opts);
    int failures = 0;
    for (int i = 0; i < 5; ++i) {
        CHECK(policy.decide(exited(0), 0, 10, failures).what == verdict::not_restarted);
    }
    CHECK(policy.decide(exited(2), 0, 10, failures).what == verdict::restart);
    CHECK(policy.decide(exited(2), 0, 20, failures).what == verdict::give_up);
}
