#!/usr/bin/env bash
# Benchmark: qcow2 (plain, zlib, zstd) -> XVA against qemu-img (issue 9); see
# scripts/bench-image.sh.
#
#   scripts/bench-qcow2.sh [WORKDIR]
exec "$(dirname "$0")/bench-image.sh" qcow2 "$@"
