// doctest's main for parsers_test. No signal or process is involved, so
// doctest keeps its own signal handlers here (they report a crash by name).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
