#!/usr/bin/env bash
# Benchmark: dynamic VHDX -> XVA against qemu-img (issue 10); see scripts/bench-image.sh.
#
#   scripts/bench-vhdx.sh [WORKDIR]
exec "$(dirname "$0")/bench-image.sh" vhdx "$@"
