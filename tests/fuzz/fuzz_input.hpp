// What the fuzz targets share: turning the fuzzer's bytes into the shapes the
// parsers take, and a failure that libFuzzer (and the replay tests) report.

#ifndef SUPERVISE_TESTS_FUZZ_INPUT_HPP
#define SUPERVISE_TESTS_FUZZ_INPUT_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fuzz_input {

// A broken invariant is a crash, so the fuzzer keeps the input that caused it.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
}

inline void require(bool condition, const char* what) {
    if (!condition) fail(what);
}

// The input split at NUL bytes: NUL is the one byte an argument or an
// environment variable cannot hold, so every other byte stays reachable.
inline std::vector<std::string> split_at_nul(const std::uint8_t* data, std::size_t size,
                                             std::size_t max_parts) {
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] != 0) {
            parts.back().push_back(static_cast<char>(data[i]));
        } else if (parts.size() < max_parts) {
            parts.emplace_back();
        } else {
            break;
        }
    }
    return parts;
}

// argv for a parse_command_line(argc, argv): the program's name, then `args`.
// The strings must outlive the returned pointers; the last one is nullptr, as
// main() gets it.
inline std::vector<char*> make_argv(std::string& program, std::vector<std::string>& args) {
    std::vector<char*> argv;
    argv.push_back(program.data());
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    return argv;
}

// An example's parse_command_line over `program` followed by `args`.
template <class Parse>
auto parse_args(Parse parse, std::string program, std::vector<std::string> args) {
    std::vector<char*> argv = make_argv(program, args);
    return parse(static_cast<int>(argv.size()) - 1, argv.data());
}

template <class Parse>
auto parse_words(Parse parse, std::string program, std::initializer_list<const char*> words) {
    return parse_args(parse, std::move(program),
                      std::vector<std::string>(words.begin(), words.end()));
}

// What parse_args makes of `args`, or nothing when it refuses them with a
// Refusal: the one way a bad command line may end.
template <class Refusal, class Parse>
auto accepted_args(Parse parse, std::string program, std::vector<std::string> args)
    -> std::optional<decltype(parse_args(parse, program, args))> {
    try {
        return parse_args(parse, std::move(program), std::move(args));
    } catch (const Refusal&) {
        return std::nullopt;
    }
}

// A fuzz target's run over an example's command line: the input is the
// arguments after `program`, one per NUL-separated part (64 at most). An
// accepted command line goes to `check` with those arguments.
template <class Refusal, class Parse, class Check>
int fuzz_command_line(const std::uint8_t* data, std::size_t size, std::string program, Parse parse,
                      Check check) {
    const std::vector<std::string> args = split_at_nul(data, size, 64);
    if (const auto cfg = accepted_args<Refusal>(parse, std::move(program), args)) check(*cfg, args);
    return 0;
}

// The message of the Refusal that `words` give, or "" if they are accepted.
template <class Refusal, class Parse>
std::string refusal_of(Parse parse, std::string program, std::initializer_list<const char*> words) {
    try {
        parse_words(parse, std::move(program), words);
    } catch (const Refusal& e) {
        return e.what();
    }
    return "";
}

// `call` must not throw an Error: what it says is the broken invariant.
template <class Error, class Call>
void require_no(Call call) {
    try {
        call();
    } catch (const Error& e) {
        fail(e.what());
    }
}

}  // namespace fuzz_input

#endif  // SUPERVISE_TESTS_FUZZ_INPUT_HPP
