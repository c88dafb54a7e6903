#!/usr/bin/env bash
# Uses the library as a new user would: from a Bazel workspace outside this repository that
# pins a release archive, following only the README.
#
#   - tools/release.sh makes the archive of this checkout (its uncommitted changes to
#     tracked files included) and prints the http_archive stanza with its sha256; the
#     workspace takes it through a file:// URL, as it would take a downloaded release;
#   - its WORKSPACE and .bazelrc are the README's blocks marked
#     "<!-- consumer-check: FILE -->", with the README's placeholder http_archive replaced
#     by the printed stanza (same name and strip_prefix, or the check fails), and the
#     release's lifecycle.bazelrc imported as the README says;
#   - the README's first test, its virtual-time test, its PostgreSQL and Redis module tests
#     and its Redis-by-hand test are the README's marked blocks, compiled and run as they
#     stand (nothing added; the servers are not skipped: the test logs are checked);
#   - the workspace has its own testing/wait.h and testing/BUILD.bazel, so an include that
#     is not under the library's own prefix would find the user's file instead;
#   - the tests run in the default configuration and with --config=tsan from the imported
#     lifecycle.bazelrc.
#
# Needs tools/setup.sh to have run. Prints one "ok"/"FAIL" line per check and ends with
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'cd /; bazel --output_user_root="$work/.bazel" shutdown >/dev/null 2>&1; rm -rf "$work"' EXIT
ws="$work/consumer"
mkdir -p "$ws/testing" "$ws/app"

. "$repo/tools/checks.sh"

# The README's marked block that follows "<!-- consumer-check: NAME -->".
readme_block() {
  awk -v name="$1" '
    $0 == "<!-- consumer-check: " name " -->" { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' "$repo/README.md"
}

make_release "$repo" || finish
stanza=$(sed -n '/^http_archive(/,/^)/p' "$work/release.txt")

readme_block WORKSPACE >"$work/WORKSPACE.readme"
readme_block .bazelrc >"$ws/.bazelrc"
cp "$work/dist/lifecycle.bazelrc" "$ws/lifecycle.bazelrc"
# Shared with this repository's own builds, so that a second run is fast. A user's cache is
# their own business; this one changes nothing about what is built.
echo "build --disk_cache=~/.cache/lifecycle/bazel-disk-cache" >>"$ws/.bazelrc"
# The README's http_archive, with the release's sha256 and URL.
python3 - "$work/WORKSPACE.readme" "$ws/WORKSPACE" "$stanza" <<'PY' || failed=$((failed + 1))
import re, sys
readme, out, stanza = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
block = re.search(r"^http_archive\(\n.*?^\)\n", readme, re.S | re.M)
if not block:
    sys.exit("FAIL the README's WORKSPACE block has no http_archive(...) stanza")
prefix = lambda text: re.search(r'strip_prefix = "([^"]*)"', text).group(1)
if prefix(block.group(0)) != prefix(stanza):
    sys.exit(f"FAIL the README pins {prefix(block.group(0))}, the release is {prefix(stanza)}")
open(out, "w").write(readme.replace(block.group(0), stanza + "\n"))
PY
check "README blocks found (.bazelrc importing lifecycle.bazelrc, WORKSPACE)" \
  bash -c 'grep -qx "import %workspace%/lifecycle.bazelrc" "$0/.bazelrc" &&
    grep -q "^lifecycle_deps()" "$0/WORKSPACE" && grep -q "file://" "$0/WORKSPACE"' "$ws"

# A user package named like ours, with a header named like ours.
cat >"$ws/testing/wait.h" <<'CC'
// The user's own testing/wait.h: if the library's headers found this file, the
// consumer test would not compile.
#error "the user's testing/wait.h was included instead of the library's"
CC
cat >"$ws/testing/BUILD.bazel" <<'BZL'
cc_library(
    name = "testing",
    hdrs = ["wait.h"],
    visibility = ["//visibility:public"],
)
BZL

readme_block app/BUILD.bazel >"$ws/app/BUILD.bazel"
readme_block app/refresher_test.cc >"$ws/app/refresher_test.cc"
readme_block app/refresher_time_test.cc >"$ws/app/refresher_time_test.cc"
readme_block app/redis_test.cc >"$ws/app/redis_test.cc"
readme_block app/orders_test.cc >"$ws/app/orders_test.cc"
readme_block app/sessions_test.cc >"$ws/app/sessions_test.cc"
cat >>"$ws/app/BUILD.bazel" <<'BZL'

# Not in the README: the user's own testing/ package, beside the library's.
cc_test(
    name = "shadow_test",
    size = "small",
    srcs = ["refresher_test.cc"],
    deps = [
        "//testing",
        "@lifecycle//testing",
        "@com_google_googletest//:gtest_main",
    ],
)
BZL
check "README's test files found" \
  bash -c 'grep -q "^TEST" "$0/app/refresher_test.cc" && grep -q "^TEST" "$0/app/refresher_time_test.cc" &&
    grep -q "^TEST" "$0/app/redis_test.cc" && grep -q "^TEST" "$0/app/orders_test.cc" &&
    grep -q "^TEST" "$0/app/sessions_test.cc" && grep -q cc_test "$0/app/BUILD.bazel"' "$ws"

cd "$ws" || exit 1
bazel_ws() { bazel --output_user_root="$work/.bazel" "$@"; }
check "consumer tests, default configuration" \
  bazel_ws test //app/...
check "the README's Redis test ran a real Redis (not skipped)" \
  bash -c '! grep -q "SKIPPED" bazel-testlogs/app/redis_test/test.log &&
    grep -q "OK \] CacheTest.TalksToARealRedis" bazel-testlogs/app/redis_test/test.log' 
check "the README's PostgreSQL and Redis module tests ran real servers (not skipped)" \
  bash -c '! grep -q "SKIPPED" bazel-testlogs/app/orders_test/test.log &&
    grep -q "OK \] OrdersTest.StartsFromAnEmptyDatabase" bazel-testlogs/app/orders_test/test.log &&
    ! grep -q "SKIPPED" bazel-testlogs/app/sessions_test/test.log &&
    grep -q "OK \] SessionsTest.StartsEmpty" bazel-testlogs/app/sessions_test/test.log'
check "consumer tests, --config=tsan from the imported lifecycle.bazelrc" \
  bazel_ws test --config=tsan //app/...
check "calling lifecycle_deps() twice is harmless" \
  bash -c 'echo "lifecycle_deps()" >>WORKSPACE && bazel --output_user_root="$0/.bazel" build //app/...' \
  "$work"

finish
