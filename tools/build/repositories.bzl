"""Repository rules that wire Debian-packaged Bazel dependencies in, so builds never download.

Bazel here is Debian's bazel-bootstrap 4.2.3; rules_cc and doctest come from Debian packages too.
"""

# rules_cc 0.0.4 loads this symbol from @bazel_tools, which only has it since Bazel 5.1, so
# `load("@rules_cc//cc:defs.bzl", ...)` fails on Bazel 4.2.3. Calling it only returns the C++
# toolchain type, which is what we put in its place.
_MISSING_SYMBOL = "use_cpp_toolchain"
_MISSING_SYMBOL_VALUE = "[\"@bazel_tools//tools/cpp:toolchain_type\"]"

def _local_rules_cc_impl(rctx):
    root = rctx.attr.path
    found = rctx.execute(["find", root, "-type", "f"])
    if found.return_code != 0 or not found.stdout:
        fail("rules_cc not found at %s: install Debian's bazel-rules-cc" % root)

    for src in found.stdout.splitlines():
        rel = src[len(root) + 1:]
        if rel == "WORKSPACE":
            continue  # Upstream's fetches its own dependencies; a one-line one is written below.
        content = rctx.read(src) if src.endswith(".bzl") else ""
        if _MISSING_SYMBOL not in content:
            rctx.symlink(src, rel)
            continue

        # Drop the symbol from the load() and replace its single call with its value.
        content = content.replace(", \"%s\")" % _MISSING_SYMBOL, ")")
        content = content.replace(_MISSING_SYMBOL + "()", _MISSING_SYMBOL_VALUE)
        if _MISSING_SYMBOL in content:
            fail("%s: unexpected use of %s; this rules_cc needs a newer Bazel" % (src, _MISSING_SYMBOL))
        rctx.file(rel, content, executable = False)

    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name, executable = False)

local_rules_cc = repository_rule(
    implementation = _local_rules_cc_impl,
    doc = "Exposes an installed rules_cc, patched to load on Bazel 4.2.",
    attrs = {
        "path": attr.string(
            default = "/usr/share/bazel/rules/cc",
            doc = "Directory of the installed rules_cc (Debian's bazel-rules-cc).",
        ),
    },
    # Re-run at each Bazel server start (cheap), so an upgraded Debian package is picked up.
    local = True,
)

_DOCTEST_BUILD = """\
load("@rules_cc//cc:defs.bzl", "cc_library")

# `includes` makes it a -isystem directory: our -Werror must not apply to doctest's header.
cc_library(
    name = "doctest",
    hdrs = ["doctest/doctest.h"],
    includes = ["."],
    visibility = ["//visibility:public"],
)
"""

def _local_doctest_impl(rctx):
    header = rctx.path(rctx.attr.header)
    if not header.exists:
        fail("%s not found: install Debian's doctest-dev" % header)

    # Only the one header, laid out so that `#include <doctest/doctest.h>` works.
    rctx.symlink(header, "doctest/doctest.h")
    rctx.file("BUILD.bazel", _DOCTEST_BUILD, executable = False)
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name, executable = False)

local_doctest = repository_rule(
    implementation = _local_doctest_impl,
    doc = "Exposes an installed single-header doctest as a cc_library.",
    attrs = {
        "header": attr.string(
            default = "/usr/include/doctest/doctest.h",
            doc = "Path of doctest.h (Debian's doctest-dev).",
        ),
    },
    local = True,
)
