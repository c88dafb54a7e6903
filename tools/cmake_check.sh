#!/usr/bin/env bash
# The CMake build, as a new user runs it (README), against Debian's prebuilt abseil (whose
# absl::string_view is its own type, not std::string_view):
#
#   1. configure, build and ctest this repository (every test of the Bazel build);
#   2. configure with LIFECYCLE_BUILD_TESTS=OFF and install with --prefix into a temporary
#      folder, as the README's commands do: no test target is built, and the pkg-config
#      files find the prefix from their own place;
#   3. a consumer project that finds it with find_package(lifecycle) and links
#      lifecycle::testing, lifecycle::conformance and GTest::gmock_main with no
#      find_package(GTest) of its own; and one that builds the README's PostgreSQL and Redis
#      tests against lifecycle::servers_postgres and lifecycle::servers_redis and runs them
#      against real servers;
#   4. a consumer program built with pkg-config alone (lifecycle_testing, gmock_main), with
#      the README's PKG_CONFIG_PATH;
#   5. a consumer project that takes the release archive (tools/release.sh) with
#      FetchContent from a file:// URL and its sha256: the library builds inside it with no
#      test target, and the consumer's test passes.
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
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release || finish
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

# The install, as the README's commands have it: no prefix when configuring, the
# prefix given to `cmake --install` (so the installed files must not carry the
# configure-time one).
install_build="$work/install-build"
check "configure for install, LIFECYCLE_BUILD_TESTS=OFF (the README's command)" \
  cmake -S "$repo" -B "$install_build" -DLIFECYCLE_BUILD_TESTS=OFF || finish
check "build for install (the README's command)" \
  cmake --build "$install_build" -j "$jobs" || finish
check "no test target built with LIFECYCLE_BUILD_TESTS=OFF" \
  bash -c '! find "$0" -name "*_test" -type f -perm -u+x | grep .' "$install_build"
check "install with --prefix (the README's command)" \
  cmake --install "$install_build" --prefix "$prefix" || finish
check "the installed pkg-config files carry no configure-time prefix" \
  bash -c '! grep -l "^prefix=/" "$0"/lib/pkgconfig/*.pc' "$prefix"

# The consumer test, shared by the three consumers: a harness and a fake.
consumer_test='#include "gtest/gtest.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"

TEST(ConsumerTest, HarnessStartsAFake) {
  lifecycle_testing::FakeService db("db");
  lifecycle_testing::StartStopHarness harness({&db});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_THAT(db, lifecycle_testing::IsStarted());
}'

consumer="$work/consumer"
mkdir -p "$consumer"
cat >"$consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(lifecycle 0.2 REQUIRED)
enable_testing()
add_executable(consumer_test consumer_test.cc)
target_link_libraries(consumer_test PRIVATE lifecycle::testing lifecycle::conformance
  GTest::gmock_main)
add_test(NAME consumer_test COMMAND consumer_test)
EOF
{
  echo "$consumer_test"
  cat <<'EOF'

#include <memory>

#include "lifecycle/testing/conformance.h"

using lifecycle_testing::ServiceConformanceTest;
INSTANTIATE_TEST_SUITE_P(
    Fake, ServiceConformanceTest,
    ::testing::Values(lifecycle_testing::ServiceFactory{
        "FakeService",
        [] { return std::make_unique<lifecycle_testing::FakeService>("fake"); }}),
    lifecycle_testing::ServiceFactoryName);
EOF
} >"$consumer/consumer_test.cc"
check "find_package consumer: configure with CMAKE_PREFIX_PATH, build" \
  bash -c 'cmake -S "$0" -B "$0/build" -DCMAKE_PREFIX_PATH="$1" && cmake --build "$0/build"' \
  "$consumer" "$prefix"
check "find_package consumer: its test passes, and lifecycle::conformance links" \
  bash -c 'cd "$0/build" && ctest --output-on-failure' "$consumer"

