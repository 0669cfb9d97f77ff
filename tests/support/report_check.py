#!/usr/bin/env python3
"""Checks for `lb-dfaas report` pages, standard library only.

    report_check.py svg PAGE.html   every inline <svg> parses as XML; prints the count
    report_check.py png SHOT.png    the PNG decodes and is not one colour; prints
                                    the number of colours and the share of pixels
                                    that differ from the most common one

Exits 1 with the reason on stderr when a check fails.
"""

import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib


def check_svg(path):
    html = open(path, encoding="utf-8").read()
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    if not svgs:
        sys.exit(f"{path}: no <svg> element")
    for i, svg in enumerate(svgs):
        try:
            root = ET.fromstring(svg)
        except ET.ParseError as e:
            sys.exit(f"{path}: svg #{i + 1} does not parse: {e}")
        if not root.tag.endswith("svg"):
            sys.exit(f"{path}: svg #{i + 1} has root {root.tag}")
        if len(list(root.iter())) < 10:
            sys.exit(f"{path}: svg #{i + 1} is nearly empty")
    print(len(svgs))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        sys.exit(f"{path}: no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        sys.exit(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + paeth(left, up, corner)) & 0xFF
            elif kind != 0:
                sys.exit(f"{path}: bad filter type {kind}")
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def check_png(path):
    width, height, channels, rows = decode_png(path)
    counts = {}
    # Every 3rd pixel of every 3rd row: enough to see a page, quick in Python.
    for row in rows[::3]:
        for x in range(0, width * channels, channels * 3):
            pixel = row[x : x + 3]
            counts[pixel] = counts.get(pixel, 0) + 1
    total = sum(counts.values())
    top = max(counts.values())
    if len(counts) < 2:
        sys.exit(f"{path}: blank ({width}x{height}, one colour)")
    share = 1 - top / total
    if share < 0.01:
        sys.exit(f"{path}: nearly blank: {share:.4f} of the pixels differ from the background")
    print(f"{width}x{height} {len(counts)} colours, {share:.3f} non-background")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("svg", "png"):
        sys.exit(__doc__)
    (check_svg if sys.argv[1] == "svg" else check_png)(sys.argv[2])
