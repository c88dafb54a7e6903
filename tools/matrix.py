#!/usr/bin/env python3
"""Runs the test suite many times across build configurations.

    tools/matrix.py [--configs=fastbuild,opt,asan,tsan,clang] [--runs=N]
                    [--budget=MINUTES] [--logs=DIR] [TARGET ...] [-- BAZEL_ARG ...]

For each configuration it runs one `bazel test --runs_per_test=N --keep_going`
over the targets (default //...), reads Bazel's own per-run results
(bazel-testlogs/.../run_K_of_N/test.xml) and prints a table per target and
configuration: runs, failures, and whether the target is flaky (some runs
passed, some failed). The logs of failed runs are copied under --logs and their
paths printed. The last line is "N passed, N failed" over all runs; the exit
status is non-zero if any run failed or a configuration could not build.

Everything goes through Bazel's --runs_per_test and test results, so the same
command fans out unchanged on a remote-execution cluster.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CONFIGS = ["fastbuild", "opt", "asan", "tsan", "clang"]


def parse_args(argv):
    bazel_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, bazel_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        prog="matrix.py", description="Runs tests N times per configuration.")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma-separated, from: " + ", ".join(CONFIGS))
    p.add_argument("--runs", type=int, default=3, help="runs per test (>= 1)")
    p.add_argument("--budget", type=float, default=0,
                   help="minutes; no new configuration starts after it (0: none)")
    p.add_argument("--logs", default="",
                   help="where failed runs' logs go (default: a new temp dir)")
    p.add_argument("targets", nargs="*", default=["//..."])
    args = p.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        p.error("unknown configuration(s) %s; valid: %s"
                % (", ".join(unknown) or "(none given)", ", ".join(CONFIGS)))
    if args.runs < 1:
        p.error("--runs must be at least 1, got %d" % args.runs)
    if args.budget < 0:
        p.error("--budget must not be negative")
    args.configs = configs
    args.bazel_args = bazel_args
    return args


def run_results(testlogs, target, runs):
    """[(run_number, passed, log_path)] for one test target."""
    package, _, name = target[2:].partition(":")
    base = os.path.join(testlogs, package, name)
    dirs = ([os.path.join(base, "run_%d_of_%d" % (k, runs))
             for k in range(1, runs + 1)] if runs > 1 else [base])
    results = []
    for k, d in enumerate(dirs, 1):
        xml = os.path.join(d, "test.xml")
        if not os.path.exists(xml):
            results.append((k, False, os.path.join(d, "test.log")))
            continue
        with open(xml, errors="replace") as f:
            text = f.read()
        failed = re.search(r"<(failure|error)\b", text) is not None
        results.append((k, not failed, os.path.join(d, "test.log")))
    return results


def main(argv):
    args = parse_args(argv)
    logs = args.logs or tempfile.mkdtemp(prefix="lifecycle-matrix-")
    began = time.time()
    rows = []  # (target, config, runs, failures, flaky)
    broken = []  # configurations with a build error
    skipped = []
    failed_logs = []
    for config in args.configs:
        if args.budget and time.time() - began > args.budget * 60:
            skipped.append(config)
            continue
        # --nocache_test_results: every run is a real run, never a cached one.
        cmd = ["bazel", "test", "--runs_per_test=%d" % args.runs, "--keep_going",
               "--nocache_test_results", "--test_output=summary"]
        if config != "fastbuild":
            cmd.append("--config=" + config)
        cmd += args.bazel_args + ["--"] + args.targets
        print("=== " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        out = proc.stdout
        targets = re.findall(r"^(//\S+)\s+(?:\(cached\)\s+)?"
                             r"(?:PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS)",
                             out, re.M)
        if re.search(r"^(//\S+)\s+FAILED TO BUILD", out, re.M) or (
                proc.returncode not in (0, 3) and not targets):
            broken.append(config)
            tail = "\n".join(out.splitlines()[-30:])
            print(tail)
        testlogs = subprocess.run(["bazel", "info", "bazel-testlogs"] +
                                  (["--config=" + config]
                                   if config != "fastbuild" else []),
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL,
                                  text=True).stdout.strip()
        for target in targets:
            results = run_results(testlogs, target, args.runs)
            failures = [r for r in results if not r[1]]
            for k, _, log in failures:
                dest = os.path.join(logs, config, target[2:].replace(":", "/"),
                                    "run_%d.log" % k)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if os.path.exists(log):
                    shutil.copyfile(log, dest)
                failed_logs.append(dest)
            rows.append((target, config, len(results), len(failures),
                         0 < len(failures) < len(results)))

    width = max([len(r[0]) for r in rows] + [len("TARGET")])
    print("%-*s  %-9s  %4s  %8s  %s" % (width, "TARGET", "CONFIG", "RUNS",
                                        "FAILURES", "FLAKY"))
    for target, config, runs, failures, flaky in rows:
        print("%-*s  %-9s  %4d  %8d  %s" % (width, target, config, runs,
                                            failures, "yes" if flaky else "no"))
    total_runs = sum(r[2] for r in rows)
    total_failures = sum(r[3] for r in rows)
    print("%d target x configuration rows, %d runs, %d failed, %d flaky; "
          "%.1f min" % (len(rows), total_runs, total_failures,
                        sum(1 for r in rows if r[4]), (time.time() - began) / 60))
    for config in broken:
        print("configuration %s did not build (see above)" % config)
    for config in skipped:
        print("configuration %s skipped: over the %.1f-minute budget"
              % (config, args.budget))
    for log in failed_logs:
        print("failed run log: " + log)
    print("%d passed, %d failed" % (total_runs - total_failures,
                                    total_failures + len(broken)))
    return 1 if total_failures or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
