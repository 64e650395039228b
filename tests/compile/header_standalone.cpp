// The header on its own: nothing is included before it, so a missing #include in supervise.hpp
// fails here.
#include <supervise.hpp>

// Twice, to check the include guard (a separate block, so clang-format keeps both).
#include <supervise.hpp>
