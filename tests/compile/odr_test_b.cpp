// The second translation unit of odr_test: the same view as odr_test_a.cpp, built here.
#include "tests/compile/odr_test.hpp"

namespace odr {

view view_from_b() {
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

void deliver_in_b(int sig) { supervise::detail::on_signal(sig); }

}  // namespace odr
