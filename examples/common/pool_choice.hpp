// pool_choice.hpp: the command line the example programs share.
//
// A supervise::pool's signal maps and strategy are template arguments, fixed
// at compile time; the example programs let the operator pick them at run
// time with --preset and --strategy. This header holds what both programs
// (examples/daemon and examples/exec) need for that, once:
//   - a reader of --flag VALUE / --flag=VALUE arguments,
//   - the flags every pool has (--workers, --preset, --strategy, ...), parsed
//     and checked the same way, and copied into supervise::options,
//   - dispatch(): the run-time words to one of the 2 x 4 pool instantiations.
// A bad flag or value throws usage_error; each program turns that into one
// line on stderr and exit status 2, with nothing started.

#ifndef SUPERVISE_EXAMPLES_POOL_CHOICE_HPP
#define SUPERVISE_EXAMPLES_POOL_CHOICE_HPP

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <system_error>
#include <utility>

namespace pool_choice {

// A bad flag or value: the message is the whole explanation.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- Words ----

enum class preset_kind { seed, nginx };
enum class strategy_kind { shutdown_all, one_for_one, one_for_all, rest_for_one };

// The words --preset and --strategy accept, in the order the help texts list them.
template <class Kind>
using choice = std::pair<std::string_view, Kind>;
inline constexpr choice<preset_kind> presets[] = {{"seed", preset_kind::seed},
                                                  {"nginx", preset_kind::nginx}};
inline constexpr choice<strategy_kind> strategies[] = {
    {"shutdown_all", strategy_kind::shutdown_all},
    {"one_for_one", strategy_kind::one_for_one},
    {"one_for_all", strategy_kind::one_for_all},
    {"rest_for_one", strategy_kind::rest_for_one}};

// An hour bounds every duration flag: plenty, and far from overflowing the
// library's deadline arithmetic.
inline constexpr long long max_duration_ms = 3600000;

// The whole text must be a decimal number in [min, max]: "4x", "" and " 4" are
// refused rather than read as 4 or 0, as atoi() would.
inline long long parse_number(std::string_view flag, std::string_view text, long long min,
                              long long max) {
    long long value = 0;
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || error == std::errc::invalid_argument || stop != end) {
        throw usage_error(std::string(flag) + ": '" + std::string(text) + "' is not a number");
    }
    if (error == std::errc::result_out_of_range || value < min || value > max) {
        throw usage_error(std::string(flag) + " must be between " + std::to_string(min) + " and " +
                          std::to_string(max) + " (got " + std::string(text) + ")");
    }
    return value;
}

// Milliseconds, from min up to an hour.
inline std::chrono::milliseconds parse_duration(std::string_view flag, std::string_view text,
                                                long long min) {
    return std::chrono::milliseconds(parse_number(flag, text, min, max_duration_ms));
}

// One of the words of `choices`, spelled exactly.
template <class Kind, std::size_t N>
Kind parse_choice(std::string_view flag, std::string_view text, const choice<Kind> (&choices)[N]) {
    std::string words;
    for (const auto& [word, kind] : choices) {
        if (word == text) return kind;
        words += (words.empty() ? "" : ", ") + std::string(word);
    }
    throw usage_error(std::string(flag) + " must be one of " + words + " (got '" +
                      std::string(text) + "')");
}

// ---- Reading the command line ----

// Walks argv one argument at a time. "--flag=value" is split at the first '=';
// value() takes that value, or else the next argument.
class arguments {
  public:
    arguments(int argc, char** argv) : argc_(argc), argv_(argv) {}

    // Moves to the next argument; false when there is none.
    bool next() {
        if (++index_ >= argc_) return false;
        arg_ = argv_[index_];
        flag_ = arg_;
        inline_value_.reset();
        if (const std::size_t eq = arg_.find('='); arg_.rfind("--", 0) == 0 && eq != arg_.npos) {
            flag_ = arg_.substr(0, eq);
            inline_value_ = arg_.substr(eq + 1);
        }
        return true;
    }

