#!/usr/bin/env bash
# The project's test command (README, CI): every unit and integration test of the workspace.
# Tests that need qemu-img fail, not skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
