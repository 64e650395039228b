#!/usr/bin/env bash
# MODULE.bazel's version is the header's SUPERVISE_VERSION_MAJOR.MINOR.PATCH: a release that
# bumps one and not the other would publish a module that does not say which header it holds.
# Strict on form: a MODULE.bazel or a header this cannot read fails, rather than passing unread.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
module="${root}/MODULE.bazel"
header="${root}/include/supervise.hpp"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Only the module() call's version, not those of the bazel_dep() calls after it.
module_call="$(sed -n '/^module($/,/^)$/p' "${module}")"
[[ -n "${module_call}" ]] || fail "MODULE.bazel: no 'module(' ... ')' call, each on a line of its own"
versions="$(printf '%s\n' "${module_call}" | sed -n 's/^    version = "\([^"]*\)",$/\1/p')"
[[ $(printf '%s\n' "${versions}" | grep -c .) -eq 1 ]] ||
    fail "MODULE.bazel: module() has no line '    version = \"X.Y.Z\",' or more than one"
module_version="${versions}"

header_part() {
    local values
    values="$(sed -n "s/^#define SUPERVISE_VERSION_$1 \([0-9][0-9]*\)$/\1/p" "${header}")"
    [[ $(printf '%s\n' "${values}" | grep -c .) -eq 1 ]] ||
        fail "include/supervise.hpp: no line '#define SUPERVISE_VERSION_$1 N' or more than one"
    printf '%s' "${values}"
}
# One assignment each, so that set -e stops at the first part that cannot be read.
major="$(header_part MAJOR)"
minor="$(header_part MINOR)"
patch="$(header_part PATCH)"
header_version="${major}.${minor}.${patch}"

[[ "${module_version}" == "${header_version}" ]] ||
    fail "MODULE.bazel says version ${module_version}, include/supervise.hpp's SUPERVISE_VERSION_* say ${header_version}"
echo "PASS: MODULE.bazel's version ${module_version} == include/supervise.hpp's"
