// Shared by the two translation units of odr_test: each reports the library as it sees it, so
// the test can compare what must be one and the same thing in the whole program.
#ifndef SUPERVISE_TESTS_COMPILE_ODR_TEST_HPP
#define SUPERVISE_TESTS_COMPILE_ODR_TEST_HPP

#include <cstdint>
#include <string>
#include <supervise.hpp>

namespace odr {

// A named worker type (a lambda would be a different type in each translation unit), so both
// units instantiate the very same pool and the linker has to merge its members.
struct worker {
    int operator()(supervise::worker_context& context) const { return context.index(); }
};
using master_map = supervise::signal_map<supervise::on<SIGTERM, supervise::terminate>,
                                         supervise::on<SIGUSR2, supervise::print_stats>>;
using pool_type = supervise::pool<worker, master_map>;

struct view {
    // The process-wide state: inline variables, one object per program.
    const void* process_signals;
    const void* pool_running;
    // Inline functions and template members: one address per program.
    void (*on_signal)(int) noexcept;
    void (*on_destroy_deadline)(int) noexcept;
    std::string (*signal_name)(int);
    supervise::outcome (pool_type::*run)();
    supervise::statistics (pool_type::*snapshot)() const;
    // Results computed in the unit.
    std::string term_name;
    std::string table;
    std::string describe;
    std::uint32_t received_sigusr2;
    std::uint64_t pending;
};

view view_from_a();
view view_from_b();

// Calls the handler from unit b, as if the signal had been delivered there.
void deliver_in_b(int sig);

}  // namespace odr

#endif  // SUPERVISE_TESTS_COMPILE_ODR_TEST_HPP
