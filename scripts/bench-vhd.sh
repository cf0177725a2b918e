#!/usr/bin/env bash
# Benchmark: dynamic VHD -> XVA against qemu-img (issue 10); see scripts/bench-image.sh.
#
#   scripts/bench-vhd.sh [WORKDIR]
exec "$(dirname "$0")/bench-image.sh" vhd "$@"
