// An example's source file without its main(), for the fuzz targets and the
// tests that call its parsers directly: define SUPERVISE_EXAMPLE_SOURCE to its
// quoted path ("examples/daemon/daemon.cpp"), then include this. Most of the
// example's functions are then unused in the including translation unit,
// which -Wall reports.
//
// No include guard: each translation unit includes it once, for one example.

#define SUPERVISE_EXAMPLE_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include SUPERVISE_EXAMPLE_SOURCE  // NOLINT(bugprone-suspicious-include): on purpose
#pragma GCC diagnostic pop
