#!/usr/bin/env bash
# Runs the benchmarks as docs/PERFORMANCE.md reports them: optimised build,
# 5 repetitions, medians (and the other aggregates) only.
#
#   bash tools/bench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Wake]
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //benchmarks:lifecycle_benchmark >/dev/null 2>&1 ||
  bazel build -c opt //benchmarks:lifecycle_benchmark
exec "$(bazel info -c opt bazel-bin 2>/dev/null)/benchmarks/lifecycle_benchmark" \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_counters_tabular=true "$@"
