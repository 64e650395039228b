"""Compiler flags for the project's own C++ targets."""

# Warnings are errors in our code only; third-party headers (doctest) are included as system
# headers and built without these flags. Load this in BUILD files rather than setting it in
# .bazelrc, where it would apply to external repositories too.
SUPERVISE_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
]
