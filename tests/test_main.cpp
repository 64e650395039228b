// The tests' own main. doctest would otherwise install handlers for SIGINT,
// SIGTERM, SIGABRT... around every test case and hide what the library does
// with those signals.
#define DOCTEST_CONFIG_IMPLEMENT
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

// Every kill(2) made in a test binary (by the tests, and by the library in the
// masters and workers they fork) comes here: the test link has
// -Wl,--wrap=kill (tests/BUILD.bazel). kill(-1) signals every process the
// caller may signal, which for a test run as root outside a sandbox is the
// whole machine; kill(0) reaches the test's own process group, the seed's bug.
// A pid a test failed to read (-1) must never become such a call; the library
// must never make one. Either aborts the process that tried, loudly.
extern "C" int __real_kill(pid_t pid, int sig);
extern "C" int __wrap_kill(pid_t pid, int sig) {
    if (pid == -1 || pid == 0) {
        static const char message[] = "test_main: refused kill(-1) or kill(0); aborting\n";
        (void)!::write(STDERR_FILENO, message, sizeof message - 1);
        std::abort();
    }
    return __real_kill(pid, sig);
}

int main(int argc, char** argv) {
    // Orphans (workers of a master a test killed) are re-parented to us, so a
    // test can reap them and prove none is left running.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) {
        std::perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