    // The current argument as written, and its flag part ("--workers" of "--workers=4").
    std::string_view arg() const { return arg_; }
    std::string_view flag() const { return flag_; }
    // Its position in argv.
    int index() const { return index_; }

    // The flag's value: after '=', or the next argument.
    std::string_view value() {
        if (inline_value_) return *inline_value_;
        if (index_ + 1 >= argc_) throw usage_error(std::string(flag_) + " needs a value");
        return argv_[++index_];
    }

    // For a flag without a value: refuses "--flag=value".
    void no_value() const {
        if (inline_value_) throw usage_error(std::string(flag_) + " takes no value");
    }

    [[noreturn]] void unknown() const {
        throw usage_error("unknown option '" + std::string(arg_) + "'");
    }

  private:
    int argc_;
    char** argv_;
    int index_ = 0;  // argv[0] is the program
    std::string_view arg_;
    std::string_view flag_;
    std::optional<std::string_view> inline_value_;
};

// ---- The flags every pool has ----

struct pool_flags {
    std::optional<int> workers;  // unset: the library's default
    std::chrono::milliseconds shutdown_timeout{SUPERVISE_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS};
    std::chrono::milliseconds drain_delay{0};
    preset_kind preset = preset_kind::seed;
    strategy_kind strategy = strategy_kind::shutdown_all;
    std::optional<int> max_restarts;  // unset: the library's defaults
    std::optional<std::chrono::milliseconds> restart_period;
    std::optional<std::chrono::milliseconds> restart_delay;
    std::optional<std::chrono::milliseconds> restart_delay_max;
    std::optional<std::chrono::milliseconds> min_uptime;
    std::string user;

    bool restarting() const { return strategy != strategy_kind::shutdown_all; }
};

// Takes the current argument if it is one of the pool's flags (--workers,
// --shutdown-timeout, --drain-delay, --preset, --strategy, --max-restarts,
// --restart-period, --restart-delay, --restart-delay-max, --min-uptime, --user);
// false if it is not.
inline bool take_pool_flag(arguments& args, pool_flags& flags) {
    const std::string_view flag = args.flag();
    if (flag == "--workers") {
        flags.workers =
            static_cast<int>(parse_number(flag, args.value(), 1, SUPERVISE_CONFIG_MAX_WORKERS));
    } else if (flag == "--shutdown-timeout") {
        flags.shutdown_timeout = parse_duration(flag, args.value(), 1);
    } else if (flag == "--drain-delay") {
        flags.drain_delay = parse_duration(flag, args.value(), 0);
    } else if (flag == "--preset") {
        flags.preset = parse_choice(flag, args.value(), presets);
    } else if (flag == "--strategy") {
        flags.strategy = parse_choice(flag, args.value(), strategies);
    } else if (flag == "--max-restarts") {
        flags.max_restarts = static_cast<int>(parse_number(flag, args.value(), 0, 1000000));
    } else if (flag == "--restart-period") {
        flags.restart_period = parse_duration(flag, args.value(), 1);
    } else if (flag == "--restart-delay") {
        flags.restart_delay = parse_duration(flag, args.value(), 0);
    } else if (flag == "--restart-delay-max") {
        flags.restart_delay_max = parse_duration(flag, args.value(), 0);
    } else if (flag == "--min-uptime") {
        flags.min_uptime = parse_duration(flag, args.value(), 0);
    } else if (flag == "--user") {
        flags.user = std::string(args.value());
        if (flags.user.empty()) throw usage_error("--user needs a user name or number");
    } else {
        return false;
    }
    return true;
}

// Combinations that mean nothing, refused rather than silently ignored.
inline void check_pool_flags(const pool_flags& flags) {
    if (!flags.restarting() && (flags.max_restarts || flags.restart_period ||
                                flags.restart_delay || flags.restart_delay_max ||
                                flags.min_uptime)) {
        throw usage_error(
            "--max-restarts, --restart-period, --restart-delay, --restart-delay-max and "
            "--min-uptime apply to a restarting --strategy (one_for_one, one_for_all or "
            "rest_for_one)");
    }
    if (flags.restart_delay && flags.restart_delay_max &&
        *flags.restart_delay > *flags.restart_delay_max) {
        throw usage_error("--restart-delay (" + std::to_string(flags.restart_delay->count()) +
                          ") must not exceed --restart-delay-max (" +
                          std::to_string(flags.restart_delay_max->count()) + ")");
    }
}

