#!/usr/bin/env bash
# Uses the library as a new user would, from a Bazel workspace outside this repository:
#
#   - the workspace has its own testing/wait.h and testing/BUILD.bazel, so an include that
#     is not under the library's own prefix would find the user's file instead;
#   - its .bazelrc and WORKSPACE are the blocks the README marks with
#     "<!-- consumer-check: ... -->", taken from the README itself so the two cannot drift;
#   - its test uses a FakeService, a StartStopHarness, a matcher and WaitOrTimeout;
#   - it runs in the default configuration and under the user's own ThreadSanitizer flags
#     (a plain -fsanitize=thread, nothing from this repository's .bazelrc).
#
# Needs tools/setup.sh to have run. Prints one "ok"/"FAIL" line per check and ends with
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'cd /; bazel --output_user_root="$work/.bazel" shutdown >/dev/null 2>&1; rm -rf "$work"' EXIT
ws="$work/consumer"
mkdir -p "$ws/third_party" "$ws/testing" "$ws/app"
ln -s "$repo" "$ws/third_party/lifecycle"

. "$repo/tools/checks.sh"

# The README's marked block that follows "<!-- consumer-check: NAME -->".
readme_block() {
  awk -v name="$1" '
    $0 == "<!-- consumer-check: " name " -->" { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' "$repo/README.md"
}
readme_block .bazelrc >"$ws/.bazelrc"
readme_block WORKSPACE >"$ws/WORKSPACE"
# Shared with this repository's own builds, so that a second run is fast. A user's cache is
# their own business; this one changes nothing about what is built.
echo "build --disk_cache=~/.cache/lifecycle/bazel-disk-cache" >>"$ws/.bazelrc"
check "README blocks found (.bazelrc, WORKSPACE)" \
  bash -c 'grep -q -- -std=c++ "$0/.bazelrc" && grep -q "^lifecycle_deps()" "$0/WORKSPACE"' "$ws"

# A user package named like ours, with a header named like ours.
cat >"$ws/testing/wait.h" <<'EOF'
// The user's own testing/wait.h: if the library's headers found this file, the
// consumer test would not compile.
#error "the user's testing/wait.h was included instead of the library's"
EOF
cat >"$ws/testing/BUILD.bazel" <<'EOF'
cc_library(
    name = "testing",
    hdrs = ["wait.h"],
    visibility = ["//visibility:public"],
)
EOF

cat >"$ws/app/BUILD.bazel" <<'EOF'
cc_test(
    name = "consumer_test",
    srcs = ["consumer_test.cc"],
    deps = [
        "//testing",
        "@lifecycle//lifecycle:service",
        "@lifecycle//testing",
        "@com_google_googletest//:gtest_main",
    ],
)
EOF
cat >"$ws/app/consumer_test.cc" <<'EOF'
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/wait.h"

namespace {

using ::lifecycle_testing::FakeService;
using ::lifecycle_testing::StartStopHarness;

TEST(ConsumerTest, StartsWaitsAndStops) {
  FakeService db("db");
  FakeService cache("cache");
  StartStopHarness harness({&db, &cache});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_THAT(db, lifecycle_testing::IsStarted());
  EXPECT_TRUE(lifecycle_testing::WaitOrTimeout(cache.Started()));
}

TEST(ConsumerTest, NamesTheServiceThatFailed) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  std::vector<lifecycle::Service*> services = {&db};
  absl::Status status =
      lifecycle::StartAll(services, lifecycle::Context::Background());
  EXPECT_THAT(status.message(), ::testing::HasSubstr("service 'db'"));
  EXPECT_THAT(db, lifecycle_testing::FailedToStart(absl::StatusCode::kUnavailable));
}

}  // namespace
EOF

cd "$ws" || exit 1
bazel_ws() { bazel --output_user_root="$work/.bazel" "$@"; }
check "consumer test, default configuration" \
  bazel_ws test --test_output=errors //app:consumer_test
check "consumer test, the user's own -fsanitize=thread" \
  bazel_ws test --test_output=errors --copt=-fsanitize=thread --linkopt=-fsanitize=thread \
  //app:consumer_test
check "calling lifecycle_deps() twice is harmless" \
  bash -c 'echo "lifecycle_deps()" >>WORKSPACE && bazel --output_user_root="$0/.bazel" build //app:consumer_test' \
  "$work"

finish
