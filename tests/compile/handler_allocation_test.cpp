// Run-time proof that the signal handlers neither allocate nor change errno, with real signals.
//
// This program replaces malloc, calloc, realloc, free and the aligned allocators with versions
// that count calls and forward to glibc's own (__libc_malloc, ...; glibc supports replacing
// malloc this way, see "Replacing malloc" in its manual). operator new and everything else in
// the program allocate through them. supervise::detail::on_signal is installed with sigaction
// and thousands of signals are sent to the process; the count must not move while they are
// handled, and errno must come back unchanged even when the handler's write(2) fails.
//
// Sanitizers change what can be observed, so parts are compiled out under them:
// - AddressSanitizer and ThreadSanitizer own malloc and the replacement would fight them: no
//   allocation counting (the other checks run);
// - ThreadSanitizer runs signal handlers itself, deferred, and restores errno around them, so
//   an errno check would pass whatever the handler does: no errno checks either.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <supervise.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_OWNS_MALLOC 1
#endif
#if defined(__SANITIZE_THREAD__)
#define SANITIZER_OWNS_MALLOC 1
#define SANITIZER_SAVES_ERRNO 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZER_OWNS_MALLOC 1
#endif
#if __has_feature(thread_sanitizer)
#define SANITIZER_OWNS_MALLOC 1
#define SANITIZER_SAVES_ERRNO 1
#endif
#endif
#if defined(SANITIZER_OWNS_MALLOC)
#define COUNT_ALLOCATIONS 0
#else
#define COUNT_ALLOCATIONS 1
#endif
#if defined(SANITIZER_SAVES_ERRNO)
#define CHECK_ERRNO 0
#else
#define CHECK_ERRNO 1
#endif

namespace {

// Calls to the allocator; and, in a forked child, whether an allocation ends the child at once
// (for the deadline handler, which never returns to let anyone look at a counter).
std::atomic<std::uint64_t> allocations{0};
std::atomic<bool> exit_on_allocation{false};
constexpr int allocated_in_child = 99;

[[maybe_unused]] void count_allocation() noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (exit_on_allocation.load(std::memory_order_relaxed)) ::_exit(allocated_in_child);
}

}  // namespace

#if COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* old, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* block);

void* malloc(std::size_t size) noexcept {
    count_allocation();
    return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
    count_allocation();
    return __libc_calloc(count, size);
}
void* realloc(void* old, std::size_t size) noexcept {
    count_allocation();
    return __libc_realloc(old, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
    count_allocation();
    return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
    count_allocation();
    return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
    count_allocation();
    if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void* block = __libc_memalign(alignment, size);
    if (block == nullptr) return ENOMEM;
    *out = block;
    return 0;
}
// Freeing is counted too: a handler has no business freeing either.
void free(void* block) noexcept {
    if (block != nullptr) count_allocation();
    __libc_free(block);
}
}  // extern "C"
#endif

namespace {

namespace detail = supervise::detail;

// How many signals each test sends: enough to fill the wake-up pipe many times over.
constexpr int signals_to_send = 20000;
constexpr int errno_sentinel = 12345;  // not an errno value any call sets

// A pipe like the pool's wake-up pipe (non-blocking), made small so that the handler's write
// fails with EAGAIN for most of the signals: the path where errno would be clobbered.
struct wake_pipe {
    int read_fd = -1;
    int write_fd = -1;
    int capacity = 0;
    wake_pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        read_fd = fds[0];
        write_fd = fds[1];
        capacity = ::fcntl(write_fd, F_SETPIPE_SZ, 4096);
        REQUIRE(capacity > 0);
        REQUIRE(capacity < signals_to_send);
    }
    ~wake_pipe() {
        ::close(read_fd);
        ::close(write_fd);
    }
    wake_pipe(const wake_pipe&) = delete;
    wake_pipe& operator=(const wake_pipe&) = delete;
    int drain() const {
        char buf[4096];
        int total = 0;
        for (;;) {
            const ssize_t n = ::read(read_fd, buf, sizeof buf);
            if (n <= 0) return total;
            total += static_cast<int>(n);
        }
    }
};

// Installs a handler for the duration of a test and puts the old one back.
class installed {
  public:
    installed(int sig, void (*handler)(int)) : sig_(sig) {
        struct ::sigaction action {};
        action.sa_handler = handler;
        sigemptyset(&action.sa_mask);
        REQUIRE(::sigaction(sig_, &action, &previous_) == 0);
    }
    ~installed() { ::sigaction(sig_, &previous_, nullptr); }
    installed(const installed&) = delete;
    installed& operator=(const installed&) = delete;

  private:
    int sig_;
    struct ::sigaction previous_ {};
};

void reset_signal_state() {
    detail::process_signals.pending.store(0);
    detail::process_signals.wake_fd.store(-1);
    detail::process_signals.deadline_fd.store(-1);
    for (auto& counter : detail::process_signals.received) counter.store(0);
}

struct delivery {
    std::uint64_t allocations = 0;  // allocator calls while the signals were sent and handled
    int errno_changed = 0;          // signals after which errno was not the sentinel
};

// Sends `count` signals to this process, alternating raise(3) and kill(2): either way the
// handler has run before the call returns (the process is single-threaded and the signal is
// not blocked). Nothing between the two reads of the counter allocates but the handler.
delivery send_signals(int sig, int count) {
    const pid_t self = ::getpid();
    delivery result;
    const std::uint64_t before = allocations.load();
    for (int i = 0; i < count; ++i) {
        errno = errno_sentinel;
        if (i % 2 == 0) {
            ::raise(sig);
        } else {
            ::kill(self, sig);
        }
        if (errno != errno_sentinel) ++result.errno_changed;
    }
    result.allocations = allocations.load() - before;
    return result;
}

