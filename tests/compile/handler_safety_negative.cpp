// Negative controls for handler_safety_test.sh: copies of supervise::detail::on_signal, each
// with one mistake a handler must not make. The checker must reject every one of them, and
// accept `faithful_copy`, which has no mistake: a checker that accepts everything, or that
// rejects this code for another reason, fails the test. Linked but never run.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <supervise.hpp>

namespace negative {

using supervise::detail::max_signal;
using supervise::detail::process_signals;
using supervise::detail::signal_bit;

// Where the bodies below put what they must not compute, so that nothing is optimised away.
void* volatile sink = nullptr;
void (*volatile callback)(int) = nullptr;

// on_signal as the header has it.
void faithful_copy(int sig) noexcept {
    const int saved_errno = errno;
    if ((process_signals.exit_now.load(std::memory_order_relaxed) & signal_bit(sig)) != 0) {
        ::_exit(0);
    }
    if (sig >= 1 && sig <= max_signal) {
        process_signals.received[sig].fetch_add(1, std::memory_order_relaxed);
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        process_signals.writing.fetch_add(1, std::memory_order_seq_cst);
        const int fd = process_signals.wake_fd.load(std::memory_order_seq_cst);
        if (fd >= 0) {
            static const char byte = 0;
            if (::write(fd, &byte, 1) < 0) {
            }
        }
        process_signals.writing.fetch_sub(1, std::memory_order_release);
    }
    errno = saved_errno;
}

// stdio takes a lock and may allocate (the Kamailio crash of PR #2127).
void logs_with_printf(int sig) noexcept {
    const int saved_errno = errno;
    if (sig >= 1 && sig <= max_signal) {
        process_signals.received[sig].fetch_add(1, std::memory_order_relaxed);
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        std::printf("signal %d\n", sig);
    }
    errno = saved_errno;
}

// The allocation is one call down, in a helper of this program: found only by following calls.
[[gnu::noinline]] void remember(int sig) noexcept {
    sink = std::malloc(static_cast<std::size_t>(sig));
}

void allocates_in_a_helper(int sig) noexcept {
    const int saved_errno = errno;
    if (sig >= 1 && sig <= max_signal) {
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        remember(sig);
    }
    errno = saved_errno;
}

// Builds a std::string (which allocates its buffer in _M_create) with the library's signal_name.
void names_the_signal(int sig) noexcept {
    const int saved_errno = errno;
    if (sig >= 1 && sig <= max_signal) {
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        try {
            const std::string name = supervise::signal_name(sig);
            sink = const_cast<char*>(name.c_str());
        } catch (...) {
        }
    }
    errno = saved_errno;
}

// Calls through a pointer: the target cannot be checked, so the call is refused.
void calls_through_a_pointer(int sig) noexcept {
    const int saved_errno = errno;
    if (sig >= 1 && sig <= max_signal) {
        process_signals.pending.fetch_or(signal_bit(sig), std::memory_order_release);
        if (callback != nullptr) callback(sig);
    }
    errno = saved_errno;
}

// Leaves with exit(3), which runs atexit handlers and flushes stdio, instead of _exit(2).
void exits_with_exit(int) noexcept {
    static const char message[] = "deadline\n";
    const int fd = process_signals.deadline_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
        if (::write(fd, message, sizeof message - 1) < 0) {
        }
    }
    std::exit(EXIT_FAILURE);
}

}  // namespace negative

using handler = void (*)(int);

handler volatile controls[] = {
    &negative::faithful_copy,           &negative::logs_with_printf,
    &negative::allocates_in_a_helper,   &negative::names_the_signal,
    &negative::calls_through_a_pointer, &negative::exits_with_exit,
};

int main(int argc, char**) { return controls[argc % 6] == nullptr ? 1 : 0; }
