#!/usr/bin/env bash
# Runs the core tests (//lifecycle) under valgrind's memcheck and fails on any
# memory error or definite/indirect leak (with --fair-sched=yes: a test thread
# that spins would otherwise starve the others). Death tests are skipped (they abort
# on purpose, in a forked child).
#
#   bash tools/memcheck.sh            # prints "N passed, N failed"
set -uo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed (apt-get install valgrind)"; exit 1; }
targets=$(bazel query 'kind(cc_test, //lifecycle/...)' 2>/dev/null)
bazel build --compilation_mode=dbg $targets >/dev/null 2>&1 || {
  echo "memcheck: bazel build failed"; echo "0 passed, 1 failed"; exit 1; }
bin=$(bazel info --compilation_mode=dbg bazel-bin 2>/dev/null)
passed=0
failed=0
for t in $targets; do
  path="$bin/${t#//}"
  path="${path/://}"
  log=$(mktemp)
  if valgrind --tool=memcheck --fair-sched=yes --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
      "$path" --gtest_filter='-*DeathTest*' >"$log" 2>&1; then
    summary=$(grep -E 'ERROR SUMMARY' "$log" | tail -1 | sed 's/==[0-9]*== //')
    echo "ok   $t: $summary"
    passed=$((passed + 1))
  else
    echo "FAIL $t (log: $log)"
    grep -E '==[0-9]+== (Invalid|Conditional|.*definitely lost|.*indirectly lost|ERROR SUMMARY)' "$log" | head -10
    failed=$((failed + 1))
    continue
  fi
  rm -f "$log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
