#!/usr/bin/env python3
"""Runs the test suite many times across build configurations, on one machine
or split over several.

    tools/matrix.py [--configs=fastbuild,opt,asan,tsan,clang] [--runs=N]
                    [--machine=K/N --out=DIR] [--output_base=DIR] [--dry-run | --plan]
                    [--remote_executor=URL] [--remote_cache=URL] [--jobs=N] ...
                    [--budget=MINUTES] [--logs=DIR] [TARGET ...] [-- BAZEL_ARG ...]
    tools/matrix.py merge DIR ... [--html=FILE] [--junit=FILE]

The plan is every run of every test target (default //...) in every
configuration: (configuration, target, run 1..N), in that order. For each
configuration it runs `bazel test --runs_per_test=N --keep_going`, reads
Bazel's own per-run results (bazel-testlogs/.../run_K_of_N/test.xml) and prints
a table per target and configuration: runs, failures, and whether the target
is flaky (some runs passed, some failed). The logs of failed runs are copied
under --logs and their first failure printed. The last line is
"N passed, N failed" over all runs; the exit status is non-zero if any run
failed or a configuration could not build.

Several machines. `--machine=K/N` runs machine K's share of the plan: run i of
the plan (counted from 0) is machine (i mod N) + 1's, so each machine gets the
same number of runs to within one, and every target's runs are spread over all
machines (a slow target does not load one machine). Every machine must be on
the same commit and given the same configurations, runs, N and targets.
`--out=DIR` writes the machine's results there: matrix.json (the plan, the
commit, each run's outcome), the failed runs' logs and what each failed run
left in its outputs (outputs.zip: hang reports, harness snapshots, start-up
waterfalls). `merge` reads every machine's folder into one result: per
target and configuration, runs, failures, flakiness and the machines that saw
each failure; it refuses folders of another commit or plan (naming the
difference) and names the runs of a machine that never reported, which count
as failed, never as passed. `--html` writes the flake report (one file, no
network), `--junit` the same as JUnit XML.

The remote cache. Bazel falls back to building locally when its remote cache
is down or answers errors; the matrix says so per configuration (and counts
the cache hits) but does not count it as a test failure.

Everything goes through Bazel's --runs_per_test and test results, so the same
command fans out on a remote-execution cluster given its flags, which are passed
to every `bazel test`:

    tools/matrix.py --remote_executor=grpcs://CLUSTER --remote_cache=grpcs://CLUSTER \
        --remote_header=x-buildbuddy-api-key=KEY --jobs=200 --runs=50 //your/...

(--remote_instance_name, --remote_timeout and --disk_cache too; any other Bazel
flag goes after "--"). Sharded targets (shard_count) count a run failed when any
shard of it failed. --dry-run prints the commands; --plan prints this
machine's runs of the plan (a wildcard such as //... leaves out manual tests,
as `bazel test` does; a target named outright stays).
"""

import argparse
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

CONFIGS = ["fastbuild", "opt", "asan", "tsan", "clang"]
REMOTE_FLAGS = ["remote_executor", "remote_cache", "remote_instance_name",
                "remote_header", "remote_timeout", "jobs", "disk_cache"]
FORMAT = 1  # of matrix.json
# What a failed run's outputs may hold that the report shows, and how much.
OUTPUT_LIMIT = 2 << 20


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
    p.add_argument("--machine", default="",
                   help="K/N: run machine K's share of the plan (1 <= K <= N)")
    p.add_argument("--out", default="",
                   help="write this machine's results here, for `merge`")
    p.add_argument("--output_base", default="",
                   help="Bazel's --output_base (a machine of its own on one host)")
    p.add_argument("--budget", type=float, default=0,
                   help="minutes; no new configuration starts after it (0: none)")
    p.add_argument("--logs", default="",
                   help="where failed runs' logs go (default: --out, else a new "
                   "temp dir)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the Bazel commands, run nothing")
    p.add_argument("--plan", action="store_true",
                   help="print this machine's runs of the plan, run nothing")
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
    args.machine_k, args.machine_n = 1, 1
    if args.machine:
        m = re.fullmatch(r"(\d+)/(\d+)", args.machine)
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
            p.error("--machine must be K/N with 1 <= K <= N, got %r"
                    % args.machine)
        args.machine_k, args.machine_n = int(m.group(1)), int(m.group(2))
        if not args.out and not args.plan:
            p.error("--machine needs --out=DIR, where its results go for "
                    "`matrix.py merge`")
        if args.budget:
            p.error("--budget cannot be used with --machine: a configuration "
                    "skipped on one machine would be runs missing from the merge")
    remote = ["--%s=%s" % (flag, value) for flag in REMOTE_FLAGS
              for value in getattr(args, flag)]
    args.bazel_args = remote + bazel_args
    return args


