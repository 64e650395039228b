// supervise-exec's command line (examples/exec/supervise_exec.cpp), through
// its own parse_command_line.

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_input.hpp"

#define SUPERVISE_EXAMPLE_SOURCE "examples/exec/supervise_exec.cpp"
#include "tests/fuzz/example_source.hpp"

namespace {

config parse(std::initializer_list<const char*> words) {
    return fuzz_input::parse_words(parse_command_line, "supervise-exec", words);
}

std::string refusal(std::initializer_list<const char*> words) {
    return fuzz_input::refusal_of<usage_error>(parse_command_line, "supervise-exec", words);
}

}  // namespace

TEST_CASE("exec options: the command is everything after '--' or after the first non-flag") {
    const config a = parse({"--workers", "2", "--", "sh", "-c", "--workers 9"});
    CHECK(*a.pool.workers == 2);
    CHECK(a.command == std::vector<std::string>{"sh", "-c", "--workers 9"});
    CHECK(a.pool.strategy == pool_choice::strategy_kind::one_for_one);  // the exec default

    const config b = parse({"--pid1", "sleep", "--help"});
    CHECK(b.pid1);
    CHECK_FALSE(b.help);  // "--help" belongs to sleep
    // --pid1 implies forwarding when supervise-exec runs (forwards_signals), not here.
    CHECK_FALSE(b.forward_signals);
    CHECK(forwards_signals(b));
    CHECK(b.command == std::vector<std::string>{"sleep", "--help"});

    const config c = parse({"--", "--dash-command"});
    CHECK(c.command == std::vector<std::string>{"--dash-command"});

    const config d = parse({"--ready-fd=3", "--backoff-max", "0", "--", "true"});
    CHECK(d.ready_fd == 3);
    CHECK(d.backoff_max->count() == 0);

    CHECK(parse({"--help"}).help);
    CHECK(parse({"--forward-signals", "--", "true"}).forward_signals);
    CHECK(parse({"--user", "nobody", "--allow-new-privileges", "--", "true"}).allow_new_privileges);
    CHECK_FALSE(parse({"--", "true"}).forward_signals);
}

TEST_CASE("exec options: refusals") {
    CHECK(refusal({}).find("no command given") != std::string::npos);
    CHECK(refusal({"--workers", "2"}).find("no command given") != std::string::npos);
    CHECK(refusal({"--"}).find("no command given") != std::string::npos);
    CHECK(refusal({"--ready-fd", "2", "--", "true"}).find("between 3 and 1023") !=
          std::string::npos);
    CHECK(refusal({"--ready-fd", "1024", "--", "true"}).find("between 3 and 1023") !=
          std::string::npos);
    CHECK(refusal({"--strategy", "shutdown_all", "--backoff-max", "5", "--", "true"})
              .find("--backoff-max applies") != std::string::npos);
    CHECK(refusal({"--pid1=1", "--", "true"}).find("takes no value") != std::string::npos);
    CHECK(refusal({"--forward-signals=yes", "--", "true"}).find("takes no value") !=
          std::string::npos);
    CHECK(refusal({"--allow-new-privileges", "--", "true"})
              .find("--allow-new-privileges applies with --user") != std::string::npos);
    CHECK(refusal({"--listen", "x:1", "--", "true"}).find("--listen takes NAME=ADDRESS") !=
          std::string::npos);
    CHECK(refusal({"--listen"}).find("--listen needs a value") != std::string::npos);
    CHECK(refusal({"--workers", "1e3", "--", "true"}).find("is not a number") != std::string::npos);
}
