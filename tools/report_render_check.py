#!/usr/bin/env python3
"""Checks that the matrix's flake report (tools/matrix.py merge --html) renders:
headless Chromium (Debian's `chromium`) loads it, its DOM holds the flaky
target's name in a FLAKY entry, and a screenshot shows the flaky badge and a
start-up waterfall's bars. A report without failures must show neither, so the
check can fail (tools/matrix_split_check.sh makes both reports).

  python3 tools/report_render_check.py REPORT.html CLEAN.html TARGET

Prints one "ok"/"FAIL" line per check; exits 1 on a failure.
"""
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from svg_render_check import CHROMIUM_FLAGS, RED, near, read_png

ORANGE = (0xE0, 0x7B, 0x00)  # the FLAKY badge (tools/matrix_merge.py)
GREY = (0x8A, 0x8F, 0x98)    # a failed start's bar (lifecycle/startup_report.cc)
FLAGS = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")] + [
    "--window-size=1100,2600"]


def chromium_run(chromium, args, profile):
    return subprocess.run([chromium] + FLAGS + ["--user-data-dir=" + profile] + args,
                          check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, timeout=120).stdout


def colours(png):
    """Pixels near the badge's orange, and near a waterfall bar's colours."""
    _, _, rows = read_png(png)
    badge = bars = 0
    for row in rows[::2]:
        for pixel in row[::2]:
            badge += near(pixel, ORANGE, 12)
            bars += near(pixel, RED, 12) or near(pixel, GREY, 6)
    return badge, bars


def main(argv):
    report, clean, target = argv
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("FAIL chromium: not installed (apt-get install chromium)")
        return 1
    work = pathlib.Path(tempfile.mkdtemp())
    failed = 0

    def say(ok, what):
        nonlocal failed
        print("%s %s" % ("ok  " if ok else "FAIL", what))
        failed += not ok

    try:
        url = pathlib.Path(report).resolve().as_uri()
        dom = chromium_run(chromium, ["--dump-dom", url], str(work / "p1"))
        entry = re.search(r"<span class=\"badge flaky\">FLAKY</span>\s*%s\b"
                          % re.escape(target), dom)
        say(entry is not None, "Chromium's DOM of the report has %s as FLAKY" % target)
        chromium_run(chromium, ["--screenshot=%s" % (work / "report.png"), url],
                     str(work / "p2"))
        badge, bars = colours(work / "report.png")
        say(badge > 100 and bars > 300, "the report's screenshot shows the flaky badge "
            "and a waterfall (badge, bar pixels: %d, %d)" % (badge, bars))
        chromium_run(chromium, ["--screenshot=%s" % (work / "clean.png"),
                                pathlib.Path(clean).resolve().as_uri()],
                     str(work / "p3"))
        badge, bars = colours(work / "clean.png")
        say(badge == 0 and bars == 0, "self-test: a report without failures shows "
            "neither (badge, bar pixels: %d, %d)" % (badge, bars))
        shutil.copy(work / "report.png", pathlib.Path(report).with_suffix(".png"))
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        say(False, str(error))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
