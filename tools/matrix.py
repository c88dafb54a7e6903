#!/usr/bin/env python3
"""Runs the test suite many times across build configurations.

    tools/matrix.py [--configs=fastbuild,opt,asan,tsan,clang] [--runs=N] [--dry-run]
                    [--remote_executor=URL] [--remote_cache=URL] [--jobs=N] ...
                    [--budget=MINUTES] [--logs=DIR] [TARGET ...] [-- BAZEL_ARG ...]

For each configuration it runs one `bazel test --runs_per_test=N --keep_going`
over the targets (default //...), reads Bazel's own per-run results
(bazel-testlogs/.../run_K_of_N/test.xml) and prints a table per target and
configuration: runs, failures, and whether the target is flaky (some runs
passed, some failed). The logs of failed runs are copied under --logs and their
paths printed. The last line is "N passed, N failed" over all runs; the exit
status is non-zero if any run failed or a configuration could not build.

Everything goes through Bazel's --runs_per_test and test results, so the same
command fans out on a remote-execution cluster given its flags, which are passed
to every `bazel test`:

    tools/matrix.py --remote_executor=grpcs://CLUSTER --remote_cache=grpcs://CLUSTER \
        --remote_header=x-buildbuddy-api-key=KEY --jobs=200 --runs=50 //your/...

(--remote_instance_name, --remote_timeout and --disk_cache too; any other Bazel
flag goes after "--"). Sharded targets (shard_count) count a run failed when any
shard of it failed. --dry-run prints the commands.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CONFIGS = ["fastbuild", "opt", "asan", "tsan", "clang"]
REMOTE_FLAGS = ["remote_executor", "remote_cache", "remote_instance_name",
                "remote_header", "remote_timeout", "jobs", "disk_cache"]


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
    p.add_argument("--dry-run", action="store_true",
                   help="print the Bazel commands, run nothing")
    # A cluster's flags, passed to every `bazel test` (and `bazel info`) as given:
    # the same matrix on Buildbarn, BuildBuddy or EngFlow instead of this machine.
    for flag in REMOTE_FLAGS:
        p.add_argument("--" + flag, action="append", default=[],
                       help="passed to Bazel as --%s=VALUE (may repeat)" % flag)
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
    remote = ["--%s=%s" % (flag, value) for flag in REMOTE_FLAGS
              for value in getattr(args, flag)]
    args.bazel_args = remote + bazel_args
    return args


def run_results(testlogs, target, runs):
    """[(run_number, passed, log_path)] for one test target.

    A sharded target (shard_count) has one folder per shard and run
    (shard_K_of_S_run_R_of_N, or shard_K_of_S with one run); a run passed when
    every shard of it did, and its log is the first failed shard's."""
    package, _, name = target[2:].partition(":")
    base = os.path.join(testlogs, package, name)
    results = []
    for k in range(1, runs + 1):
        run = "run_%d_of_%d" % (k, runs) if runs > 1 else ""
        shards = sorted(glob.glob(os.path.join(
            base, "shard_*_of_*" + ("_" + run if run else ""))),
            key=lambda d: int(re.search(r"shard_(\d+)_", d).group(1)))
        dirs = shards or [os.path.join(base, run) if run else base]
        passed, log = True, os.path.join(dirs[0], "test.log")
        for d in dirs:
            xml = os.path.join(d, "test.xml")
            failed = True
            if os.path.exists(xml):
                with open(xml, errors="replace") as f:
                    failed = re.search(r"<(failure|error)\b", f.read()) is not None
            if failed and passed:
                passed, log = False, os.path.join(d, "test.log")
        results.append((k, passed, log))
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
        if args.dry_run:
            continue
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
        print(failure_excerpt(log))
    print("%d passed, %d failed" % (total_runs - total_failures,
                                    total_failures + len(broken)))
    return 1 if total_failures or broken else 0


def failure_excerpt(log, limit=40):
    """The lines of a failed run's log from its first failure on, at most
    `limit` of them: a CI machine's /tmp is gone once it has printed them."""
    try:
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return "  (cannot read it: %s)" % e
    first = next((i for i, line in enumerate(lines)
                  if ": Failure" in line or "FAILED" in line
                  or "FATAL" in line), 0)
    shown = lines[first:first + limit]
    more = len(lines) - first - len(shown)
    text = "\n".join("  | " + line for line in shown)
    if more > 0:
        text += "\n  | [%d more lines in the log]" % more
    return text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
