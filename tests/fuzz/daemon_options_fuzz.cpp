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

#define SUPERVISE_EXAMPLE_SOURCE "examples/daemon/daemon.cpp"
#include "tests/fuzz/example_source.hpp"

namespace {

using fuzz_input::require;

void check(const config& cfg) {
    if (cfg.help) return;
    require(!cfg.listen.host.empty(), "empty host");
    require(cfg.listen.port >= 0 && cfg.listen.port <= 65535, "port out of range");
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
    require(cfg.min_ready_workers >= 0 &&
                cfg.min_ready_workers <=
                    cfg.pool.workers.value_or(SUPERVISE_CONFIG_DEFAULT_WORKERS),
            "--min-ready-workers accepted above --workers");
    // The pool's own check of the options must agree that they are valid
    // (with every descriptor taken as open: none is named here).
    fuzz_input::require_no<std::invalid_argument>([&] {
        supervise::detail::check_options(pool_options(cfg, std::string()),
                                         [](int, int, int) { return 0; });
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return fuzz_input::fuzz_command_line<config_error>(
        data, size, "daemon", parse_command_line,
        [](const config& cfg, const std::vector<std::string>&) { check(cfg); });
}
