#!/usr/bin/env bash
# One matrix split over three machines and merged back (README, "Running the
# matrix on many machines"), simulated on this host: three clones of this
# checkout, each with a Bazel output base of its own, run their shares of one
# plan at once (tools/matrix.py --machine=K/3) over the fixtures of
# tools/matrix_fixtures: passing, flaky, failing, sharded, a harness that fails
# every other run (leaving its snapshot and waterfall), a test that hangs (left
# to the hang watchdog), and one that does not build on machine 3. Then:
#   - the split is exact: every planned run ran exactly once, on the machine
#     the plan gives it, and the shares are balanced;
#   - `matrix.py merge` counts exactly, flags the flaky fixtures, and names the
#     machine of each failure; it refuses a folder of another commit or plan,
#     a machine reported twice, and names the runs of a machine that never
#     reported instead of counting them passed;
#   - its HTML report renders in headless Chromium with the flaky target and its
#     waterfall (and a report without failures shows neither), and its JUnit
#     XML parses with the same counts.
# A remote cache URL, if given, is passed to every machine (.ci/run gives its own).
#
#   bash tools/matrix_split_check.sh [REMOTE_CACHE_URL]
# Prints "ok"/"FAIL" per check and "N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
work=$(mktemp -d /tmp/matrix-split.XXXXXX)
. "$repo/tools/checks.sh"
trap remove_work EXIT
cache=()
[ -n "${1:-}" ] && cache=("--remote_cache=$1")

F=//tools/matrix_fixtures
targets=($F:passing $F:flaky $F:failing $F:sharded $F:flaky_service $F:hanging $F:builds_here)
mkdir -p "$work/counters"
for k in 1 2 3; do
  git clone -q "$repo" "$work/m$k"
  # The clones are of HEAD: run this checkout's own matrix tools and fixtures in them.
  cp -r "$repo"/tools/matrix.py "$repo"/tools/matrix_merge.py "$work/m$k/tools/"
  cp -r "$repo"/tools/matrix_fixtures/. "$work/m$k/tools/matrix_fixtures/"
done
for k in 1 2 3; do
  extra=()
  [ "$k" = 3 ] && extra=(--action_env=MATRIX_FIXTURE_BREAK_BUILD=1)
  (cd "$work/m$k" && python3 tools/matrix.py --configs=fastbuild --runs=4 --machine=$k/3 \
    --out="$work/out-$k" --output_base="$work/base-$k" "${cache[@]}" "${targets[@]}" -- \
    --test_env=MATRIX_FIXTURE_DIR="$work/counters" "${extra[@]}" >"$work/machine-$k.log" 2>&1) &
done
wait
for k in 1 2 3; do
  [ -s "$work/out-$k/matrix.json" ]
  expect "machine $k of 3 ran its share and wrote its folder" $? ||
    sed -n '$p' "$work/machine-$k.log"
done

# The split, checked from the folders against the plan computed here.
python3 - "$work" >"$work/split.txt" <<'PY'
import json, sys
work = sys.argv[1]
machines = [json.load(open("%s/out-%d/matrix.json" % (work, k))) for k in (1, 2, 3)]
plan = machines[0]["plan"]
planned = [(c, t, r) for c in plan["configs"] for t in plan["targets"]
           for r in range(1, plan["runs"] + 1)]
seen = {}
for m in machines:
    for res in m["results"]:
        key = (res["config"], res["target"], res["run"])
        seen.setdefault(key, []).append(m["machine"])
once = all(len(seen.get(item, [])) == 1 for item in planned) and len(seen) == len(planned)
owned = all(seen[item] == [i % 3 + 1] for i, item in enumerate(planned) if item in seen)
sizes = sorted(len(m["results"]) for m in machines)
print("exact %d" % (0 if once else 1))
print("owned %d" % (0 if owned else 1))
print("balanced %d %s" % (0 if sizes[-1] - sizes[0] <= 1 else 1, sizes))
print("planned %d" % len(planned))
PY
grep -q "^planned 28$" "$work/split.txt"
expect "the plan is 7 targets x 1 configuration x 4 runs = 28 runs" $?
grep -q "^exact 0" "$work/split.txt"
expect "every planned run ran exactly once across the three machines" $?
grep -q "^owned 0" "$work/split.txt"
expect "each run ran on the machine the plan gives it (run i on machine i mod 3 + 1)" $?
grep -q "^balanced 0" "$work/split.txt"
expect "the shares are balanced ($(sed -n 's/^balanced [01] //p' "$work/split.txt") runs)" $?

out=$(python3 tools/matrix.py merge "$work"/out-{1,2,3} --html="$work/report.html" \
  --junit="$work/report.xml" 2>&1)
rc=$?
echo "$out" | sed -n '/^TARGET/,/^[^/T]/p' | grep -E '^(TARGET|//)' | sed 's/^/     /'
# passing 4; flaky 2 of 4; failing 0; sharded 0; flaky_service 2 of 4; hanging 0;
# builds_here 3 (its run 3 is machine 3's, which cannot build it).
[ $rc -eq 1 ] && [ "$(tail -n 3 <<<"$out" | head -n 1)" = "11 passed, 17 failed" ]
expect "the merge counts exactly: 11 passed, 17 failed" $?
grep -qE "^$F:flaky +fastbuild +4 +2 +0 +yes " <<<"$out" &&
  grep -qE "^$F:flaky_service +fastbuild +4 +2 +0 +yes " <<<"$out" &&
  grep -qE "^$F:failing +fastbuild +4 +4 +0 +no +machine 1,machine 2,machine 3$" <<<"$out" &&
  grep -qE "^$F:passing +fastbuild +4 +0 +0 +no +-$" <<<"$out"
