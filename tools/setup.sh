#!/usr/bin/env bash
# Sets up everything this workspace needs to build and test offline, on Debian bookworm:
#
#   - Bazel 4.2.3 (Debian's bazel-bootstrap) with its platforms and skylib repositories;
#   - for the CMake build: cmake and Debian's prebuilt abseil and GoogleTest;
#   - nlohmann-json (header-only) and Google Benchmark (prebuilt, benchmarks only);
#   - the abseil source, by package name through apt's own source client, checked by sha256;
#   - the GoogleTest source (Debian's googletest package);
#   - the servers of testing/servers/ (PostgreSQL 15, Redis, memcached, MariaDB, etcd,
#     nginx) and the client libraries the modules use (libpq, hiredis, libmariadb), for
#     the modules and this repository's own tests of ProcessService with real servers. The
#     tests run servers of their own, on sockets in temporary folders and ports on
#     127.0.0.1: they never use an instance the system may have started.
#
# With --containers, also what lifecycle/container_service.h's tests need: podman, runc and
# mmdebstrap, and the test images tools/test_images.sh builds from Debian's archive (about
# 45 s the first time; rebuilt only when their recipe changes).
#
# The abseil source lands in a stable folder under the user's home ($LIFECYCLE_DEPS, default
# ~/.cache/lifecycle/deps), where `lifecycle_offline_deps()` (tools/bazel/deps.bzl) finds it,
# for this repository and for any workspace that uses the library. Nothing is downloaded
# from anywhere but Debian's archive as the system's own apt configuration names it.
#
# Idempotent: when everything is present it only checks, in well under 5 seconds. A
# half-finished earlier run (an interrupted download, a missing link) is repaired by running
# it again.
set -euo pipefail

readonly ABSL_VERSION=20220623.1
readonly ABSL_TARBALL="abseil_${ABSL_VERSION}.orig.tar.gz"
readonly ABSL_SHA256=abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe
readonly BAZEL_VERSION=4.2.3
# Bazel's build (abseil and GoogleTest from source), then the CMake build's prebuilt ones.
readonly PACKAGES=(bazel-bootstrap bazel-platforms bazel-skylib nlohmann-json3-dev
  googletest libbenchmark-dev cmake libabsl-dev libgtest-dev libgmock-dev
  # The servers testing/servers/ runs, and their client libraries (not needed to use the
  # core library).
  redis-server memcached postgresql-15 postgresql-client-15 mariadb-server etcd-server
  nginx-core libpq-dev libhiredis-dev libmariadb-dev)

containers=0
for arg in "$@"; do
  case "$arg" in
    --containers) containers=1 ;;
    *) echo "usage: $0 [--containers]" >&2; exit 2 ;;
  esac
done
packages=("${PACKAGES[@]}")
# The container engine, its runtime (runc: crun refuses some hosts' cgroup layout) and
# what builds the test images.
[ "$containers" = 1 ] && packages+=(podman runc mmdebstrap)

deps=${LIFECYCLE_DEPS:-$HOME/.cache/lifecycle/deps}

say() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: error: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'setup: fix: %s\n' "$2" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "installing Debian packages needs root, and sudo is not available" \
      "run this script as root once: sudo bash tools/setup.sh (or su -c 'bash tools/setup.sh')"
  fi
}

# --- Debian packages ------------------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian's archive (about a minute the first time)"
  as_root apt-get update -qq ||
    die "apt-get update failed: Debian's archive is not reachable" \
      "check the apt sources in /etc/apt and the network, then run tools/setup.sh again"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed" \
      "see apt's message above; run tools/setup.sh again once it is fixed"
fi
command -v bazel >/dev/null || die "bazel is not on PATH after installing bazel-bootstrap" \
  "check 'dpkg -L bazel-bootstrap | grep bin/'"
