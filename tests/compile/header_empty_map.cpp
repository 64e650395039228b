// A pool whose maps are empty: signal_map<> is accepted by every static_assert, so it must also
// compile warning-free. KNOWN FAILURE with g++: signal_map<>::dispatch leaves its parameter
// `bits` unused (-Wunused-but-set-parameter, part of -Wextra); header_standalone_test.sh expects
// that failure until the header marks the parameter [[maybe_unused]].
#include <supervise.hpp>

int run_with_empty_maps();

int run_with_empty_maps() {
    using no_signals = supervise::signal_map<>;
    static_assert(no_signals::mask == 0, "an empty map maps nothing");
    auto p = supervise::make_pool<no_signals, no_signals>([](supervise::worker_context&) {});
    return p.run().exit_status;
}
