#!/usr/bin/env bash
# Runs the benchmarks as docs/PERFORMANCE.md reports them: optimised build,
# 5 repetitions, medians (and the other aggregates) only.
#
#   bash tools/bench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Wake]
#   bash tools/bench.sh --process [flags]   the real servers (process_benchmark.cc)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=lifecycle_benchmark
if [ "${1:-}" = --process ]; then  # the real-server benchmarks
  binary=process_benchmark
  shift
fi
bazel build -c opt "//benchmarks:$binary" >/dev/null 2>&1 ||
  bazel build -c opt "//benchmarks:$binary"
exec "$(bazel info -c opt bazel-bin 2>/dev/null)/benchmarks/$binary" \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_counters_tabular=true "$@"