// Negative controls: a handler that allocates and one that lets write(2) clobber errno. The
// measurements must notice both, or they could not notice the real handler doing it.
void* volatile allocated_by_handler = nullptr;
int full_pipe_fd = -1;

void allocating_handler(int) {
    void* block = std::malloc(32);
    allocated_by_handler = block;
    std::free(block);
}

void errno_clobbering_handler(int) {
    const char byte = 0;
    if (::write(full_pipe_fd, &byte, 1) < 0) {
    }
}

}  // namespace

TEST_CASE("the allocation counter sees every kind of allocation") {
    if (!COUNT_ALLOCATIONS) {
        MESSAGE("allocations are not counted under this sanitizer");
        return;
    }
    const std::uint64_t before = allocations.load();
    void* a = std::malloc(16);
    void* b = std::calloc(2, 16);
    void* c = std::realloc(nullptr, 16);
    void* d = std::aligned_alloc(64, 64);
    void* e = nullptr;
    REQUIRE(::posix_memalign(&e, 64, 64) == 0);
    allocated_by_handler = a;
    allocated_by_handler = b;
    allocated_by_handler = c;
    allocated_by_handler = d;
    allocated_by_handler = e;
    std::free(a);
    std::free(b);
    std::free(c);
    std::free(d);
    std::free(e);
    CHECK(allocations.load() - before == 10);

    const std::uint64_t before_new = allocations.load();
    auto* number = new int(7);
    allocated_by_handler = number;
    delete number;
    const std::string text(1000, 'x');  // beyond the short-string buffer
    CHECK(text.size() == 1000);
    CHECK(allocations.load() - before_new >= 3);
}

TEST_CASE("the measurement notices a handler that allocates") {
    if (!COUNT_ALLOCATIONS) return;
    installed handler(SIGUSR1, allocating_handler);
    const delivery result = send_signals(SIGUSR1, 100);
    CHECK(result.allocations >= 200);  // a malloc and a free per signal
}

TEST_CASE("the measurement notices a handler that clobbers errno") {
    if (!CHECK_ERRNO) {
        MESSAGE("errno is not checked under ThreadSanitizer, which restores it around handlers");
        return;
    }
    wake_pipe pipe;
    char fill[4096] = {};
    while (::write(pipe.write_fd, fill, sizeof fill) > 0) {
    }
    full_pipe_fd = pipe.write_fd;
    installed handler(SIGUSR1, errno_clobbering_handler);
    const delivery result = send_signals(SIGUSR1, 100);
    CHECK(result.errno_changed == 100);
    full_pipe_fd = -1;
}

TEST_CASE("on_signal neither allocates nor changes errno, over thousands of signals") {
    wake_pipe pipe;
    // A standard signal, a second one and a real-time one.
    const int sigrt = SIGRTMIN + 2;
    for (const int sig : {SIGUSR1, SIGHUP, sigrt}) {
        CAPTURE(sig);
        reset_signal_state();
        detail::process_signals.wake_fd.store(pipe.write_fd);
        installed handler(sig, detail::on_signal);
        const delivery result = send_signals(sig, signals_to_send);
        if (COUNT_ALLOCATIONS) CHECK(result.allocations == 0);
        if (CHECK_ERRNO) CHECK(result.errno_changed == 0);
        // The handler did run for every signal, and took the write path each time: the pipe
        // filled up, so most writes failed with EAGAIN, and errno survived those too.
        CHECK(detail::process_signals.received[sig].load() ==
              static_cast<std::uint32_t>(signals_to_send));
        CHECK(detail::process_signals.pending.load() == detail::signal_bit(sig));
        const int woken = pipe.drain();
        CHECK(woken == pipe.capacity);
        CHECK(woken < signals_to_send);
    }
    reset_signal_state();
}

TEST_CASE("on_destroy_deadline writes its line and leaves with status 1, allocating nothing") {
    // The handler ends the process, so it runs in a child, which must not allocate once the
    // alarm is armed: count_allocation() would end it with status 99 instead.
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::fflush(nullptr);  // the child must not write the parent's buffered output again
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        detail::process_signals.deadline_fd.store(fds[1]);
        struct ::sigaction action {};
        action.sa_handler = detail::on_destroy_deadline;
        sigemptyset(&action.sa_mask);
        if (::sigaction(SIGALRM, &action, nullptr) != 0) ::_exit(98);
        exit_on_allocation.store(true);
        ::raise(SIGALRM);
        ::_exit(97);  // the handler returned: it must not
    }
    ::close(fds[1]);
    // Read until the child's end of the pipe closes (it exited), waiting 10 s at most.
    std::string line;
    bool closed = false;
    const std::int64_t deadline = detail::monotonic_ms() + 10000;
    while (!closed && detail::monotonic_ms() < deadline) {
        struct pollfd pfd {};
        pfd.fd = fds[0];
        pfd.events = POLLIN;
        if (::poll(&pfd, 1, static_cast<int>(deadline - detail::monotonic_ms())) <= 0) continue;
        char buf[256];
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) line.append(buf, static_cast<std::size_t>(n));
        closed = n == 0;
    }
    ::close(fds[0]);
    if (!closed) ::kill(child, SIGKILL);
    CHECK(closed);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    const int code = WEXITSTATUS(status);
    CHECK(code != allocated_in_child);
    CHECK(code == 1);
    CHECK(line == "supervise: destroy hooks exceeded destroy_timeout; exiting with status 1\n");
}
