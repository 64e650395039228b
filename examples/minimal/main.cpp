#include <supervise.hpp>

int main() {
    supervise::options opts;
    opts.workers = 4;  // SIGTERM/SIGINT/SIGPIPE stop, SIGUSR1 prints statistics, HUP/USR2 ignored

    supervise::pool pool{[](supervise::worker_context& ctx) {
                             while (!ctx.stop_requested()) {
                                 // serve: block in ctx.wait_readable(fd), then do the work
                                 ctx.sleep_for(std::chrono::seconds(1));
                             }
                         },
                         opts};
    pool.on_destroy("flush cache", [] { /* runs once, after every worker is reaped */ });

    // 0 after a requested stop; 1 when a worker died or could not start.
    return pool.run().exit_status;
}
