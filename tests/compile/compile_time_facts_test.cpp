// Compile-time facts the library relies on, as static_asserts: if one stops being true, this file
// stops compiling and the test fails to build. The one run-time test links the masks to what the
// handler really does.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>
#include <signal.h>

#include <cstdint>
#include <supervise.hpp>
#include <type_traits>
#include <utility>

namespace {

namespace sv = supervise;
namespace detail = supervise::detail;
using sv::ignore;
using sv::on;
using sv::print_stats;
using sv::signal_map;
using sv::terminate;

// A signal's bit, computed here rather than with the library's signal_bit.
constexpr std::uint64_t bit(int sig) { return std::uint64_t{1} << (sig - 1); }

// ---- Every atomic a signal handler touches is lock-free ([support.signal]: a handler may only
// use lock-free atomics; a lock inside one would deadlock against the code it interrupted).

using pending_type = decltype(detail::signal_state::pending);
using wake_fd_type = decltype(detail::signal_state::wake_fd);
using deadline_fd_type = decltype(detail::signal_state::deadline_fd);
using counter_type = std::remove_extent_t<decltype(detail::signal_state::received)>;
static_assert(pending_type::is_always_lock_free);
static_assert(wake_fd_type::is_always_lock_free);
static_assert(deadline_fd_type::is_always_lock_free);
static_assert(counter_type::is_always_lock_free);
static_assert(std::is_same_v<decltype(detail::process_signals), detail::signal_state>);

// One counter per signal number, indexed by the number itself.
static_assert(std::extent_v<decltype(detail::signal_state::received)> == detail::max_signal + 1);

// ---- The signal state is ready before any code runs and never destroyed: a handler may fire
// during static initialisation or after main returns.

static_assert(std::is_trivially_destructible_v<detail::signal_state>);
// A constexpr object needs a constant initialiser: process_signals{} is constant-initialised,
// with no constructor running at load time (C++17 has no constinit to say so on the variable).
[[maybe_unused]] constexpr detail::signal_state constant_initialised{};

// ---- One bit per signal, and the 64-bit word covers every signal Linux has.

static_assert(detail::max_signal == 64);
static_assert(_NSIG - 1 == detail::max_signal, "signals are numbered 1 .. _NSIG - 1");
static_assert(detail::signal_bit(1) == 1);
static_assert(detail::signal_bit(64) == std::uint64_t{1} << 63);
static_assert(detail::signal_bit(0) == 0);
static_assert(detail::signal_bit(65) == 0);
static_assert(detail::signal_bit(-1) == 0);
static_assert(detail::signal_bit(SIGTERM) == bit(SIGTERM));

// ---- The seed presets, row by row.

using master = sv::seed_master_signals;
static_assert(master::mask == (bit(SIGINT) | bit(SIGPIPE) | bit(SIGTERM) | bit(SIGUSR1) |
                               bit(SIGHUP) | bit(SIGUSR2)));
static_assert(master::mask_of<terminate> == (bit(SIGINT) | bit(SIGPIPE) | bit(SIGTERM)));
static_assert(master::mask_of<print_stats> == bit(SIGUSR1));
static_assert(master::mask_of<ignore> == (bit(SIGHUP) | bit(SIGUSR2)));
static_assert((master::mask & bit(SIGCHLD)) == 0, "SIGCHLD belongs to the pool");

using worker = sv::seed_worker_signals;
static_assert(worker::mask == (bit(SIGINT) | bit(SIGTERM) | bit(SIGUSR1) | bit(SIGHUP) |
                               bit(SIGUSR2) | bit(SIGPIPE)));
static_assert(worker::mask_of<terminate> == (bit(SIGINT) | bit(SIGTERM)));
static_assert(worker::mask_of<print_stats> == bit(SIGUSR1));
static_assert(worker::mask_of<ignore> == (bit(SIGHUP) | bit(SIGUSR2) | bit(SIGPIPE)));

// The same numbers as literals, where the signal numbers are the usual ones (x86, Arm, RISC-V).
#if SIGHUP == 1 && SIGINT == 2 && SIGUSR1 == 10 && SIGUSR2 == 12 && SIGPIPE == 13 && SIGTERM == 15
static_assert(master::mask == 0x5a03);
static_assert(worker::mask == 0x5a03);
#endif

// ---- Custom maps: the ends of the range, an empty map, actions that are not used.

using edges = signal_map<on<64, ignore>, on<1, terminate>>;
static_assert(edges::mask == ((std::uint64_t{1} << 63) | 1));
static_assert(edges::mask_of<terminate> == 1);
static_assert(edges::mask_of<ignore> == std::uint64_t{1} << 63);
static_assert(edges::mask_of<print_stats> == 0);
static_assert(signal_map<>::mask == 0);
static_assert(signal_map<>::mask_of<terminate> == 0);
static_assert(on<SIGTERM, terminate>::signal == SIGTERM);
static_assert(std::is_same_v<on<SIGTERM, terminate>::action, terminate>);

// ---- The traits behind the pool's static_asserts.

static_assert(detail::is_signal_map<master>::value);
static_assert(detail::is_signal_map<signal_map<>>::value);
static_assert(!detail::is_signal_map<int>::value);
static_assert(!detail::is_signal_map<on<SIGTERM, terminate>>::value);
static_assert(detail::is_action<terminate>::value);
static_assert(detail::is_action<print_stats>::value);
static_assert(detail::is_action<ignore>::value);
static_assert(!detail::is_action<int>::value);
static_assert(!detail::is_action<sv::shutdown_all>::value);
static_assert(detail::all_distinct<>());
static_assert(detail::all_distinct<1, 2, 64>());
static_assert(!detail::all_distinct<1, 2, 1>());

// ---- The handlers: noexcept, and exactly the type sigaction(2) takes.

using sa_handler_type = decltype(std::declval<struct ::sigaction&>().sa_handler);
static_assert(noexcept(detail::on_signal(SIGTERM)));
static_assert(noexcept(detail::on_destroy_deadline(SIGALRM)));
static_assert(std::is_nothrow_invocable_v<decltype(detail::on_signal), int>);
static_assert(std::is_nothrow_invocable_v<decltype(detail::on_destroy_deadline), int>);
static_assert(std::is_same_v<decltype(&detail::on_signal), void (*)(int) noexcept>);
static_assert(std::is_same_v<decltype(&detail::on_destroy_deadline), void (*)(int) noexcept>);
static_assert(std::is_convertible_v<decltype(&detail::on_signal), sa_handler_type>);
static_assert(std::is_convertible_v<decltype(&detail::on_destroy_deadline), sa_handler_type>);

// ---- What a worker calls in its loop does not throw.

static_assert(noexcept(std::declval<sv::worker_context&>().stop_requested()));
static_assert(noexcept(std::declval<const sv::worker_context&>().stop_signal()));
static_assert(noexcept(std::declval<const sv::worker_context&>().index()));

// ---- The system-call seam reports errors by return value, never by exception.

static_assert(noexcept(sv::posix_system::fork()));
static_assert(noexcept(sv::posix_system::kill(0, 0)));
static_assert(noexcept(sv::posix_system::waitpid(0, nullptr, 0)));
static_assert(noexcept(sv::posix_system::sigaction(0, nullptr, nullptr)));
static_assert(noexcept(sv::posix_system::thread_sigmask(0, nullptr, nullptr)));
static_assert(noexcept(sv::posix_system::write(0, nullptr, 0)));
static_assert(noexcept(sv::posix_system::read(0, nullptr, 0)));
static_assert(noexcept(sv::posix_system::close(0)));

}  // namespace

TEST_CASE("on_signal sets the bit the masks use, for every signal of both presets") {
    auto& state = detail::process_signals;
    for (int sig = 1; sig <= detail::max_signal; ++sig) {
        if (((master::mask | worker::mask) & bit(sig)) == 0) continue;
        CAPTURE(sig);
        state.pending.store(0);
        detail::on_signal(sig);  // called directly: wake_fd is -1, so nothing is written
        CHECK(state.pending.load() == bit(sig));
    }
    state.pending.store(0);
    for (auto& counter : state.received) counter.store(0);
}

TEST_CASE("on_signal ignores numbers outside 1..64") {
    auto& state = detail::process_signals;
    state.pending.store(0);
    detail::on_signal(0);
    detail::on_signal(65);
    detail::on_signal(-1);
    CHECK(state.pending.load() == 0);
}