// Copies the flags into the pool's options.
inline void apply(const pool_flags& flags, supervise::options& opts) {
    if (flags.workers) opts.workers = *flags.workers;
    opts.shutdown_timeout = flags.shutdown_timeout;
    opts.drain_delay = flags.drain_delay;
    if (flags.max_restarts) opts.max_restarts = *flags.max_restarts;
    if (flags.restart_period) opts.restart_period = *flags.restart_period;
    // A cap below the default first delay lowers that delay too, and a first
    // delay above the default cap raises the cap: one flag alone is never
    // refused for the other's default.
    if (flags.restart_delay_max) {
        opts.restart_delay_max = *flags.restart_delay_max;
        opts.restart_delay = std::min(opts.restart_delay, opts.restart_delay_max);
    }
    if (flags.restart_delay) {
        opts.restart_delay = *flags.restart_delay;
        opts.restart_delay_max = std::max(opts.restart_delay_max, opts.restart_delay);
    }
    if (flags.min_uptime) opts.min_uptime = *flags.min_uptime;
    opts.user = flags.user;
    // SIGTTIN / SIGTTOU (--preset nginx) scale between 1 and 4 times the
    // starting size, within the library's cap.
    opts.min_workers = 1;
    opts.max_workers = std::min(4 * opts.workers, SUPERVISE_CONFIG_MAX_WORKERS);
}

// ---- From run-time words to compile-time types ----

// A preset: the master's and the workers' signal maps.
template <class MasterSignals, class WorkerSignals>
struct signal_maps {
    using master = MasterSignals;
    using worker = WorkerSignals;
};

// The pool's template arguments for one preset and strategy.
template <class MasterSignals, class WorkerSignals, class Strategy>
struct pool_types {
    template <class Worker>
    using pool = supervise::pool<Worker, MasterSignals, WorkerSignals, Strategy>;
};

// Calls visit(pool_types<...>{}) with the maps of `Maps` (a signal_maps) and
// the strategy --strategy names, and returns what it returns.
template <class Maps, class Visit>
int dispatch_strategy(const pool_flags& flags, Visit&& visit) {
    using master = typename Maps::master;
    using worker = typename Maps::worker;
    switch (flags.strategy) {
        case strategy_kind::shutdown_all:
            return visit(pool_types<master, worker, supervise::shutdown_all>{});
        case strategy_kind::one_for_one:
            return visit(pool_types<master, worker, supervise::one_for_one>{});
        case strategy_kind::one_for_all:
            return visit(pool_types<master, worker, supervise::one_for_all>{});
        case strategy_kind::rest_for_one:
            return visit(pool_types<master, worker, supervise::rest_for_one>{});
    }
    return 1;  // not reached: every strategy_kind is a case
}

// Calls visit(pool_types<...>{}) with the types --preset and --strategy name,
// and returns what it returns. `visit` is a generic lambda, so each of the
// 2 x 4 combinations is its own instantiation, picked here at run time.
template <class Visit>
int dispatch(const pool_flags& flags, Visit&& visit) {
    switch (flags.preset) {
        case preset_kind::seed:
            return dispatch_strategy<
                signal_maps<supervise::default_master_signals, supervise::default_worker_signals>>(
                flags, visit);
        case preset_kind::nginx:
            return dispatch_strategy<
                signal_maps<supervise::nginx_master_signals, supervise::nginx_worker_signals>>(
                flags, visit);
    }
    return 1;  // not reached: every preset_kind is a case
}

}  // namespace pool_choice

#endif  // SUPERVISE_EXAMPLES_POOL_CHOICE_HPP
