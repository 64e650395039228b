// The smallest maps a pool accepts: a master map with its one required row (SIGTERM, see
// docs/signals.md) and an empty worker map. Both must compile warning-free; the master map
// that is empty too is rejected (signal_map_compile_fail_test.sh, master_map_empty).
#include <supervise.hpp>

int run_with_smallest_maps();

int run_with_smallest_maps() {
    using no_signals = supervise::signal_map<>;
    using sigterm_only = supervise::signal_map<supervise::on<SIGTERM, supervise::terminate>>;
    static_assert(no_signals::mask == 0, "an empty map maps nothing");
    auto p = supervise::make_pool<sigterm_only, no_signals>([](supervise::worker_context&) {});
    return p.run().exit_status;
}
