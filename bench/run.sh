#!/usr/bin/env bash
# `tools/bazel run //bench -- [--quick] [--only PART,...]`: runs bench/run.py on the
# working tree (bazel run starts us in the runfiles; BUILD_WORKSPACE_DIRECTORY is the tree).
set -euo pipefail
cd "${BUILD_WORKSPACE_DIRECTORY:?run this with tools/bazel run //bench}"
exec python3 bench/run.py "$@"