# The README's PostgreSQL and Redis tests ("Servers in a test"), as they stand, against the
# installed lifecycle::servers_postgres and lifecycle::servers_redis.
servers="$work/servers-consumer"
mkdir -p "$servers"
for file in orders_test.cc sessions_test.cc; do
  awk -v name="app/$file" '
    $0 == "<!-- consumer-check: " name " -->" { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' "$repo/README.md" >"$servers/$file"
done
cat >"$servers/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(servers_consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(lifecycle 0.2 REQUIRED)
enable_testing()
add_executable(orders_test orders_test.cc)
target_link_libraries(orders_test PRIVATE lifecycle::servers_postgres GTest::gtest_main)
add_executable(sessions_test sessions_test.cc)
target_link_libraries(sessions_test PRIVATE lifecycle::servers_redis GTest::gtest_main)
add_test(NAME orders_test COMMAND orders_test)
add_test(NAME sessions_test COMMAND sessions_test)
EOF
check "find_package consumer of the servers: the README's PostgreSQL and Redis tests build" \
  bash -c 'grep -q "^TEST_F" "$0/orders_test.cc" && grep -q "^TEST_F" "$0/sessions_test.cc" &&
    cmake -S "$0" -B "$0/build" -DCMAKE_PREFIX_PATH="$1" && cmake --build "$0/build" -j "$2"' \
  "$servers" "$prefix" "$jobs"
check "find_package consumer of the servers: both pass against real servers (not skipped)" \
  bash -c 'cd "$0/build" && ctest --output-on-failure -V >ctest.log 2>&1 &&
    ! grep -q "SKIPPED" ctest.log && grep -q "OK \] OrdersTest.StartsFromAnEmptyDatabase" ctest.log &&
    grep -q "OK \] SessionsTest.StartsEmpty" ctest.log' "$servers"

pc="$work/pkg-config"
mkdir -p "$pc"
echo "$consumer_test" >"$pc/consumer_test.cc"
check "pkg-config consumer: builds with pkg-config's flags alone, and passes" \
  bash -c 'export PKG_CONFIG_PATH="$1/lib/pkgconfig"  # as the README has it
    pkg-config --modversion lifecycle | grep -qE "^[0-9]+\.[0-9]+\.[0-9]+$" &&
    c++ -std=c++17 "$0/consumer_test.cc" -o "$0/consumer_test" \
      $(pkg-config --cflags --libs lifecycle_testing gmock_main) && "$0/consumer_test"' \
  "$pc" "$prefix"

fetch="$work/fetchcontent"
mkdir -p "$fetch"
make_release "$repo" || finish
cat >"$fetch/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
include(FetchContent)
if(POLICY CMP0135)  # as the README has it: no warning about timestamps
  cmake_policy(SET CMP0135 NEW)
endif()
FetchContent_Declare(lifecycle
  URL "file://$release_archive"
  URL_HASH SHA256=$release_sha256)
FetchContent_MakeAvailable(lifecycle)
enable_testing()
add_executable(consumer_test consumer_test.cc)
target_link_libraries(consumer_test PRIVATE lifecycle::testing GTest::gmock_main)
add_test(NAME consumer_test COMMAND consumer_test)
EOF
echo "$consumer_test" >"$fetch/consumer_test.cc"
check "FetchContent consumer: the release archive by URL and sha256, built inside it" \
  bash -c 'cmake -S "$0" -B "$0/build" && cmake --build "$0/build" -j "$1"' "$fetch" "$jobs" ||
  finish
check "FetchContent consumer: no test target of the library built; its own test passes" \
  bash -c '[ -d "$0/build/_deps/lifecycle-build" ] &&
    ! find "$0/build/_deps" -name "*_test" -type f -perm -u+x | grep . &&
    cd "$0/build" && ctest --output-on-failure | grep -q "100% tests passed"' "$fetch"
finish
