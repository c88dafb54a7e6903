#!/usr/bin/env bash
# Checks every Bazel file of the repository with buildifier: formatted as buildifier
# formats it, and no lint warning (rules loaded, not native). buildifier comes from the
# npm package @bazel/buildifier, installed once into ~/.cache/lifecycle/buildifier
# ($LIFECYCLE_BUILDIFIER_DIR); npm itself, if missing, from Debian's archive.
#
#   bash tools/buildifier_check.sh          # check
#   bash tools/buildifier_check.sh --fix    # reformat in place, then check
set -uo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source tools/checks.sh

version=8.2.1
dir=${LIFECYCLE_BUILDIFIER_DIR:-$HOME/.cache/lifecycle/buildifier}
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=unknown ;;
esac
buildifier="$dir/node_modules/@bazel/buildifier/buildifier-linux_$arch"

install_buildifier() {
  [ -x "$buildifier" ] && "$buildifier" --version | grep -q "$version" && return 0
  if ! command -v npm >/dev/null; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -q npm >/dev/null || return 1
  fi
  mkdir -p "$dir" &&
    npm install --prefix "$dir" --no-audit --no-fund "@bazel/buildifier@$version" &&
    [ -x "$buildifier" ]
}

check "buildifier $version installed" install_buildifier || finish
mapfile -t files < <(git ls-files | grep -E '(^|/)(BUILD|WORKSPACE)$|\.(bazel|bzl|BUILD)$')
if [ "${1:-}" = "--fix" ]; then
  "$buildifier" --mode=fix --lint=fix "${files[@]}"
fi
check "buildifier: ${#files[@]} files formatted" "$buildifier" --mode=check "${files[@]}"
check "buildifier: no lint warning" "$buildifier" --mode=check --lint=warn "${files[@]}"
finish
