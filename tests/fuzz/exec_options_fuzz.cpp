// libFuzzer target: supervise-exec's command line, one argument per
// NUL-separated part of the input. A bad command line must end in
// usage_error, nothing else; an accepted one must hold a command and only
// values the pool accepts. (Resolving the command in PATH is not parsing and
// is left out: it reads the file system.)

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_input.hpp"

#define SUPERVISE_EXAMPLE_SOURCE "examples/exec/supervise_exec.cpp"
#include "tests/fuzz/example_source.hpp"

namespace {

using fuzz_input::require;

void check(const config& cfg, const std::vector<std::string>& args) {
    if (cfg.help) return;
    require(!cfg.command.empty(), "accepted without a command");
    // The command is the tail of argv, unchanged.
    require(cfg.command.size() <= args.size(), "command longer than argv");
    for (std::size_t i = 0; i < cfg.command.size(); ++i) {
        require(cfg.command[i] == args[args.size() - cfg.command.size() + i],
                "command differs from the tail of argv");
    }
    require(cfg.ready_fd == -1 || (cfg.ready_fd >= 3 && cfg.ready_fd <= 1023), "ready fd");
    require(!cfg.backoff_max || cfg.pool.restarting(), "--backoff-max without restarts");
    fuzz_input::require_no<std::invalid_argument>([&] {
        supervise::detail::check_options(pool_options(cfg), [](int, int, int) { return 0; });
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return fuzz_input::fuzz_command_line<usage_error>(data, size, "supervise-exec",
                                                      parse_command_line, check);
}
