#!/usr/bin/env python3
"""The headline table of docs/PERFORMANCE.md, from one run of the benchmark.

Each row is a ratio against its baseline from the same run (the baselines live
in benchmarks/lifecycle_benchmark.cc): medians of 5 repetitions. Prints the
machine, its load and the command, then a Markdown table.

  bash tools/bench.sh --headline            (builds, then runs this)
  python3 tools/bench_headline.py BINARY    (a built benchmark binary)
"""

import json
import os
import subprocess
import sys

# (benchmark name as reported, counter or None for the real time, baseline,
#  goal as text, predicate on the value)
FILTER = ("WaitAllStartedAlreadyStarted/10000$|StartWaitStopVsFloor|"
          "WakeLatency<(SignalEvent|NotificationEvent)>|VirtualHourOfTicks|"
          "StartGraph/sequential:0|GraphVsFlatStart|BytesPerIdleService|"
          "AllocationsPerStartStop")

# The cost-grows-linearly table: Google Benchmark's Complexity(oN) fits, one
# repetition (each size already runs several iterations).
COMPLEXITY_FILTER = ("StartWaitStop/|SnapshotValue|ChildrenAddAndDestroy|"
                     "DeclareThroughComposite/random_dag|"
                     "StartStopThroughComposite|RestartStorm")


def medians(report):
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b
    return out


def find(rows, prefix):
    for name, row in rows.items():
        if name.startswith(prefix):
            return row
    raise KeyError(prefix)


def table(rows):
    lines = []

    def add(what, value, baseline, goal, met):
        lines.append(f"| {what} | {value} | {baseline} | {goal} | "
                     f"{'met' if met else '**not met**'} |")

    w = find(rows, "WaitAllStartedAlreadyStarted/10000")
    ours_us = w["x_flag_loop"] * w["flag_loop_us"]
    add("`WaitAllStarted`, 10,000 started", f"{ours_us:.0f} us",
        f"closed-flag loop {w['flag_loop_us']:.1f} us: **{w['x_flag_loop']:.1f}x**;"
        f" Signal loop {w['signal_loop_us']:.1f} us: {w['x_signal_loop']:.1f}x",
        "<= 1.2x the flag loop", w["x_flag_loop"] <= 1.2)
    add("`WaitAllStarted`, 10,000 started, against Go", f"{ours_us:.0f} us",
        "Go, 10,000 closed channels: 270-500 us (issue 28)", "<= Go",
        ours_us <= 270)
    for n in (10, 10000):
        s = find(rows, f"StartWaitStopVsFloor/{n}/")
        add(f"`StartAll` + `WaitAllStarted` + `StopAllParallel`, {n:,} services",
            f"{s['ours_ms']:.2f} ms",
            f"raw threads {s['floor_ms']:.2f} ms: **{s['x_floor']:.2f}x**",
            "<= 1.3x", s["x_floor"] <= 1.3)
    sig = find(rows, "WakeLatency<SignalEvent>")
    notif = find(rows, "WakeLatency<NotificationEvent>")
    ratio = sig["real_time"] / notif["real_time"]
    add("Wake latency, `Signal`", f"{sig['real_time']:.1f} {sig['time_unit']}",
        f"`absl::Notification` {notif['real_time']:.1f} {notif['time_unit']}: "
        f"**{ratio:.2f}x**", "<= 1.0x (noise aside)", ratio <= 1.05)
    hour = find(rows, "VirtualHourOfTicks")
    add("A simulated hour of 1 s ticks", f"{hour['real_time']:.1f} {hour['time_unit']}",
        "-", "<= 50 ms", hour["real_time"] <= 50)
    flat = find(rows, "GraphVsFlatStart/10000")
    add("A 10,000-service random DAG, declared and started through a composite",
        f"{flat['graph_ms']:.0f} ms",
        f"flat `StartAll` + `WaitAllStarted` {flat['flat_ms']:.0f} ms: "
        f"**{flat['x_flat']:.2f}x**", "<= 2x", flat["x_flat"] <= 2)
    idle = find(rows, "BytesPerIdleService")
    add("Heap per idle `FuncService` (10,000 made)",
        f"{idle['heap_bytes_per_service']:.0f} B",
        f"`sizeof(FuncService)` {idle['sizeof_FuncService']:.0f} B", "<= 512 B",
        idle["heap_bytes_per_service"] <= 512)
    cycle = find(rows, "AllocationsPerStartStop")
    add("Heap allocations per start/stop cycle",
        f"{cycle['allocations_per_cycle']:.0f}", "-", "<= 12",
        cycle["allocations_per_cycle"] <= 12)
    graph = find(rows, "StartGraph/sequential:0")
    add("Start-up graph, 4 chains x 5 x 2 ms", f"{graph['start_ms']:.1f} ms",
        f"its critical path: **{graph['vs_critical_path']:.2f}x**", "<= 1.05x",
        graph["vs_critical_path"] <= 1.05)
    head = ["| Measure | Ours | Baseline, same run | Goal | |",
            "| --- | --- | --- | --- | --- |"]
    return "\n".join(head + lines)


def complexity_table(report):
    """One row per Complexity(oN) benchmark: its sizes, time per element at
    the smallest and largest size, and the fit's RMS error."""
    runs, fits = {}, {}
    for b in report["benchmarks"]:
        name = b["name"]
        if name.endswith("_BigO") or name.endswith("_RMS"):
            fits.setdefault(name.rsplit("_", 1)[0], {})[name.rsplit("_", 1)[1]] = b
        elif b.get("run_type") == "iteration":
            base = b["run_name"].split("/")
            family = "/".join(p for p in base if not p.isdigit())
            size = next(int(p) for p in base if p.isdigit())
            runs.setdefault(family, []).append((size, b))
    lines = ["| Benchmark | Sizes | Per element, smallest / largest | "
             "Largest / smallest per element | Fit RMS |",
             "| --- | --- | --- | --- | --- |"]
    to_us = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    for family, sized in runs.items():
        sized.sort(key=lambda x: x[0])
        (n0, b0), (n1, b1) = sized[0], sized[-1]
        per0 = b0["real_time"] * to_us[b0["time_unit"]] / n0
        per1 = b1["real_time"] * to_us[b1["time_unit"]] / n1
        rms = fits.get(family, {}).get("RMS", {}).get("rms")
        rms_text = f"{rms * 100:.0f} %" if rms is not None else "-"
        lines.append(f"| {family} | {', '.join(f'{n:,}' for n, _ in sized)} | "
                     f"{per0:.2f} / {per1:.2f} us | {per1 / per0:.2f}x | "
                     f"{rms_text} |")
    return "\n".join(lines)


def run(binary, *flags):
    command = [binary, "--benchmark_format=json", *flags]
    return json.loads(subprocess.run(command, check=True, capture_output=True,
                                     text=True).stdout)


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    report = run(argv[1], f"--benchmark_filter={FILTER}",
                 "--benchmark_repetitions=5",
                 "--benchmark_report_aggregates_only=true")
    context = report["context"]
    load = ", ".join(f"{x:.2f}" for x in context.get("load_avg", []))
    print(f"Machine: {context.get('num_cpus')} CPUs at "
          f"{context.get('mhz_per_cpu')} MHz, load average {load}; "
          f"{os.uname().sysname} {os.uname().release}")
    print("Command: bash tools/bench.sh --headline "
          "(medians of 5 repetitions)\n")
    print(table(medians(report)))
    print("\nCost against size (Complexity(oN) fits, one repetition):\n")
    print(complexity_table(run(argv[1], f"--benchmark_filter={COMPLEXITY_FILTER}")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
