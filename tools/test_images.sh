#!/usr/bin/env bash
# Builds the container images this project's tests use, offline, from Debian's archive as
# the system's own apt sources name it — no registry:
#
#   localhost/lifecycle-test/servers:1   Debian bookworm with redis-server, PostgreSQL 15
#                                        (a cluster made by initdb in /var/lib/lifecycle/pg,
#                                        trusting every connection: for tests only) and busybox
#
# `mmdebstrap` makes the root file system (about 30 s), `podman import` makes it an image
# (about 8 s). The image carries the recipe's hash as the label lifecycle.recipe, and is
# rebuilt only when the recipe below changes; otherwise this checks and returns in well
# under a second. Called by `tools/setup.sh --containers`.
#
# Usage: tools/test_images.sh [--engine=podman] [--force]
set -euo pipefail

engine=${LIFECYCLE_CONTAINER_ENGINE:-podman}
force=0
for arg in "$@"; do
  case "$arg" in
    --engine=*) engine=${arg#--engine=} ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--engine=podman] [--force]" >&2; exit 2 ;;
  esac
done

readonly IMAGE=localhost/lifecycle-test/servers:1
readonly SUITE=bookworm
readonly PACKAGES=redis-server,postgresql-15,busybox
# Made inside the image: a PostgreSQL cluster that the tests start at once (no initdb per
# container), reachable through a published port.
readonly CUSTOMIZE='chroot "$1" sh -c "
  mkdir -p /var/lib/lifecycle/pg && chown postgres:postgres /var/lib/lifecycle/pg &&
  su postgres -s /bin/sh -c \"/usr/lib/postgresql/15/bin/initdb -D /var/lib/lifecycle/pg -U postgres --auth=trust >/dev/null\" &&
  echo \"host all all 0.0.0.0/0 trust\" >> /var/lib/lifecycle/pg/pg_hba.conf"'
recipe=$(printf '%s\n' "$SUITE" "$PACKAGES" "$CUSTOMIZE" | sha256sum | cut -c1-16)

say() { printf 'test_images: %s\n' "$*"; }
die() {
  printf 'test_images: error: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'test_images: fix: %s\n' "$2" >&2
  exit 1
}

command -v "$engine" >/dev/null || die "the container engine '$engine' is not installed" \
  "bash tools/setup.sh --containers (Debian packages podman, runc, mmdebstrap)"
# The same defaults as ContainerEngine::FromEnvironment() (lifecycle/container_service.h).
engine_args=()
if [ -n "${LIFECYCLE_CONTAINER_ENGINE_ARGS+x}" ]; then
  read -r -a engine_args <<<"$LIFECYCLE_CONTAINER_ENGINE_ARGS"
elif [ "${engine##*/}" = podman ]; then
  engine_args=(--cgroup-manager=cgroupfs)
  command -v runc >/dev/null && engine_args+=(--runtime=runc)
fi

have=$("$engine" "${engine_args[@]}" image inspect --format '{{index .Labels "lifecycle.recipe"}}' \
  "$IMAGE" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$recipe" ]; then
  say "$IMAGE is up to date (recipe $recipe)"
  exit 0
fi

command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed" \
  "bash tools/setup.sh --containers"
sources=()
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
  [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || die "no apt sources found in /etc/apt" \
  "configure Debian's archive for apt first"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "building $IMAGE (recipe $recipe) from Debian's archive"
# The system's own sources (deb822 or one-line), read from stdin, and its apt options.
cat "${sources[@]}" | grep -v '^deb-src' |
  mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="$CUSTOMIZE" \
    "$SUITE" "$work/root.tar" - ||
  die "mmdebstrap failed" "see its messages above; run this again once fixed"
"$engine" "${engine_args[@]}" import --quiet \
  --change "LABEL lifecycle.recipe=$recipe" \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["redis-server"]' \
  "$work/root.tar" "$IMAGE" >/dev/null || die "$engine import failed"
say "built $IMAGE"
