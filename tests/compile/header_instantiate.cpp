// Instantiates every member of the pool template, so both compilers check the template bodies
// (a template member that is never used is never compiled). Compiled, never run.
#include <supervise.hpp>

namespace {

using supervise::ignore;
using supervise::on;
using supervise::print_stats;
using supervise::signal_map;
using supervise::terminate;

// Custom maps: every action, and a map without print_stats.
using master_map = signal_map<on<SIGTERM, terminate>, on<SIGQUIT, print_stats>, on<SIGHUP, ignore>,
                              on<64, ignore>>;
using worker_map = signal_map<on<SIGTERM, terminate>, on<SIGHUP, ignore>>;

// A test seam: hides one system call of posix_system.
struct failing_fork : supervise::posix_system {
    static pid_t fork() noexcept {
        errno = EAGAIN;
        return -1;
    }
};

}  // namespace

int use_every_member();

int use_every_member() {
    // The defaults, with class template argument deduction and a void worker.
    supervise::pool p{[](supervise::worker_context&) {}, {}};
    p.on_destroy("hook", [] {});
    p.on_ready([] {});
    const supervise::outcome first = p.run();

    // make_pool with custom maps, a custom System and an int worker using the whole context.
    auto q = supervise::make_pool<master_map, worker_map, supervise::shutdown_all, failing_fork>(
        [](supervise::worker_context& context) {
            while (!context.stop_requested()) {
                if (context.wait_readable(0, std::chrono::milliseconds(10)) ==
                    supervise::wait_status::ready) {
                    break;
                }
                if (!context.sleep_for(std::chrono::milliseconds(1))) break;
            }
            return context.index() + static_cast<int>(context.generation()) + context.master_pid() +
                   context.stop_signal();
        },
        supervise::options{});
    const supervise::outcome second = q.run();

    // A worker taking a const context is accepted as well.
    auto r = supervise::make_pool([](const supervise::worker_context&) { return 0; });
    const supervise::outcome third = r.run();

    const supervise::statistics stats = q.snapshot();
    return first.exit_status + second.exit_status + third.exit_status +
           static_cast<int>(stats.table().size() + supervise::signal_name(SIGTERM).size() +
                            stats.workers.size()) +
           q.settings().workers;
}
