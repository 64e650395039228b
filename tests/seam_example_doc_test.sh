#!/usr/bin/env bash
# docs/testing-your-daemon.md's C++ example is tests/seam_example_test.cpp,
# verbatim: that file is compiled with -Werror and run by
# //tests:seam_example_test, so the documented way to test a daemon's failure
# handling cannot rot.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
doc="${root}/docs/testing-your-daemon.md"
example="$(awk '/^```cpp$/ { inside = 1; next } /^```$/ { if (inside) exit } inside' "${doc}")"
if [[ "${example}" != "$(cat "${root}/tests/seam_example_test.cpp")" ]]; then
    echo "FAIL: docs/testing-your-daemon.md's example differs from tests/seam_example_test.cpp:" >&2
    diff <(printf '%s\n' "${example}") "${root}/tests/seam_example_test.cpp" >&2 || true
    exit 1
fi
echo "PASS: docs/testing-your-daemon.md example == tests/seam_example_test.cpp ($(printf '%s\n' "${example}" | wc -l) lines)"
