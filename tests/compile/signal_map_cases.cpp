// Signal maps and pools that must not compile, each with a positive twin that must.
//
// signal_map_compile_fail_test.sh compiles this file
//   with -DCASE_<name> -DEXPECT_REJECTED, once per case: it must fail, with the case's
//   static_assert message;
//   with -DALL_TWINS, once: every case's positive twin together, which must compile
//   warning-free.
// PICK(rejected, accepted) is the one token in which a case and its twin differ, so twins that
// compile prove each rejection comes from that token and not from a broken snippet or harness.
#include <supervise.hpp>
#include <tuple>

#if defined(EXPECT_REJECTED) && defined(ALL_TWINS)
#error "EXPECT_REJECTED selects one case: not with ALL_TWINS"
#endif
#if defined(EXPECT_REJECTED)
#define PICK(rejected, accepted) rejected
#else
#define PICK(rejected, accepted) accepted
#endif

using supervise::ignore;
using supervise::on;
using supervise::print_stats;
using supervise::signal_map;
using supervise::terminate;

// Requiring a complete type runs the class's static_asserts, as declaring a pool or using a
// map's mask does in real code.
template <class T>
constexpr bool instantiated = sizeof(T) > 0;

// Types the pool cases choose from (PICK's arguments cannot contain commas).
struct not_an_action {};
struct reload {};  // an action the library does not have
using master_map = signal_map<on<SIGTERM, terminate>, on<SIGUSR1, print_stats>>;
using not_a_map = std::tuple<on<SIGTERM, terminate>, on<SIGUSR1, print_stats>>;
// Master maps without a row that stops the pool on SIGTERM, and the accepted ones.
using empty_map = signal_map<>;
using sigint_only_master = signal_map<on<SIGINT, terminate>>;
using sigterm_ignored_master = signal_map<on<SIGTERM, ignore>, on<SIGINT, terminate>>;
using sigterm_graceful_master = signal_map<on<SIGTERM, supervise::graceful_stop>>;
struct worker {
    void operator()(supervise::worker_context&) const {}
};
struct worker_taking_int {
    void operator()(int) const {}
};
struct worker_taking_nothing {
    void operator()() const {}
};
struct own_strategy {};
struct test_system : supervise::posix_system {};
struct unrelated_system {};

#if defined(CASE_same_signal_twice) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<SIGTERM, terminate>, on<PICK(SIGTERM, SIGINT), ignore>>>);
#endif
#if defined(CASE_same_signal_twice_far_apart) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(
    instantiated<signal_map<on<SIGHUP, ignore>, on<SIGTERM, terminate>, on<SIGUSR1, print_stats>,
                            on<PICK(SIGHUP, SIGUSR2), ignore>>>);
#endif
#if defined(CASE_sigkill) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGKILL, SIGTERM), terminate>>>);
#endif
#if defined(CASE_sigstop) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGSTOP, SIGTSTP), ignore>>>);
#endif
#if defined(CASE_sigsegv) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGSEGV, SIGUSR1), terminate>>>);
#endif
#if defined(CASE_sigbus) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGBUS, SIGUSR1), terminate>>>);
#endif
#if defined(CASE_sigfpe) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGFPE, SIGUSR1), terminate>>>);
#endif
#if defined(CASE_sigill) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGILL, SIGUSR1), terminate>>>);
#endif
#if defined(CASE_sigchld) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(SIGCHLD, SIGHUP), ignore>>>);
#endif
#if defined(CASE_signal_zero) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(0, 1), ignore>>>);
#endif
#if defined(CASE_signal_negative) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(-1, 1), ignore>>>);
#endif
#if defined(CASE_signal_65) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<PICK(65, 64), ignore>>>);
#endif
#if defined(CASE_action_not_a_type_of_the_library) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<SIGHUP, PICK(reload, ignore)>>>);
#endif
#if defined(CASE_action_int) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<SIGHUP, PICK(int, ignore)>>>);
#endif
#if defined(CASE_action_struct) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<signal_map<on<SIGHUP, PICK(not_an_action, print_stats)>>>);
#endif
#if defined(CASE_master_signals_not_a_map) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, PICK(not_a_map, master_map)>>);
#endif
#if defined(CASE_master_map_empty) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, PICK(empty_map, master_map)>>);
#endif
#if defined(CASE_master_without_sigterm) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, PICK(sigint_only_master, master_map)>>);
#endif
#if defined(CASE_master_sigterm_ignored) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(
    instantiated<supervise::pool<worker, PICK(sigterm_ignored_master, sigterm_graceful_master)>>);
#endif
#if defined(CASE_worker_signals_not_a_map) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, master_map, PICK(not_a_map, master_map)>>);
#endif
#if defined(CASE_strategy) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, master_map, master_map,
                                           PICK(own_strategy, supervise::shutdown_all)>>);
#endif
#if defined(CASE_system) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<worker, master_map, master_map, supervise::shutdown_all,
                                           PICK(unrelated_system, test_system)>>);
#endif
#if defined(CASE_worker_taking_int) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<PICK(worker_taking_int, worker)>>);
#endif
#if defined(CASE_worker_taking_nothing) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<PICK(worker_taking_nothing, worker)>>);
#endif
#if defined(CASE_worker_not_callable) || defined(ALL_TWINS)
#define CASE_SELECTED
static_assert(instantiated<supervise::pool<PICK(int, worker)>>);
#endif

#if !defined(CASE_SELECTED)
#error "compile with -DALL_TWINS or -DCASE_<name>, a case of signal_map_compile_fail_test.sh"
#endif
