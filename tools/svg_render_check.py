#!/usr/bin/env python3
"""Checks that the start-up SVG waterfall renders: the demo writes one (--trace),
headless Chromium (Debian's `chromium` package) takes a screenshot of it, and the
screenshot must show the waterfall's bars: blue ones, and the critical path's red
ones. A blank SVG must fail the same check (the self-test), so the check can fail.

  python3 tools/svg_render_check.py [--demo bazel-bin/examples/demo]

Prints one "ok"/"FAIL" line per check and "N passed, N failed"; exits 1 on a failure.
"""
import argparse
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

RED = (0xD0, 0x34, 0x2C)   # the critical path (lifecycle/startup_report.cc)
BLUE = (0x3B, 0x7D, 0xD8)  # the other services
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1100,320",
]


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


def near(pixel, color, tolerance=24):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color))


def screenshot(chromium, svg, png, profile):
    subprocess.run([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile,
                    "--screenshot=" + png, svg.resolve().as_uri()],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def bars(png):
    """(red pixels, blue pixels, share of non-white pixels) of a screenshot."""
    width, height, rows = read_png(png)
    red = blue = ink = 0
    for row in rows:
        for pixel in row:
            red += near(pixel, RED)
            blue += near(pixel, BLUE)
            ink += not near(pixel, (255, 255, 255), 8)
    return red, blue, ink / float(width * height)


def shows_a_waterfall(png):
    red, blue, ink = bars(png)
    return red > 500 and blue > 500 and ink > 0.02, (red, blue, round(ink, 3))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", default="bazel-bin/examples/demo")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("FAIL chromium: not installed (apt-get install chromium)")
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    work = pathlib.Path(tempfile.mkdtemp())
    try:
        trace = work / "start.json"
        subprocess.run([args.demo, "--trace=%s" % trace], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        svg = pathlib.Path(str(trace) + ".svg")
        screenshot(chromium, svg, str(work / "demo.png"), str(work / "profile1"))
        ok, seen = shows_a_waterfall(work / "demo.png")
        print("%s the demo's start-up SVG renders with its bars (red, blue pixels, "
              "ink share: %s)" % ("ok  " if ok else "FAIL", seen))
        passed, failed = passed + ok, failed + (not ok)

        blank = work / "blank.svg"
        blank.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="900" '
                         'height="200"><rect width="100%" height="100%" '
                         'fill="#ffffff"/></svg>\n')
        screenshot(chromium, blank, str(work / "blank.png"), str(work / "profile2"))
        caught, seen = shows_a_waterfall(work / "blank.png")
        print("%s self-test: a blank SVG is not taken for a waterfall (%s)"
              % ("ok  " if not caught else "FAIL", seen))
        passed, failed = passed + (not caught), failed + caught
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        print("FAIL %s" % error)
        failed += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
