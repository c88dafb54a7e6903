#!/usr/bin/env python3
"""`tools/matrix.py merge DIR ... [--html=FILE] [--junit=FILE]`: one result
from the folders that `matrix.py --machine=K/N --out=DIR` wrote, one per
machine (tools/matrix.py says how the plan is split).

The folders must be of one commit and one plan (configurations, targets, runs,
number of machines); one that is not is refused, naming the difference, and
so is a machine that reported twice. A machine that never reported leaves its
runs missing: they are named, and counted failed, never passed. Every run of
the plan must come back exactly once.

Prints a table per target and configuration (runs, failures, missing, flaky,
the machines that saw the failures) and "N passed, N failed". `--html`
writes the flake report: one HTML file with everything inline (no server, no
network), the flaky and failing targets first, each failed run with its log
excerpt, hang report, harness snapshot table and start-up waterfall, then the
failure rate of every target in every configuration. `--junit` writes the
same runs as JUnit XML, for CI dashboards. Exit status: 0 when every planned
run passed (or was skipped by its configuration), 1 otherwise, 2 for folders
that cannot be merged.
"""

import argparse
import html
import json
import os
import sys
import xml.etree.ElementTree as ET

FORMAT = 1


class MergeError(Exception):
    pass


def load(folder):
    path = os.path.join(folder, "matrix.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MergeError("%s has no matrix.json: not a machine's folder "
                         "(matrix.py --machine=K/N --out=DIR writes one)" % folder)
    except (OSError, ValueError) as e:
        raise MergeError("%s: cannot read it: %s" % (path, e))
    if data.get("format") != FORMAT:
        raise MergeError("%s is of format %s; this merge reads format %d"
                         % (path, data.get("format"), FORMAT))
    data["folder"] = folder
    return data


def plan_difference(a, b):
    """How machine folder b's plan differs from a's, or None."""
    name_a, name_b = a["folder"], b["folder"]
    if a["commit"] != b["commit"]:
        return "%s is of commit %s, %s of commit %s" % (
            name_b, b["commit"][:12], name_a, a["commit"][:12])
    pa, pb = a["plan"], b["plan"]
    for key, what in (("configs", "configurations"), ("runs", "runs per test"),
                      ("machines", "number of machines")):
        if pa[key] != pb[key]:
            return "%s has %s %s, %s has %s" % (name_b, what, pb[key], name_a,
                                                 pa[key])
    if pa["targets"] != pb["targets"]:
        only_a = sorted(set(pa["targets"]) - set(pb["targets"]))
        only_b = sorted(set(pb["targets"]) - set(pa["targets"]))
        return "the targets differ: only in %s: %s; only in %s: %s" % (
            name_a, ", ".join(only_a) or "none", name_b,
            ", ".join(only_b) or "none")
    return None


def merge(folders):
    """The merged matrix: {plan, commit, machines, runs: {(config, target,
    run): result with "machine"}, missing: [(config, target, run, machine)]}.
    Raises MergeError for folders that cannot be merged."""
    if not folders:
        raise MergeError("no machine folders given")
    machines = [load(f) for f in folders]
    first = machines[0]
    for other in machines[1:]:
        difference = plan_difference(first, other)
        if difference:
            raise MergeError("not one matrix: " + difference)
    plan = first["plan"]
    n = plan["machines"]
    seen = {}
    for m in machines:
        k = m["machine"]
        if k in seen:
            raise MergeError("machine %d of %d reported twice: %s and %s"
                             % (k, n, seen[k]["folder"], m["folder"]))
        seen[k] = m
    planned = [(c, t, r) for c in plan["configs"] for t in plan["targets"]
               for r in range(1, plan["runs"] + 1)]
    owner = {item: i % n + 1 for i, item in enumerate(planned)}
    runs, missing = {}, []
    for m in machines:
        for result in m["results"]:
            key = (result["config"], result["target"], result["run"])
            if key not in owner:
                raise MergeError("%s reports %s run %d in %s, which is not in "
                                 "the plan" % (m["folder"], key[1], key[2],
                                               key[0]))
            if owner[key] != m["machine"] or key in runs:
                raise MergeError(
                    "%s run %d in %s came back twice (or from machine %d, "
                    "not %d, whose run it is): the split is not exact"
                    % (key[1], key[2], key[0], m["machine"], owner[key]))
            runs[key] = dict(result, machine=m["machine"], host=m["host"],
                             folder=m["folder"])
    for item in planned:
        if item not in runs:
            missing.append(item + (owner[item],))
    return {"plan": plan, "commit": first["commit"], "machines": seen,
            "runs": runs, "missing": missing, "planned": planned}


