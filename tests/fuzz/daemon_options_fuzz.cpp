// libFuzzer target: the example daemon's command line (parse_command_line and
// the flags it shares with supervise-exec through pool_choice.hpp). The input
// is argv after the program name, one argument per NUL-separated part. A bad
// command line must end in usage_error, nothing else; an accepted one must
// hold only values the daemon can use.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_input.hpp"

// daemon.cpp without its main(). Most of its functions are then unused in this
// translation unit, which -Wall reports.
#define SUPERVISE_EXAMPLE_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "examples/daemon/daemon.cpp"  // NOLINT(bugprone-suspicious-include): on purpose
#pragma GCC diagnostic pop

namespace {

using fuzz_input::require;

void check(const config& cfg) {
    if (cfg.help) return;
    require(!cfg.host.empty(), "empty host");
    require(cfg.port >= 0 && cfg.port <= 65535, "port out of range");
    require(!cfg.pool.workers ||
                (*cfg.pool.workers >= 1 && *cfg.pool.workers <= SUPERVISE_CONFIG_MAX_WORKERS),
            "workers out of range");
    require(cfg.pool.shutdown_timeout.count() >= 1 &&
                cfg.pool.shutdown_timeout.count() <= pool_choice::max_duration_ms,
            "shutdown timeout out of range");
    require(cfg.heartbeat_timeout.count() >= 0 &&
                cfg.heartbeat_timeout.count() <= pool_choice::max_duration_ms,
            "heartbeat timeout out of range");
    require(!cfg.no_fork || (cfg.pool.workers && *cfg.pool.workers == 1 && !cfg.pool.restarting()),
            "--no-fork accepted with more than the master");
    require(cfg.pool.restarting() || (!cfg.pool.max_restarts && !cfg.pool.restart_period),
            "restart limits accepted without a restarting strategy");
    // The pool's own check of the options must agree that they are valid
    // (with every descriptor taken as open: none is named here).
    try {
        supervise::detail::check_options(pool_options(cfg), [](int, int, int) { return 0; });
    } catch (const std::invalid_argument& e) {
        fuzz_input::fail(e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args = fuzz_input::split_at_nul(data, size, 64);
    std::string program = "daemon";
    std::vector<char*> argv = fuzz_input::make_argv(program, args);
    try {
        check(parse_command_line(static_cast<int>(argv.size()) - 1, argv.data()));
    } catch (const config_error&) {
        // A refused command line: what a bad one must give.
    }
    return 0;
}
