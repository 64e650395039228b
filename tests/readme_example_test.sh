#!/usr/bin/env bash
# The README's C++ example is examples/minimal/main.cpp, verbatim: the file is
# compiled (with -Werror) by //examples/minimal, so the example on the first
# screen cannot rot.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
example="$(awk '/^```cpp$/ { inside = 1; next } /^```$/ { if (inside) exit } inside' "${root}/README.md")"
if [[ "${example}" != "$(cat "${root}/examples/minimal/main.cpp")" ]]; then
    echo "FAIL: README.md's example differs from examples/minimal/main.cpp:" >&2
    diff <(printf '%s\n' "${example}") "${root}/examples/minimal/main.cpp" >&2 || true
    exit 1
fi
lines=$(printf '%s\n' "${example}" | wc -l)
echo "PASS: README example == examples/minimal/main.cpp (${lines} lines)"
