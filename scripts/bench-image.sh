#!/usr/bin/env bash
# Benchmark: disk image -> XVA with `xva convert`, against `qemu-img convert -O raw` of the same
# image in the same run (issues 3 and 9).
#
#   scripts/bench-image.sh vmdk|qcow2|vhd|vhdx [WORKDIR]   (default: a temporary directory, removed at the end)
#
# Disks (4 GiB virtual, 25 % data in scattered 1 MiB blocks, each block half random and half
# text so that compression does something), written by qemu-img from one raw file:
#   vmdk   monolithicSparse (64 KiB grains), streamOptimized (zlib-compressed grains)
#   qcow2  plain (64 KiB clusters), zlib (`-c`), zstd (`-c -o compression_type=zstd`)
#   vhd    dynamic (2 MiB blocks)      vhdx   dynamic (qemu's default block size)
# Page cache warmed before every run, best of $RUNS (default 3). Reports wall time, MB/s of
# virtual disk, peak RSS, and the ratio of throughputs xva / qemu-img (targets: vmdk >= 1.0;
# qcow2 plain >= 1.0, zlib >= 2.0; vhd and vhdx dynamic >= 1.0).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-img >/dev/null || { echo "qemu-img is needed (apt-get install qemu-utils)" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin xva
XVA="$CARGO_TARGET_DIR/release/xva"
FMT="${1:?usage: scripts/bench-image.sh vmdk|qcow2|vhd|vhdx [WORKDIR]}"
# qemu-img's name of the format.
QFMT="$FMT"
[ "$FMT" != vhd ] || QFMT=vpc
case "$FMT" in
    vmdk) VARIANTS="monolithicSparse streamOptimized" ;;
    qcow2) VARIANTS="plain zlib zstd" ;;
    vhd | vhdx) VARIANTS="dynamic" ;;
    *) echo "unknown format $FMT (vmdk, qcow2, vhd or vhdx)" >&2; exit 2 ;;
esac
WORK="${2:-$(mktemp -d)}"
[ -n "${2:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
SIZE=$((4 << 30))
RUNS="${RUNS:-3}"

python3 - "$WORK" "$SIZE" <<'PY'
import os, random, sys
work, size = sys.argv[1], int(sys.argv[2])
mb = 1 << 20
raw = os.path.join(work, "q25.raw")
if not (os.path.exists(raw) and os.path.getsize(raw) == size):
    rnd = random.Random(3)
    text = b"".join(b"line %08d of a log file in a guest disk\n" % i for i in range(13000))[: mb // 2]
    with open(raw, "wb") as f:
        f.truncate(size)
        for i in sorted(rnd.sample(range(size // mb), size // mb // 4)):
            f.seek(i * mb)
            f.write(os.urandom(mb // 2) + text)
PY
# make VARIANT: the image of one variant, from the raw file.
make() {
    case "$FMT:$1" in
        vmdk:*) qemu-img convert -f raw -O vmdk -o subformat="$1" "$WORK/q25.raw" "$WORK/$1.$FMT" ;;
        qcow2:plain) qemu-img convert -f raw -O qcow2 "$WORK/q25.raw" "$WORK/$1.$FMT" ;;
        qcow2:zlib) qemu-img convert -c -f raw -O qcow2 "$WORK/q25.raw" "$WORK/$1.$FMT" ;;
        qcow2:zstd) qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$WORK/q25.raw" "$WORK/$1.$FMT" ;;
        vhd:dynamic | vhdx:dynamic) qemu-img convert -f raw -O "$QFMT" "$WORK/q25.raw" "$WORK/$1.$FMT" ;;
    esac
}
for sub in $VARIANTS; do
    [ -s "$WORK/$sub.$FMT" ] || make "$sub"
done
rm -f "$WORK/q25.raw"

# run CMD... : best wall time of $RUNS runs and the peak RSS, as "seconds rss_kib"
run() {
    python3 - "$RUNS" "$@" <<'PY'
import resource, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
best = None
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)
print(f"{best:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}

# The reader alone: the library reads every data range into a sink (no checksums, no tar).
cargo bench --quiet -p xva-backends --bench read --no-run 2>/dev/null
read_only() {
    RUNS="$RUNS" cargo bench --quiet -p xva-backends --bench read -- "$1" 2>/dev/null \
        | sed -n 's/^BENCH seconds=\([0-9.]*\).*/\1/p'
}

printf '%-17s %-9s %9s %10s %12s\n' disk tool seconds MB/s peakRSS
declare -A T
for sub in $VARIANTS; do
    d="$WORK/$sub.$FMT"
    cat "$d" >/dev/null
    read -r s rss < <(run "$XVA" convert -d "$d" -o "$WORK/$sub.xva" --force)
    T[$sub.xva]=$s
    printf '%-17s %-9s %9s %10.0f %8d KiB\n' "$sub" xva "$s" "$(echo "$SIZE / $s / 1000000" | bc -l)" "$rss"
    s=$(read_only "$d")
    T[$sub.read]=$s
    printf '%-17s %-9s %9s %10.0f\n' "$sub" "xva-read" "$s" "$(echo "$SIZE / $s / 1000000" | bc -l)"
    read -r s rss < <(run qemu-img convert -f "$QFMT" -O raw "$d" "$WORK/$sub.qemu.raw")
    T[$sub.qemu]=$s
    printf '%-17s %-9s %9s %10.0f %8d KiB\n' "$sub" qemu-img "$s" "$(echo "$SIZE / $s / 1000000" | bc -l)" "$rss"
    rm -f "$WORK/$sub.qemu.raw" "$WORK/$sub.xva"
done
echo
for sub in $VARIANTS; do
    printf '%-17s xva convert / qemu-img convert throughput = %.2f\n' "$sub" \
        "$(echo "${T[$sub.qemu]} / ${T[$sub.xva]}" | bc -l)"
    printf '%-17s reader alone / qemu-img convert throughput = %.2f\n' "$sub" \
        "$(echo "${T[$sub.qemu]} / ${T[$sub.read]}" | bc -l)"
done
