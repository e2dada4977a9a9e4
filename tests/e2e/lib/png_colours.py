#!/usr/bin/env python3
"""png_colours.py FILE.png '#rrggbb'...: how many pixels of the screenshot
have each colour, one "#rrggbb N" line per colour asked for.

Decodes the PNGs Chromium writes (8-bit RGB or RGBA, not interlaced) with the
standard library only: zlib for the data, the five PNG filters (RFC 2083 /
PNG spec section 9) undone row by row."""
import struct, sys, zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack("!I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack("!IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise SystemExit(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + (0, a, b, (a + b) // 2, paeth(a, b, c))[f]) & 0xFF
        out.extend(bytes(row[i:i + 3]) for i in range(0, stride, bpp))
        prev = row
    return out


def main():
    counts = {}
    for px in pixels(sys.argv[1]):
        counts[px] = counts.get(px, 0) + 1
    for c in sys.argv[2:]:
        print(c, counts.get(bytes.fromhex(c.lstrip("#")), 0))


if __name__ == "__main__":
    main()
