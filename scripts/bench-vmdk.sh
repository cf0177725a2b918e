#!/usr/bin/env bash
# Benchmark: VMDK -> XVA against qemu-img (issue 3); see scripts/bench-image.sh.
#
#   scripts/bench-vmdk.sh [WORKDIR]
exec "$(dirname "$0")/bench-image.sh" vmdk "$@"
