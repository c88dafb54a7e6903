#!/usr/bin/env bash
# Runs the benchmarks as docs/PERFORMANCE.md reports them: optimised build,
# 5 repetitions, medians (and the other aggregates) only.
#
#   bash tools/bench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Wake]
#   bash tools/bench.sh --process [flags]   the real servers (process_benchmark.cc)
#   bash tools/bench.sh --servers [flags]   testing/servers/ (servers_benchmark.cc)
#   bash tools/bench.sh --containers [flags] containers (container_benchmark.cc)
#   bash tools/bench.sh --headline          the headline table, ratios from one run
set -euo pipefail
cd "$(dirname "$0")/.."
binary=lifecycle_benchmark
headline=0
if [ "${1:-}" = --process ]; then  # the real-server benchmarks
  binary=process_benchmark
  shift
elif [ "${1:-}" = --servers ]; then  # the ready-made servers of testing/servers/
  binary=servers_benchmark
  shift
elif [ "${1:-}" = --containers ]; then  # containers through podman
  binary=container_benchmark
  shift
elif [ "${1:-}" = --headline ]; then  # docs/PERFORMANCE.md's headline table
  headline=1
  shift
fi
bazel build -c opt "//benchmarks:$binary" >/dev/null 2>&1 ||
  bazel build -c opt "//benchmarks:$binary"
path="$(bazel info -c opt bazel-bin 2>/dev/null)/benchmarks/$binary"
[ "$headline" = 1 ] && exec python3 tools/bench_headline.py "$path"
exec "$path" \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_counters_tabular=true "$@"
