// The tests' own main. doctest would otherwise install handlers for SIGINT,
// SIGTERM, SIGABRT... around every test case and hide what the library does
// with those signals.
#define DOCTEST_CONFIG_IMPLEMENT
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>
#include <sys/prctl.h>

#include <cstdio>

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
