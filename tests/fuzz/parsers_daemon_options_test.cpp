// The example daemon's command line (examples/daemon/daemon.cpp), through its
// own parse_command_line: good lines and the refusals that must name the
// problem.

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_input.hpp"

#define SUPERVISE_EXAMPLE_SOURCE "examples/daemon/daemon.cpp"
#include "tests/fuzz/example_source.hpp"

namespace {

config parse(std::initializer_list<const char*> words) {
    return fuzz_input::parse_words(parse_command_line, "daemon", words);
}

std::string refusal(std::initializer_list<const char*> words) {
    return fuzz_input::refusal_of<config_error>(parse_command_line, "daemon", words);
}

}  // namespace

TEST_CASE("daemon options: defaults, and every flag in both spellings") {
    const config none = parse({});
    CHECK(none.listen.host == "127.0.0.1");
    CHECK(none.listen.port == 8080);
    CHECK_FALSE(none.pool.workers);

    const config cfg = parse({"--workers",
                              "3",
                              "--listen=[::1]:0",
                              "--preset",
                              "nginx",
                              "--strategy=one_for_one",
                              "--max-restarts",
                              "0",
                              "--restart-period=1",
                              "--heartbeat-timeout",
                              "3600000",
                              "--shutdown-timeout=1",
                              "--chaos",
                              "--max-connections",
                              "7",
                              "--first-byte-timeout=11",
                              "--header-timeout",
                              "12",
                              "--keepalive-timeout",
                              "0",
                              "--min-ready-workers=3",
                              "--drain-delay",
                              "13"});
    CHECK(*cfg.pool.workers == 3);
    CHECK(cfg.listen.host == "::1");
    CHECK(cfg.listen.port == 0);
    CHECK(cfg.pool.preset == pool_choice::preset_kind::nginx);
    CHECK(cfg.pool.strategy == pool_choice::strategy_kind::one_for_one);
    CHECK(*cfg.pool.max_restarts == 0);
    CHECK(cfg.pool.restart_period->count() == 1);
    CHECK(cfg.heartbeat_timeout.count() == 3600000);
    CHECK(cfg.pool.shutdown_timeout.count() == 1);
    CHECK(cfg.connections.chaos);
    CHECK(cfg.connections.max_connections == 7);
    CHECK(cfg.connections.first_byte_timeout.count() == 11);
    CHECK(cfg.connections.header_timeout.count() == 12);
    CHECK(cfg.connections.keepalive_timeout.count() == 0);
    CHECK(cfg.min_ready_workers == 3);
    CHECK(cfg.pool.drain_delay.count() == 13);
    CHECK(none.min_ready_workers == 1);
    CHECK(parse({"--min-ready-workers", "0"}).min_ready_workers == 0);

    const config local = parse({"--listen", "localhost:65535", "--no-fork"});
    CHECK(local.listen.host == "localhost");
    CHECK(local.listen.port == 65535);
    CHECK(*local.pool.workers == 1);
}

TEST_CASE("daemon options: numbers are whole decimal numbers within their range") {
    CHECK(refusal({"--workers", "0"}).find("between 1 and") != std::string::npos);
    CHECK(refusal({"--workers", "4097"}).find("between 1 and") != std::string::npos);
    CHECK(refusal({"--workers", "99999999999999999999999"}).find("between") != std::string::npos);
    CHECK(refusal({"--workers", "4x"}).find("is not a number") != std::string::npos);
    CHECK(refusal({"--workers", " 4"}).find("is not a number") != std::string::npos);
    CHECK(refusal({"--workers", "-1"}).find("between") != std::string::npos);
    CHECK(refusal({"--max-connections", "0"}).find("between 1 and") != std::string::npos);
    CHECK(refusal({"--first-byte-timeout", "0"}).find("between 1 and") != std::string::npos);
    CHECK(refusal({"--header-timeout", "0"}).find("between 1 and") != std::string::npos);
    CHECK(refusal({"--keepalive-timeout", "-1"}).find("between 0 and") != std::string::npos);
    CHECK(refusal({"--drain-delay", "3600001"}).find("between 0 and") != std::string::npos);
    CHECK(refusal({"--workers", ""}).find("is not a number") != std::string::npos);
    CHECK(refusal({"--workers"}).find("needs a value") != std::string::npos);
    CHECK(refusal({"--shutdown-timeout", "0"}).find("between 1") != std::string::npos);
    CHECK(refusal({"--heartbeat-timeout", "3600001"}).find("between") != std::string::npos);
}

TEST_CASE("daemon options: --listen is HOST:PORT or [IPV6]:PORT") {
    CHECK(refusal({"--listen", "127.0.0.1"}).find("expected HOST:PORT") != std::string::npos);
    CHECK(refusal({"--listen", ":8080"}).find("missing host") != std::string::npos);
    CHECK(refusal({"--listen", "[::1]"}).find("expected [IPV6]:PORT") != std::string::npos);
    CHECK(refusal({"--listen", "[::1:8080"}).find("expected [IPV6]:PORT") != std::string::npos);
    CHECK(refusal({"--listen", "[]:8080"}).find("missing host") != std::string::npos);
    CHECK(refusal({"--listen", "[::1]x:80"}).find("expected [IPV6]:PORT") != std::string::npos);
    CHECK(refusal({"--listen", "host:65536"}).find("port") != std::string::npos);
    CHECK(refusal({"--listen", "host:http"}).find("is not a number") != std::string::npos);
    CHECK(refusal({"--listen", "host:"}).find("is not a number") != std::string::npos);
    CHECK(refusal({"--listen", "["}).find("expected [IPV6]:PORT") != std::string::npos);
}

TEST_CASE("daemon options: unknown flags, stray values and meaningless combinations") {
    CHECK(refusal({"--nope"}).find("unknown option '--nope'") != std::string::npos);
    CHECK(refusal({"stray"}).find("unknown option 'stray'") != std::string::npos);
    CHECK(refusal({"--chaos=yes"}).find("takes no value") != std::string::npos);
    CHECK(refusal({"--preset", "apache"}).find("must be one of seed, nginx") != std::string::npos);
    CHECK(refusal({"--strategy", "One_for_one"}).find("must be one of") != std::string::npos);
    CHECK(refusal({"--max-restarts", "3"}).find("restarting --strategy") != std::string::npos);
    CHECK(refusal({"--no-fork", "--workers", "2"}).find("exactly one worker") != std::string::npos);
    CHECK(refusal({"--no-fork", "--strategy", "one_for_one"}).find("--no-fork") !=
          std::string::npos);
    CHECK(refusal({"--user", ""}).find("--user needs") != std::string::npos);
    CHECK(refusal({"--min-ready-workers", "-1"}).find("between 0 and") != std::string::npos);
    // Above the pool's size (4 by default, 1 with --no-fork) it could never be reached.
    CHECK(refusal({"--min-ready-workers", "5"}).find("could never be ready") != std::string::npos);
    CHECK(refusal({"--workers", "2", "--min-ready-workers", "3"}).find("more than the 2 workers") !=
          std::string::npos);
    CHECK(refusal({"--no-fork", "--min-ready-workers", "2"}).find("could never be ready") !=
          std::string::npos);
}
