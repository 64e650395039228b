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

// supervise_exec.cpp without its main(). Most of its functions are then unused
// in this translation unit, which -Wall reports.
#define SUPERVISE_EXAMPLE_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "examples/exec/supervise_exec.cpp"  // NOLINT(bugprone-suspicious-include): on purpose
#pragma GCC diagnostic pop

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
    try {
        supervise::detail::check_options(pool_options(cfg), [](int, int, int) { return 0; });
    } catch (const std::invalid_argument& e) {
        fuzz_input::fail(e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args = fuzz_input::split_at_nul(data, size, 64);
    const std::vector<std::string> original = args;
    std::string program = "supervise-exec";
    std::vector<char*> argv = fuzz_input::make_argv(program, args);
    try {
        check(parse_command_line(static_cast<int>(argv.size()) - 1, argv.data()), original);
    } catch (const usage_error&) {
        // A refused command line: what a bad one must give.
    }
    return 0;
}
