#!/usr/bin/env bash
# A sharded suite runs each of its cases exactly once across its shards: runs
# //examples:client_test (shard_count = 4) and compares the cases in the four shards'
# test.xml with the binary's own --gtest_list_tests; also checks that each shard ran some.
#
# Needs tools/setup.sh to have run. Prints "ok"/"FAIL" per check and ends with
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$repo/tools/checks.sh"
cd "$repo" || exit 1

check "bazel test //examples:client_test (4 shards)" \
  bazel test --nocache_test_results //examples:client_test || finish
logs=$(bazel info bazel-testlogs 2>/dev/null)/examples/client_test
# Every case the binary has, as Suite.Name (parameterized ones included).
bazel-bin/examples/client_test --gtest_list_tests | awk '
  /^[^ ]/ { suite = $1; next }
  { print suite $1 }' | sort >"$work/listed"
check "four shard folders" bash -c '[ "$(ls -d "$0"/shard_*_of_4 | wc -l)" -eq 4 ]' "$logs"
# The cases each shard ran: a case of another shard is not in a shard's test.xml.
for xml in "$logs"/shard_*_of_4/test.xml; do
  python3 - "$xml" <<'PY' >>"$work/ran"
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    print(case.get("classname") + "." + case.get("name"))
PY
done
sort "$work/ran" >"$work/ran.sorted"
check "each case ran once across the shards" \
  bash -c 'diff "$0/listed" "$0/ran.sorted"' "$work"
check "every shard ran cases" \
  bash -c 'for x in "$0"/shard_*_of_4/test.xml; do grep -q "<testcase" "$x" || exit 1; done' "$logs"
finish
