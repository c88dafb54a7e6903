#!/bin/sh
# Fails every other run: a counter in MATRIX_FIXTURE_DIR (given by the
# self-test through --test_env) decides, under a lock.
dir=${MATRIX_FIXTURE_DIR:?set by tools/matrix_selftest.sh}
exec 9>"$dir/lock"
flock 9
n=$(cat "$dir/count" 2>/dev/null || echo 0)
echo $((n + 1)) >"$dir/count"
[ $((n % 2)) -eq 0 ] || { echo "flaky run $n fails"; exit 1; }