# Debian's Bazel reports "no_version"; the package version is the reliable one.
bazel_version=$(dpkg-query -W -f='${Version}' bazel-bootstrap)
case "$bazel_version" in
  "$BAZEL_VERSION"*) ;;
  *) die "found bazel-bootstrap $bazel_version, this workspace needs Bazel $BAZEL_VERSION" \
    "install Debian bookworm's bazel-bootstrap ($BAZEL_VERSION)" ;;
esac
[ "$(command -v bazel)" = /usr/bin/bazel ] || die "'bazel' on PATH is $(command -v bazel), not Debian's" \
  "put /usr/bin first on PATH so that Debian's Bazel $BAZEL_VERSION is used"

# --- abseil source ----------------------------------------------------------------------
absl_dir="$deps/abseil-$ABSL_VERSION"
if [ ! -f "$absl_dir/.complete" ]; then
  mkdir -p "$deps"
  tarball="$deps/$ABSL_TARBALL"
  if [ -f "$tarball" ] && ! echo "$ABSL_SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
    say "removing a damaged or half-downloaded $ABSL_TARBALL"
    rm -f "$tarball"
  fi
  if [ ! -f "$tarball" ]; then
    say "fetching the abseil source package from Debian's archive"
    # A private apt configuration with deb-src entries derived from the system's own sources,
    # so the system's apt set-up is left untouched.
    apt_dir=$(mktemp -d)
    trap 'rm -rf "$apt_dir"' EXIT
    mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial"
    found_sources=0
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
      found_sources=1
    done
    if [ -f /etc/apt/sources.list ]; then
      sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$apt_dir/sources.list.d/system.list"
      [ -s "$apt_dir/sources.list.d/system.list" ] && found_sources=1
    fi
    [ "$found_sources" = 1 ] || die "no apt sources found in /etc/apt" \
      "configure Debian's archive for apt, then run tools/setup.sh again"
    apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
    apt-get "${apt_opts[@]}" update -qq >/dev/null ||
      die "apt-get update for source packages failed: Debian's archive is not reachable" \
        "check the network and the apt sources, then run tools/setup.sh again"
    (cd "$apt_dir" && apt-get "${apt_opts[@]}" source --download-only -qq "abseil" >/dev/null) ||
      die "apt-get source abseil failed" "run tools/setup.sh again; it repairs a partial download"
    [ -f "$apt_dir/$ABSL_TARBALL" ] || die "Debian's abseil source is not $ABSL_VERSION" \
      "this workspace is pinned to abseil $ABSL_VERSION (Debian bookworm)"
    mv "$apt_dir/$ABSL_TARBALL" "$tarball"
  fi
  echo "$ABSL_SHA256  $tarball" | sha256sum -c --quiet - ||
    die "$ABSL_TARBALL does not have the expected sha256" "delete $tarball and run tools/setup.sh again"
  rm -rf "$absl_dir"
  tar -xzf "$tarball" -C "$deps"
  [ -f "$absl_dir/WORKSPACE" ] || die "the abseil tarball did not unpack to $absl_dir" \
    "delete $deps and run tools/setup.sh again"
  touch "$absl_dir/.complete"
fi

# --- what tools/bazel/deps.bzl's lifecycle_offline_deps() reads -----------------------
[ -f /usr/src/googletest/googletest/src/gtest.cc ] ||
  die "/usr/src/googletest is incomplete" "apt-get install --reinstall googletest"
[ -f /usr/share/bazel/tools/platforms/os/BUILD ] && [ -f /usr/share/bazel/tools/skylib/lib/selects.bzl ] ||
  die "Debian's bazel-platforms or bazel-skylib is incomplete" \
    "apt-get install --reinstall bazel-platforms bazel-skylib"

# --- the containers' test images ---------------------------------------------------------
if [ "$containers" = 1 ]; then
  bash "$(dirname "$0")/test_images.sh" ||
    die "the test images could not be built" "see tools/test_images.sh's message above"
fi

say "ready: bazel $bazel_version, abseil $ABSL_VERSION, googletest from Debian$(
  [ "$containers" = 1 ] && echo ", podman and the test images")"
