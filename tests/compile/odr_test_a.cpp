// odr_test: a program linked from two translation units that both include supervise.hpp and both
// use it (odr_test_a.cpp, odr_test_b.cpp).
//
// That it links at all proves every function the header defines is inline or a template: one
// defined without `inline` is emitted by both units and the link fails with a multiple
// definition. The test cases prove the rest at run time: an inline variable declared `static`
// instead would link fine but give each unit its own copy, and a handler in one unit would set
// bits the other never sees.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>

#include "tests/compile/odr_test.hpp"

namespace odr {

view view_from_a() {
    supervise::options opts;
    opts.workers = 2;
    const pool_type pool(worker{}, opts);
    supervise::exit_info killed;
    killed.how = supervise::exit_info::kind::killed;
    killed.signal = SIGKILL;
    return view{
        &supervise::detail::process_signals,
        &supervise::detail::pool_running,
        &supervise::detail::on_signal,
        &supervise::detail::on_destroy_deadline,
        &supervise::signal_name,
        &pool_type::run,
        &pool_type::snapshot,
        supervise::signal_name(SIGTERM),
        pool.snapshot().table(),
        killed.describe(),
        supervise::detail::process_signals.received[SIGUSR2].load(),
        supervise::detail::process_signals.pending.load(),
    };
}

}  // namespace odr

namespace {

void reset_signal_state() {
    supervise::detail::process_signals.pending.store(0);
    for (auto& counter : supervise::detail::process_signals.received) counter.store(0);
}

}  // namespace

TEST_CASE("both translation units see one process-wide signal state") {
    const odr::view a = odr::view_from_a();
    const odr::view b = odr::view_from_b();
    CHECK(a.process_signals == b.process_signals);
    CHECK(a.pool_running == b.pool_running);
}

// Double parentheses: doctest cannot print function pointers, so it compares without decomposing.
TEST_CASE("both translation units use one copy of each function") {
    const odr::view a = odr::view_from_a();
    const odr::view b = odr::view_from_b();
    CHECK((a.on_signal == b.on_signal));
    CHECK((a.on_destroy_deadline == b.on_destroy_deadline));
    CHECK((a.signal_name == b.signal_name));
    CHECK((a.run == b.run));
    CHECK((a.snapshot == b.snapshot));
}

TEST_CASE("both translation units compute the same results") {
    const odr::view a = odr::view_from_a();
    const odr::view b = odr::view_from_b();
    CHECK(a.term_name == "SIGTERM");
    CHECK(b.term_name == a.term_name);
    CHECK(a.describe == "killed by signal 9 (SIGKILL)");
    CHECK(b.describe == a.describe);
    CHECK(a.table.find("worker") != std::string::npos);
    CHECK(b.table == a.table);
}

TEST_CASE("a signal recorded in one translation unit is seen by the other") {
    reset_signal_state();
    odr::deliver_in_b(SIGUSR2);
    odr::deliver_in_b(SIGUSR2);
    const odr::view a = odr::view_from_a();
    CHECK(a.received_sigusr2 == 2);
    CHECK(a.pending == supervise::detail::signal_bit(SIGUSR2));

    supervise::detail::on_signal(SIGUSR2);  // and the other way round
    const odr::view b = odr::view_from_b();
    CHECK(b.received_sigusr2 == 3);
    reset_signal_state();
}