def rows(merged):
    """Per (target, config): the counts and who saw the failures."""
    table = {}
    for c, t, r in merged["planned"]:
        row = table.setdefault((t, c), {"target": t, "config": c, "planned": 0,
                                        "passed": 0, "failed": 0, "missing": 0,
                                        "skipped": 0, "not_built": 0,
                                        "failed_on": set(), "unbuilt_on": set(),
                                        "failures": []})
        row["planned"] += 1
        result = merged["runs"].get((c, t, r))
        if result is None:
            row["missing"] += 1
        elif result["status"] == "passed":
            row["passed"] += 1
        elif result["status"] == "skipped":
            row["skipped"] += 1
        else:
            row["failed"] += 1
            unbuilt = result["status"] == "not built"
            row["not_built"] += unbuilt
            row["unbuilt_on" if unbuilt else "failed_on"].add(result["machine"])
            row["failures"].append(result)
    for row in table.values():
        # A run that did not build says something of a machine, not of the test.
        row["flaky"] = row["passed"] > 0 and row["failed"] > row["not_built"]
    return [table[k] for k in sorted(table)]


def totals(merged):
    passed = sum(1 for r in merged["runs"].values() if r["status"] == "passed")
    failed = sum(1 for r in merged["runs"].values()
                 if r["status"] in ("failed", "not built"))
    return passed, failed, len(merged["missing"])


def print_result(merged):
    table = rows(merged)
    plan = merged["plan"]
    print("merged %d machine folder(s) of %d, commit %s: %d planned runs "
          "(%d configuration(s) x %d targets x %d runs)"
          % (len(merged["machines"]), plan["machines"], merged["commit"][:12],
             len(merged["planned"]), len(plan["configs"]),
             len(plan["targets"]), plan["runs"]))
    width = max([len(r["target"]) for r in table] + [len("TARGET")])
    print("%-*s  %-9s  %4s  %8s  %7s  %5s  %s" % (
        width, "TARGET", "CONFIG", "RUNS", "FAILURES", "MISSING", "FLAKY",
        "FAILED ON"))
    for r in table:
        print("%-*s  %-9s  %4d  %8d  %7d  %5s  %s" % (
            width, r["target"], r["config"], r["planned"] - r["skipped"],
            r["failed"], r["missing"], "yes" if r["flaky"] else "no",
            ",".join(["machine %d" % k for k in sorted(r["failed_on"])] +
                     ["machine %d (did not build)" % k
                      for k in sorted(r["unbuilt_on"])]) or "-"))
    for k in range(1, plan["machines"] + 1):
        m = merged["machines"].get(k)
        if m is None:
            print("machine %d of %d never reported" % (k, plan["machines"]))
            continue
        if m.get("dirty"):
            print("machine %d ran with uncommitted changes" % k)
        for cache in m.get("caches", []):
            if cache["warnings"]:
                print("machine %d: the remote cache failed %d time(s) in %s; "
                      "Bazel built locally instead (not a test failure)"
                      % (k, len(cache["warnings"]), cache["config"]))
    by_machine = {}
    for c, t, r, k in merged["missing"]:
        by_machine.setdefault(k, []).append("%s %s run %d" % (t, c, r))
    for k in sorted(by_machine):
        print("missing: %d run(s) of machine %d: %s"
              % (len(by_machine[k]), k, "; ".join(by_machine[k])))
    for r in table:
        for f in r["failures"]:
            print("failed: %s %s run %d on machine %d (%s)%s"
                  % (f["target"], f["config"], f["run"], f["machine"],
                     f["host"], ": did not build" if f["status"] == "not built"
                     else ""))
    passed, failed, missing = totals(merged)
    print("%d passed, %d failed" % (passed, failed + missing))
    return 1 if failed or missing else 0