def plan_runs(configs, targets, runs):
    """Every run of the plan, in its order: (config, target, run)."""
    return [(c, t, r) for c in configs for t in targets
            for r in range(1, runs + 1)]


def share(plan, k, n):
    """Machine k's (of n, from 1) runs of `plan`."""
    return [item for i, item in enumerate(plan) if i % n == k - 1]


def run_results(testlogs, target, runs):
    """[(run_number, passed, folder)] for one test target run `runs` times.

    A sharded target (shard_count) has one folder per shard and run
    (shard_K_of_S_run_R_of_N, or shard_K_of_S with one run); a run passed when
    every shard of it did, and its folder is the first failed shard's."""
    package, _, name = target[2:].partition(":")
    base = os.path.join(testlogs, package, name)
    results = []
    for k in range(1, runs + 1):
        run = "run_%d_of_%d" % (k, runs) if runs > 1 else ""
        shards = sorted(glob.glob(os.path.join(
            base, "shard_*_of_*" + ("_" + run if run else ""))),
            key=lambda d: int(re.search(r"shard_(\d+)_", d).group(1)))
        dirs = shards or [os.path.join(base, run) if run else base]
        passed, folder = True, dirs[0]
        for d in dirs:
            xml = os.path.join(d, "test.xml")
            failed = True
            if os.path.exists(xml):
                with open(xml, errors="replace") as f:
                    failed = re.search(r"<(failure|error)\b", f.read()) is not None
            if failed and passed:
                passed, folder = False, d
        results.append((k, passed, folder))
    return results


def failure_excerpt(log, limit=40, prefix="  | "):
    """The lines of a failed run's log from its first failure on, at most
    `limit` of them: a CI machine's /tmp is gone once it has printed them."""
    try:
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return "  (cannot read it: %s)" % e
    first = next((i for i, line in enumerate(lines)
                  if ": Failure" in line or "FAILED" in line
                  or "FATAL" in line or "HANGING" in line), 0)
    shown = lines[first:first + limit]
    more = len(lines) - first - len(shown)
    text = "\n".join(prefix + line for line in shown)
    if more > 0:
        text += "\n%s[%d more lines in the log]" % (prefix, more)
    return text


def keep_outputs(folder, dest):
    """Unpacks the run's outputs.zip (what the test wrote into
    TEST_UNDECLARED_OUTPUTS_DIR) into `dest`; returns the names kept."""
    kept = []
    zipped = os.path.join(folder, "test.outputs", "outputs.zip")
    if not os.path.exists(zipped):
        return kept
    try:
        with zipfile.ZipFile(zipped) as z:
            for info in z.infolist():
                name = os.path.basename(info.filename)
                if info.is_dir() or not name or info.file_size > OUTPUT_LIMIT:
                    continue
                os.makedirs(dest, exist_ok=True)
                with z.open(info) as src, open(os.path.join(dest, name),
                                               "wb") as out:
                    shutil.copyfileobj(src, out)
                kept.append(name)
    except (zipfile.BadZipFile, OSError):
        pass
    return sorted(kept)


def cache_report(out):
    """What Bazel's output says of its caches: hits, processes, and the
    remote cache's failures (Bazel built locally instead)."""
    hits = processes = 0
    for m in re.finditer(r"^INFO: (\d+) processes?: (.*)$", out, re.M):
        processes += int(m.group(1))
        h = re.search(r"(\d+) remote cache hit", m.group(2))
        hits += int(h.group(1)) if h else 0
    warnings = [re.sub(r"\s+", " ", m.group(0)).strip() for m in re.finditer(
        r"^WARNING: (?:Reading from|Writing to) Remote Cache:\n?.*$", out, re.M)]
    return {"hits": hits, "processes": processes, "warnings": warnings}


