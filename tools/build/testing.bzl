"""Every test of the suite, plain and under the sanitizers, in one `bazel test //...`.

A sanitizer is a build flag, and Bazel 4 has no per-target configuration for cc rules, so
`--config=asan` would need a second Bazel run that CI's single test command cannot give. Instead
each test (and each program a test runs) is also built as a twin with the sanitizer's flags in
its own copts/linkopts: `foo_test` plus `foo_test_asan_ubsan` (and `foo_test_tsan` where it
applies). The twins run in the same `bazel test //...` and are counted like any other test.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")
load("//tools/build:copts.bzl", "SUPERVISE_COPTS")

# ASan and UBSan together; TSan alone (it cannot be combined with ASan). -fno-sanitize-recover
# makes the first UBSan report fail the test instead of printing and going on.
SANITIZERS = {
    "asan_ubsan": [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ],
    "tsan": ["-fsanitize=thread"],
}

# Under --config=asan, ubsan or tsan every target already gets that sanitizer from .bazelrc,
# and a twin's own flags could not be combined with it (-fsanitize=thread with address): the
# twins are then built with the configuration's sanitizer alone.
def _twin_flags(flags):
    return select({
        "//tools/build:global_sanitizer": [],
        "//conditions:default": flags,
    })

def supervise_binary(name, sanitizers = [], copts = [], linkopts = [], **kwargs):
    """A cc_binary of the project, plus one twin per sanitizer (`name + "_" + sanitizer`)."""
    cc_binary(name = name, copts = SUPERVISE_COPTS + copts, linkopts = linkopts, **kwargs)
    for sanitizer in sanitizers:
        cc_binary(
            name = name + "_" + sanitizer,
            copts = SUPERVISE_COPTS + copts + _twin_flags(SANITIZERS[sanitizer]),
            linkopts = linkopts + _twin_flags(SANITIZERS[sanitizer]),
            **kwargs
        )

def supervise_test(
        name,
        sanitizers = ["asan_ubsan"],
        programs = {},
        copts = [],
        linkopts = [],
        data = [],
        env = {},
        twin_env = {},
        **kwargs):
    """A cc_test of the project, plus one twin per sanitizer.

    Args:
      name: the plain test's name; twins are `name + "_" + sanitizer`.
      sanitizers: keys of SANITIZERS. "tsan" only for tests that need no fork() after a
        thread started (TSan's runtime starts one of its own).
      programs: {ENV_NAME: label} of supervise_binary targets the test runs. The plain test gets
        the label, each twin the same binary's twin, named to the test by $ENV_NAME (a path
        under the runfiles tree, which tests read with harness::runfile).
      copts, linkopts, data, env: as for cc_test.
      twin_env: more environment for the sanitizer twins only, e.g. fewer iterations for a
        heavy test whose instrumented build runs several times slower.
      **kwargs: as for cc_test (size, srcs, deps, tags, ...).
    """
    variants = [("", [])] + [("_" + s, SANITIZERS[s]) for s in sanitizers]
    for suffix, flags in variants:
        extra_env = twin_env if suffix else {}
        program_labels = {
            variable: label + suffix
            for variable, label in programs.items()
        }
        program_env = {
            variable: "$(rootpath %s)" % label
            for variable, label in program_labels.items()
        }
        cc_test(
            name = name + suffix,
            copts = SUPERVISE_COPTS + copts + _twin_flags(flags),
            linkopts = linkopts + _twin_flags(flags),
            data = data + program_labels.values(),
            env = dict(env.items() + extra_env.items() + program_env.items()),
            **kwargs
        )