# The report ---------------------------------------------------------------

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin-top: 28px; }
.sub { color: #555; } .badge { display: inline-block; padding: 1px 8px;
  border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.flaky { background: #e07b00; } .failing { background: #c62828; }
.missing { background: #6d4c9f; } .ok { background: #2e7d32; }
.target { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px;
  margin: 12px 0; } .target h3 { margin: 0 0 6px; font-size: 16px; }
.run { border-top: 1px solid #eee; padding: 8px 0; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px;
  max-height: 360px; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left;
  font-size: 13px; } th { background: #f0f0f0; }
td.rate0 { background: #e8f5e9; } td.rate { background: #fff3e0; }
td.rate100 { background: #ffebee; } .waterfall svg { max-width: 100%; }
"""


def read_output(merged_run, rel):
    """The text of one of a run's kept outputs (a path from its "outputs")."""
    try:
        with open(os.path.join(merged_run["folder"], rel), errors="replace") as f:
            return f.read()
    except OSError:
        return None


def outputs_ending(merged_run, suffix):
    return [rel for rel in merged_run.get("outputs", []) if rel.endswith(suffix)]


def snapshot_table(text):
    """The harness's snapshot JSON as a table: path, state, starts,
    restarts, startup, error."""
    try:
        roots = json.loads(text)
    except ValueError:
        return "<pre>%s</pre>" % html.escape(text[:4000])
    if isinstance(roots, dict):
        roots = [roots]
    out = ["<table><tr><th>PATH</th><th>STATE</th><th>STARTS</th>"
           "<th>RESTARTS</th><th>STARTUP</th><th>ERROR</th></tr>"]

    def walk(node):
        status = node.get("status") or node.get("last_failure") or {}
        error = ("%s: %s" % (status.get("code", ""), status.get("message", ""))
                 if status else "")
        startup = node.get("startup_seconds")
        out.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td></tr>" % tuple(html.escape(str(v)) for v in (
                       node.get("path", ""), node.get("state", ""),
                       node.get("starts", ""), node.get("restarts", ""),
                       "" if startup is None else "%.4gs" % startup, error)))
        for child in node.get("children", []):
            walk(child)

    for root in roots:
        walk(root)
    out.append("</table>")
    return "".join(out)


def run_section(f):
    parts = ["<div class='run'><b>run %d</b> on machine %d (%s)%s"
             % (f["run"], f["machine"], html.escape(f["host"]),
                ": did not build" if f["status"] == "not built" else "")]
    if f.get("excerpt"):
        parts.append("<pre>%s</pre>" % html.escape(f["excerpt"]))
    for rel in outputs_ending(f, ".txt"):
        if os.path.basename(rel).startswith("hang_report"):
            parts.append("<div>Hang report <code>%s</code>:</div><pre>%s</pre>"
                         % (html.escape(os.path.basename(rel)),
                            html.escape(read_output(f, rel) or "")))
    for rel in outputs_ending(f, ".snapshot.json"):
        parts.append("<div>Harness snapshot <code>%s</code>:</div>%s"
                     % (html.escape(os.path.basename(rel)),
                        snapshot_table(read_output(f, rel) or "")))
    for rel in outputs_ending(f, ".svg"):
        svg = read_output(f, rel) or ""
        if "<svg" in svg:
            svg = svg[svg.index("<svg"):]  # inline: no XML declaration
            parts.append("<div>Start-up waterfall <code>%s</code>:</div>"
                         "<div class='waterfall'>%s</div>"
                         % (html.escape(os.path.basename(rel)), svg))
    parts.append("</div>")
    return "".join(parts)


def write_html(merged, path):
    table = rows(merged)
    plan = merged["plan"]
    passed, failed, missing = totals(merged)
    bad = [r for r in table if r["failed"] or r["missing"]]
    # Flaky first (the ones a rerun hides), then failing, then missing only.
    bad.sort(key=lambda r: (not r["flaky"], r["failed"] == 0, r["target"],
                            r["config"]))
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'>"
         "<title>Matrix: %d failed, %d flaky</title><style>%s</style></head>"
         "<body>" % (failed + missing, sum(r["flaky"] for r in table), STYLE)]
    h.append("<h1>Test matrix: %d passed, %d failed, %d missing</h1>"
             % (passed, failed, missing))
    h.append("<div class='sub'>commit %s &middot; %s &middot; %d runs per test "
             "&middot; %d of %d machines reported</div>"
             % (html.escape(merged["commit"][:12]),
                html.escape(", ".join(plan["configs"])), plan["runs"],
                len(merged["machines"]), plan["machines"]))
    h.append("<h2>Flaky and failing</h2>")
    if not bad:
        h.append("<p><span class='badge ok'>none</span> every run passed</p>")
    for r in bad:
        kind = "flaky" if r["flaky"] else "failing" if r["failed"] else "missing"
        ran = r["planned"] - r["missing"] - r["skipped"]
        h.append("<div class='target' id='%s'><h3><span class='badge %s'>%s</span>"
                 " %s <span class='sub'>%s &middot; %d of %d runs failed%s"
                 "</span></h3>" % (
                     html.escape("%s-%s" % (r["target"], r["config"])), kind,
                     kind.upper(), html.escape(r["target"]),
                     html.escape(r["config"]), r["failed"], ran,
                     " &middot; %d missing" % r["missing"] if r["missing"]
                     else ""))
        for f in sorted(r["failures"], key=lambda f: f["run"]):
            h.append(run_section(f))
        h.append("</div>")
    if merged["missing"]:
        h.append("<h2>Missing runs</h2><ul>")
        for c, t, r, k in merged["missing"]:
            h.append("<li>%s %s run %d: machine %d never reported</li>"
                     % (html.escape(t), html.escape(c), r, k))
        h.append("</ul>")
    h.append("<h2>Failure rate per target and configuration</h2><table><tr>"
             "<th>TARGET</th>%s</tr>" % "".join(
                 "<th>%s</th>" % html.escape(c) for c in plan["configs"]))
    by_key = {(r["target"], r["config"]): r for r in table}
    for t in plan["targets"]:
        cells = []
        for c in plan["configs"]:
            r = by_key[(t, c)]
            ran = r["planned"] - r["missing"] - r["skipped"]
            if ran == 0:
                cells.append("<td>%s</td>" % ("skipped" if r["skipped"]
                                              else "missing"))
                continue
            rate = 100.0 * r["failed"] / ran
            cls = "rate0" if rate == 0 else "rate100" if rate == 100 else "rate"
            cells.append("<td class='%s'>%d/%d (%.0f%%)%s</td>" % (
                cls, r["failed"], ran, rate,
                ", %d missing" % r["missing"] if r["missing"] else ""))
        h.append("<tr><td>%s</td>%s</tr>" % (html.escape(t), "".join(cells)))
    h.append("</table></body></html>\n")
    with open(path, "w") as f:
        f.write("".join(h))


def write_junit(merged, path):
    table = rows(merged)
    suites = ET.Element("testsuites", name="matrix")
    for c in merged["plan"]["configs"]:
        suite = ET.SubElement(suites, "testsuite", name=c)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for r in (r for r in table if r["config"] == c):
            for run in range(1, merged["plan"]["runs"] + 1):
                result = merged["runs"].get((c, r["target"], run))
                case = ET.SubElement(
                    suite, "testcase", classname=r["target"],
                    name="run %d%s" % (run, " (flaky target)"
                                       if r["flaky"] else ""))
                counts["tests"] += 1
                if result is None:
                    counts["errors"] += 1
                    owner = next(k for cc, t, rr, k in merged["missing"]
                                 if (cc, t, rr) == (c, r["target"], run))
                    ET.SubElement(case, "error", type="missing",
                                  message="machine %d never reported" % owner)
                    continue
                case.set("machine", str(result["machine"]))
                if result["status"] == "skipped":
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped",
                                  message="left out by the configuration")
                elif result["status"] != "passed":
                    counts["failures"] += 1
                    failure = ET.SubElement(
                        case, "failure", type=result["status"],
                        message="%s on machine %d (%s)" % (
                            result["status"], result["machine"],
                            result["host"]))
                    failure.text = result.get("excerpt", "")
        for key, value in counts.items():
            suite.set(key, str(value))
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def main(argv):
    p = argparse.ArgumentParser(prog="matrix.py merge",
                                description="Merges machines' matrix folders.")
    p.add_argument("folders", nargs="+", metavar="DIR")
    p.add_argument("--html", default="", help="write the flake report here")
    p.add_argument("--junit", default="", help="write JUnit XML here")
    args = p.parse_args(argv)
    try:
        merged = merge(args.folders)
    except MergeError as e:
        print("matrix.py merge: %s" % e)
        return 2
    status = print_result(merged)
    if args.html:
        write_html(merged, args.html)
        print("flake report: " + args.html)
    if args.junit:
        write_junit(merged, args.junit)
        print("JUnit XML: " + args.junit)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