def git_commit():
    def git(*a):
        return subprocess.run(["git"] + list(a), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown", False
    changed = git("status", "--porcelain", "--untracked-files=no").stdout
    return head.stdout.strip(), bool(changed.strip())


def main(argv):
    if argv and argv[0] == "merge":
        import matrix_merge  # pylint: disable=import-outside-toplevel
        return matrix_merge.main(argv[1:])
    args = parse_args(argv)
    startup = ["--output_base=" + args.output_base] if args.output_base else []
    began = time.time()

    def bazel(*a, **kw):
        return subprocess.run(["bazel"] + startup + list(a), text=True, **kw)

    targets = args.targets
    if (args.out or args.plan) and not args.dry_run:
        # The plan names each test target, so every machine agrees on it.
        # As `bazel test` expands them: a wildcard leaves out manual tests, a
        # target named outright does not.
        q = bazel("query", " + ".join(
            "(tests(%s) except attr(tags, '\\bmanual\\b', tests(%s)))" % (t, t)
            if re.search(r"\.\.\.|:all$|:\*$", t) else "tests(%s)" % t
            for t in args.targets),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if q.returncode != 0:
            print(q.stderr)
            print("bazel query of the targets failed")
            print("0 passed, 1 failed")
            return 1
        targets = sorted(q.stdout.split())
    plan = plan_runs(args.configs, targets, args.runs)
    mine = share(plan, args.machine_k, args.machine_n)
    if args.plan:
        for config, target, run in mine:
            print("%s %s run %d" % (config, target, run))
        print("machine %d of %d: %d of the plan's %d runs"
              % (args.machine_k, args.machine_n, len(mine), len(plan)))
        return 0

    # Failed runs' logs: under --out (with what the runs left in their
    # outputs), else under --logs or a new temp dir.
    logs = (os.path.join(args.out, "logs") if args.out else args.logs or
            tempfile.mkdtemp(prefix="lifecycle-matrix-"))
    rows = []  # (target, config, runs, failures, flaky)
    results = []  # this machine's runs, for matrix.json
    broken, skipped, failed_logs, caches = [], [], [], []
    for config in args.configs:
        runs_of = {}  # target -> the plan's run numbers this machine runs
        for c, t, r in mine:
            if c == config:
                runs_of.setdefault(t, []).append(r)
        if not runs_of:
            continue
        if args.budget and time.time() - began > args.budget * 60:
            skipped.append(config)
            continue
        # Targets run the same number of times go in one `bazel test`.
        groups = {}
        for t, numbers in runs_of.items():
            groups.setdefault(len(numbers), []).append(t)
        config_rows = {}
        for count, group in sorted(groups.items(), reverse=True):
            # --nocache_test_results: every run is a real run, never a cached one.
            cmd = ["bazel"] + startup + [
                "test", "--runs_per_test=%d" % count, "--keep_going",
                "--nocache_test_results", "--test_output=summary"]
            if config != "fastbuild":
                cmd.append("--config=" + config)
            cmd += args.bazel_args + ["--"] + (
                group if args.out else args.targets)
            print("=== " + " ".join(cmd), flush=True)
            if args.dry_run:
                continue
            proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            out = proc.stdout
            cache = cache_report(out)
            cache["config"] = config
            caches.append(cache)
            tested = re.findall(r"^(//\S+)\s+(?:\(cached\)\s+)?"
                                r"(?:PASSED|FAILED(?! TO BUILD)|FLAKY|TIMEOUT"
                                r"|NO STATUS)", out, re.M)
            unbuilt = set(re.findall(r"^(//\S+)\s+FAILED TO BUILD", out, re.M))
            whole_config_broken = proc.returncode not in (0, 3) and not tested
            if unbuilt or whole_config_broken:
                broken.append(config)
                print("\n".join(out.splitlines()[-30:]))
            build_error = "\n".join(
                line for line in out.splitlines()
                if line.startswith("ERROR:"))[-4000:]
            testlogs = bazel("info", "bazel-testlogs", *(
                ["--config=" + config] if config != "fastbuild" else []),
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
            for target in (group if args.out else tested):
                numbers = runs_of.get(target, list(range(1, count + 1)))
                if target in unbuilt or (whole_config_broken and
                                         target not in tested):
                    for r in numbers:
                        results.append({"config": config, "target": target,
                                        "run": r, "status": "not built",
                                        "excerpt": build_error})
                    continue
                if target not in tested:
                    # Left out by the configuration's tag filters.
                    for r in numbers:
                        results.append({"config": config, "target": target,
                                        "run": r, "status": "skipped"})
                    continue
                failures = 0
                for k, passed, folder in run_results(testlogs, target, count):
                    r = numbers[k - 1]
                    entry = {"config": config, "target": target, "run": r,
                             "status": "passed" if passed else "failed"}
                    if not passed:
                        failures += 1
                        rel = os.path.join(config, target[2:].replace(":", "/"))
                        dest = os.path.join(logs, rel, "run_%d.log" % r)
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        log = os.path.join(folder, "test.log")
                        if os.path.exists(log):
                            shutil.copyfile(log, dest)
                        failed_logs.append(dest)
                        if args.out:
                            entry["log"] = os.path.relpath(dest, args.out)
                            entry["excerpt"] = failure_excerpt(dest, 60, prefix="")
                            outdir = os.path.join(args.out, "outputs", rel,
                                                  "run_%d" % r)
                            entry["outputs"] = [
                                os.path.relpath(os.path.join(outdir, name),
                                                args.out)
                                for name in keep_outputs(folder, outdir)]
                    results.append(entry)
                config_rows[target] = (count, failures)
        for target in sorted(config_rows):
            count, failures = config_rows[target]
            rows.append((target, config, count, failures,
                         0 < failures < count))

    width = max([len(r[0]) for r in rows] + [len("TARGET")])
    print("%-*s  %-9s  %4s  %8s  %s" % (width, "TARGET", "CONFIG", "RUNS",
                                        "FAILURES", "FLAKY"))
    for target, config, runs, failures, flaky in rows:
        print("%-*s  %-9s  %4d  %8d  %s" % (width, target, config, runs,
                                            failures, "yes" if flaky else "no"))
    total_runs = sum(r[2] for r in rows)
    total_failures = sum(r[3] for r in rows)
    minutes = (time.time() - began) / 60
    print("%d target x configuration rows, %d runs, %d failed, %d flaky; "
          "%.1f min" % (len(rows), total_runs, total_failures,
                        sum(1 for r in rows if r[4]), minutes))
    for cache in caches:
        print("cache (%s): %d of %d processes were cache hits"
              % (cache["config"], cache["hits"], cache["processes"]))
        if cache["warnings"]:
            print("remote cache failed %d time(s) in %s, so Bazel built and "
                  "ran locally instead (not a test failure): %s"
                  % (len(cache["warnings"]), cache["config"],
                     cache["warnings"][0]))
    for config in sorted(set(broken)):
        print("configuration %s did not build (see above)" % config)
    for config in skipped:
        print("configuration %s skipped: over the %.1f-minute budget"
              % (config, args.budget))
    for log in failed_logs:
        print("failed run log: " + log)
        print(failure_excerpt(log))
    not_built = sum(1 for r in results if r["status"] == "not built")
    if (args.out or args.plan) and not args.dry_run:
        commit, dirty = git_commit()
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "matrix.json"), "w") as f:
            json.dump({"format": FORMAT, "commit": commit, "dirty": dirty,
                       "plan": {"configs": args.configs, "targets": targets,
                                "runs": args.runs,
                                "machines": args.machine_n},
                       "machine": args.machine_k,
                       "host": socket.gethostname(),
                       "minutes": round(minutes, 2),
                       "results": results, "caches": caches}, f, indent=1)
        print("results of machine %d of %d: %s"
              % (args.machine_k, args.machine_n,
                 os.path.join(args.out, "matrix.json")))
    print("%d passed, %d failed" % (
        total_runs - total_failures,
        total_failures + (not_built if args.out else len(set(broken)))))
    return 1 if total_failures or broken else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1:]))