expect "the flaky fixtures are flagged flaky, the failing one failing on every machine" $?
python3 - "$work" "$out" <<'PY'
import re, sys
work, out = sys.argv[1], sys.argv[2]
targets = sorted(re.findall(r"^(//\S+) +fastbuild", out, re.M))
planned = [("fastbuild", t, r) for t in targets for r in range(1, 5)]
owner = {item: i % 3 + 1 for i, item in enumerate(planned)}
failed = re.findall(r"^failed: (\S+) (\S+) run (\d+) on machine (\d+)", out, re.M)
ok = len(failed) == 17 and all(owner[(c, t, int(r))] == int(k) for t, c, r, k in failed)
sys.exit(0 if ok else 1)
PY
expect "each of the 17 failures is attributed to the machine that ran it" $?
grep -qE "^failed: $F:builds_here fastbuild run 3 on machine 3 .*: did not build$" <<<"$out"
expect "a target that does not build on machine 3 is a failure of machine 3's run" $?

# Folders that cannot be merged.
cp -r "$work/out-2" "$work/other-commit"
sed -i -E 's/"commit": "[0-9a-f]{12}/"commit": "000000000000/' "$work/other-commit/matrix.json"
out=$(python3 tools/matrix.py merge "$work/out-1" "$work/other-commit" "$work/out-3" 2>&1)
[ $? -eq 2 ] && grep -qE "not one matrix: .*other-commit is of commit 000000000000, .*out-1 of commit [0-9a-f]{12}" <<<"$out"
expect "a folder of another commit is refused, naming both commits" $?
cp -r "$work/out-2" "$work/other-plan"
python3 - "$work/other-plan/matrix.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
data["plan"]["runs"] = 5
json.dump(data, open(sys.argv[1], "w"))
PY
out=$(python3 tools/matrix.py merge "$work/out-1" "$work/other-plan" 2>&1)
[ $? -eq 2 ] && grep -q "other-plan has runs per test 5, .*out-1 has 4" <<<"$out"
expect "a folder of another plan is refused, naming the difference" $?
out=$(python3 tools/matrix.py merge "$work/out-1" "$work/out-1" 2>&1)
[ $? -eq 2 ] && grep -q "machine 1 of 3 reported twice" <<<"$out"
expect "a machine reported twice is refused" $?
out=$(python3 tools/matrix.py merge "$work/out-1" "$work/out-2" 2>&1)
rc=$?
missing=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))['results']))" \
  "$work/out-3/matrix.json")
[ $rc -eq 1 ] && grep -q "^machine 3 of 3 never reported$" <<<"$out" &&
  grep -qE "^missing: $missing run\(s\) of machine 3: $F:builds_here fastbuild run 3; " <<<"$out" &&
  python3 - "$work" "$out" "$missing" <<'PY'
import json, re, sys
work, out, missing = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [r for k in (1, 2) for r in json.load(open("%s/out-%d/matrix.json" % (work, k)))["results"]]
passed = sum(r["status"] == "passed" for r in runs)
failed = len(runs) - passed
sys.exit(0 if out.splitlines()[-1] == "%d passed, %d failed" % (passed, failed + missing) else 1)
PY
expect "machine 3 never reporting leaves its $missing runs named missing, counted failed" $?
out=$(python3 tools/matrix.py merge "$work/nowhere" 2>&1)
[ $? -eq 2 ] && grep -q "nowhere has no matrix.json" <<<"$out"
expect "a folder that is not a machine's is refused" $?

# The report.
python3 - "$work/report.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
cases = suite.findall("testcase")
failures = [c for c in cases if c.find("failure") is not None]
flaky = {c.get("classname") for c in cases if "(flaky target)" in c.get("name")}
ok = (suite.get("tests") == "28" and suite.get("failures") == "17" and len(cases) == 28
      and len(failures) == 17 and flaky == {"//tools/matrix_fixtures:flaky",
                                            "//tools/matrix_fixtures:flaky_service"}
      and all(c.get("machine") in ("1", "2", "3") for c in cases))
sys.exit(0 if ok else 1)
PY
expect "the JUnit XML parses: 28 test cases, 17 failures, the flaky targets marked" $?
grep -q "Hang report <code>hang_report_HangingFixture" "$work/report.html" &&
  grep -q "Harness snapshot <code>FlakyServiceFixture.StartsTheStore" "$work/report.html" &&
  grep -q "port 6379 taken (injected)" "$work/report.html" &&
  ! grep -qE "(src|href)=['\"]?(https?:|//)" "$work/report.html"
expect "the report holds the hang report, the snapshot table and the error, and loads nothing" $?
# Passing runs only: no flaky target, no waterfall (so the screenshot check can fail).
python3 - "$work/out-1/matrix.json" "$work/clean" <<'PY'
import json, os, sys
data = json.load(open(sys.argv[1]))
data["plan"]["machines"] = 1
data["plan"]["targets"] = ["//tools/matrix_fixtures:passing"]
data["machine"] = 1
data["results"] = [dict(r, run=i + 1) for i, r in enumerate(
    [r for r in data["results"] if r["status"] == "passed"][:4])]
for r in data["results"]:
    r["target"] = "//tools/matrix_fixtures:passing"
os.makedirs(sys.argv[2])
json.dump(data, open(os.path.join(sys.argv[2], "matrix.json"), "w"))
PY
python3 tools/matrix.py merge "$work/clean" --html="$work/clean.html" >/dev/null 2>&1
expect "a matrix with no failure merges with status 0" $?
python3 tools/report_render_check.py "$work/report.html" "$work/clean.html" \
  "//tools/matrix_fixtures:flaky_service"
expect "the flake report renders in headless Chromium (see the lines above)" $?
finish
