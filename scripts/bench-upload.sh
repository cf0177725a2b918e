#!/usr/bin/env bash
# Streaming to a host vs writing a file (issue 5's performance target: upload <= 1.1 x file).
#
# Runs `cargo bench --bench upload` (benches/upload.rs, a plain program): a sparse disk of
# XVA_BENCH_GIB GiB (default 4) with 25 % data (every fourth 4 MiB
# stretch), converted three times to a file and three times streamed over loopback to the
# XenAPI test server in sink mode (reads and discards the body, then reports success, like a
# host on another machine would from the client's point of view). Prints the best time of each
# and the ratio. Needs ~XVA_BENCH_GIB/4 GiB of free space in $TMPDIR for the disk plus the same
# again for the file output.
#
# Usage: scripts/bench-upload.sh            (XVA_BENCH_GIB=1 for a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
export XVA_BENCH_GIB="${XVA_BENCH_GIB:-4}"
cargo bench --bench upload 2>&1 | grep -E 'bench:|panicked|error'
