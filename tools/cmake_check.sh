#!/usr/bin/env bash
# The CMake build, as a new user runs it (README, "Build with CMake"), against Debian's
# prebuilt abseil (whose absl::string_view is its own type, not std::string_view):
#
#   1. configure, build and ctest this repository (every test of the Bazel build);
#   2. install it into a temporary prefix;
#   3. build and run a small consumer project that finds it with find_package(lifecycle)
#      and links lifecycle::testing (a test using the harness and a fake).
#
# Needs tools/setup.sh to have run. Prints "ok"/"FAIL" per step and ends with
# "N passed, N failed", where N counts the ctest tests and the steps; exits non-zero on any
# failure.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)

. "$repo/tools/checks.sh"

build="$work/build"
prefix="$work/prefix"
check "configure (Debian's prebuilt abseil)" \
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" || finish
check "build" cmake --build "$build" -j "$jobs" || finish

# ctest: one line per test; its own counts go into ours.
ctest_log="$work/ctest.log"
(cd "$build" && ctest -j "$jobs" --timeout 300 --output-on-failure) >"$ctest_log" 2>&1
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$ctest_log")
if [ -z "$summary" ]; then
  echo "FAIL ctest (no summary)"
  tail -n 40 "$ctest_log" | sed 's/^/  | /'
  failed=$((failed + 1))
else
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  bad=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")
  echo "ctest: $summary"
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  if [ "$bad" -ne 0 ]; then
    # What each failed test printed (ctest --output-on-failure), then the list.
    grep -E -A 30 'Failure$' "$ctest_log" | head -n 120 | sed 's/^/  | /'
    sed -n '/The following tests FAILED/,$p' "$ctest_log"
  fi
fi

check "install into a temporary prefix" cmake --install "$build" || finish

consumer="$work/consumer"
mkdir -p "$consumer"
cat >"$consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(lifecycle 0.2 REQUIRED)
enable_testing()
add_executable(consumer_test consumer_test.cc)
target_link_libraries(consumer_test PRIVATE lifecycle::testing GTest::gmock_main)
add_test(NAME consumer_test COMMAND consumer_test)
EOF
cat >"$consumer/consumer_test.cc" <<'EOF'
#include "gtest/gtest.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"

TEST(ConsumerTest, HarnessStartsAFake) {
  lifecycle_testing::FakeService db("db");
  lifecycle_testing::StartStopHarness harness({&db});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_THAT(db, lifecycle_testing::IsStarted());
}
EOF
check "consumer: find_package(lifecycle) and build" \
  bash -c 'cmake -S "$0" -B "$0/build" -DCMAKE_PREFIX_PATH="$1" && cmake --build "$0/build"' \
  "$consumer" "$prefix" || finish
check "consumer: its test passes" bash -c 'cd "$0/build" && ctest --output-on-failure' \
  "$consumer"
finish
