#!/usr/bin/env bash
# Self-test of tools/matrix.py: argument errors, and a run over the fixtures in
# tools/matrix_fixtures that must find the flaky test flaky and the failing
# test failing. Runs Bazel, so it runs outside `bazel test` (from .ci/run).
set -u
cd "$(dirname "$0")/.."
failures=0
expect() {  # expect NAME CONDITION_RESULT
  if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}

out=$(python3 tools/matrix.py --runs=0 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--runs must be at least 1" <<<"$out"; expect "rejects --runs=0" $?
out=$(python3 tools/matrix.py --configs=fastbuild,bogus 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "unknown configuration(s) bogus" <<<"$out"; expect "rejects an unknown config" $?

out=$(python3 tools/matrix.py --machine=4/3 --out=/tmp/x 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--machine must be K/N with 1 <= K <= N, got '4/3'" <<<"$out"
expect "rejects --machine=4/3" $?
out=$(python3 tools/matrix.py --machine=1/3 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--machine needs --out=DIR" <<<"$out"; expect "--machine needs --out" $?
out=$(python3 tools/matrix.py --machine=1/3 --out=/tmp/x --budget=5 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--budget cannot be used with --machine" <<<"$out"
expect "rejects --budget with --machine (runs would go missing)" $?

out=$(python3 tools/matrix.py --configs=fastbuild,opt --runs=2 --machine=2/3 --plan \
  //tools/matrix_fixtures/... //tools/matrix_fixtures:passing //lifecycle:signal_test 2>&1)
# Plan: fastbuild then opt; //lifecycle:signal_test before ...:passing; runs 1, 2.
# Machine 2 of 3 takes the plan's runs 1, 4 and 7 (from 0).
[ "$out" = "fastbuild //lifecycle:signal_test run 2
opt //lifecycle:signal_test run 1
opt //tools/matrix_fixtures:passing run 2
machine 2 of 3: 3 of the plan's 8 runs" ]
expect "the plan leaves out a wildcard's manual tests, keeps named ones, and is split" $?

out=$(python3 tools/matrix.py --configs=tsan --dry-run --remote_executor=grpcs://cluster.invalid \
  --remote_cache=grpcs://cluster.invalid --remote_header=x-key=k --jobs=64 //x:y -- --keep_going 2>&1)
grep -qE -- "^=== bazel test .*--config=tsan --remote_executor=grpcs://cluster.invalid --remote_cache=grpcs://cluster.invalid --remote_header=x-key=k --jobs=64 --keep_going -- //x:y$" <<<"$out"
expect "a cluster's flags reach bazel test" $?

dir=$(mktemp -d /tmp/matrix-fixture.XXXXXX)
out=$(python3 tools/matrix.py --configs=fastbuild --runs=4 --logs="$dir/logs" \
  //tools/matrix_fixtures:passing //tools/matrix_fixtures:flaky //tools/matrix_fixtures:failing -- --test_env=MATRIX_FIXTURE_DIR="$dir" 2>&1); rc=$?
echo "$out" | sed -n '/^TARGET/,$p'
[ $rc -eq 1 ]; expect "a failing run fails the matrix" $?
grep -qE '^//tools/matrix_fixtures:flaky +fastbuild +4 +2 +yes' <<<"$out"; expect "the flaky test is flaky" $?
grep -qE '^//tools/matrix_fixtures:failing +fastbuild +4 +4 +no' <<<"$out"; expect "the failing test fails every run" $?
grep -qE '^//tools/matrix_fixtures:passing +fastbuild +4 +0 +no' <<<"$out"; expect "the passing test passes" $?
grep -q "failed run log: $dir/logs/fastbuild/tools/matrix_fixtures/failing/run_1.log" <<<"$out" &&
  grep -q "always fails" "$dir/logs/fastbuild/tools/matrix_fixtures/failing/run_1.log"
expect "failed runs' logs are kept" $?
grep -q "^  | this test always fails" <<<"$out"
expect "a failed run's log is printed, not only named" $?
[ "$(tail -n 1 <<<"$out")" = "6 passed, 6 failed" ]; expect "final count line" $?
out=$(python3 tools/matrix.py --configs=fastbuild --runs=2 --logs="$dir/logs" \
  //tools/matrix_fixtures:sharded 2>&1); rc=$?
grep -qE '^//tools/matrix_fixtures:sharded +fastbuild +2 +2 +no' <<<"$out" &&
  grep -q "failed run log: $dir/logs/fastbuild/tools/matrix_fixtures/sharded/run_1.log" <<<"$out"
expect "a run fails when one of its shards fails" $?
rm -rf "$dir"
[ $failures -eq 0 ]
