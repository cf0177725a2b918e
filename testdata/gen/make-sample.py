#!/usr/bin/env python3
"""Writes testdata/sample/sample-guest.img: a tiny raw disk for the README's first command.

2 MiB + 512 bytes (not a multiple of 1 MiB, so the short last chunk is exercised): an MBR with
one Linux partition (type 0x83) starting at sector 2048, a text block at the start of the
partition, and a marker in the last sector. Everything else is zero, so xva writes 3 chunks.
Deterministic: re-running gives the same bytes (sha256 in testdata/README.md).
"""
import struct, sys, os

SIZE = 2 * 1024 * 1024 + 512
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "sample", "sample-guest.img")
img = bytearray(SIZE)
# MBR partition entry 1: status 0, CHS ignored, type 0x83, LBA start 2048, 2049 sectors
entry = struct.pack("<B3sB3sII", 0x00, b"\0\0\0", 0x83, b"\0\0\0", 2048, (SIZE // 512) - 2048)
img[446:446 + 16] = entry
img[510:512] = b"\x55\xaa"
text = b"xva sample guest: this partition holds a little text and nothing else.\n" * 20
img[2048 * 512:2048 * 512 + len(text)] = text
img[SIZE - 512:SIZE - 512 + 12] = b"LAST SECTOR\n"
with open(out, "wb") as f:
    f.write(img)
