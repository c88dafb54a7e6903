#!/usr/bin/env bash
# Makes a release of the library: the source archive a WORKSPACE pins with http_archive,
# the lifecycle.bazelrc a user imports, and the lines to paste.
#
#   bash tools/release.sh [--ref REF] [--out DIR] [--url URL]
#
#   --ref  the commit to release (default: the tag v<version> if it exists, else HEAD);
#   --out  where to write (default: dist/);
#   --url  where the archive will be downloaded from, for the printed stanza (default: the
#          file:// URL of the archive written, which is how tools/consumer_check.sh uses it).
#
# The version is MODULE.bazel's; tags are v<version> (v0.2.0), made on the commit whose
# CHANGELOG.md section for that version is complete (the section names that commit). The
# first line printed says what was released: the version, the commit, and whether it is
# the tagged release; an archive of any other commit is warned about on stderr. The archive is `git archive` of the
# ref under the prefix lifecycle-<version>/, gzip'ed without a timestamp, so the same
# commit always gives the same sha256. Prints the archive's path, its sha256, the bzlmod
# integrity and the http_archive stanza (last lines of the output).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ref="" out="$repo/dist" url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

version=$(git -C "$repo" show "${ref:-HEAD}:MODULE.bazel" |
  sed -nE 's/^ *version = "([0-9]+\.[0-9]+\.[0-9]+)",$/\1/p' | head -n 1)
if [ -z "$version" ]; then
  echo "release.sh: no version = \"X.Y.Z\" in MODULE.bazel at ${ref:-HEAD}" >&2
  exit 1
fi
if [ -z "$ref" ]; then
  ref=HEAD
  git -C "$repo" rev-parse -q --verify "refs/tags/v$version" >/dev/null && ref="v$version"
fi
commit=$(git -C "$repo" rev-parse --verify "$ref^{commit}")
# Say what is released: the tagged release, or a commit that is not (a clone may lack
# the tags: `git clone` of a mirror without them, or a shallow fetch).
tagged=$(git -C "$repo" rev-parse -q --verify "refs/tags/v$version^{commit}" || true)
if [ "$tagged" = "$commit" ]; then
  what="tagged v$version"
elif [ -n "$tagged" ]; then
  what="NOT the release: v$version is commit $tagged"
  echo "release.sh: warning: this archive is of commit $commit, not of release" \
    "v$version (commit $tagged); do not publish it as $version" >&2
else
  what="untagged"
  echo "release.sh: warning: no tag v$version in this clone (git fetch --tags, or tag the" \
    "release commit: git tag v$version <commit>); the archive is of commit $commit" >&2
fi
# The versions the build systems and the changelog announce must be the release's.
for file in CMakeLists.txt CHANGELOG.md; do
  # grep reads to the end (no -q): under pipefail, an early exit would fail `git show` with
  # SIGPIPE and the check with it, depending on timing.
  if ! git -C "$repo" show "$commit:$file" | grep -E "VERSION $version |^## $version( |$)" \
    >/dev/null; then
    echo "release.sh: $file at $ref does not announce version $version" >&2
    exit 1
  fi
done

name="lifecycle-$version"
mkdir -p "$out"
archive="$out/$name.tar.gz"
git -C "$repo" archive --format=tar --prefix="$name/" "$commit" | gzip -n -9 >"$archive"
git -C "$repo" show "$commit:lifecycle.bazelrc" >"$out/lifecycle.bazelrc"
sha256=$(sha256sum "$archive" | awk '{print $1}')
integrity="sha256-$(python3 -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$sha256")"
[ -n "$url" ] || url="file://$(cd "$out" && pwd)/$name.tar.gz"

echo "release: lifecycle $version, commit $commit, $what"
echo "archive: $archive (commit $commit)"
echo "bazelrc: $out/lifecycle.bazelrc"
echo "sha256:  $sha256"
echo "integrity (MODULE.bazel's archive_override): $integrity"
echo
cat <<STANZA
http_archive(
    name = "lifecycle",
    sha256 = "$sha256",
    strip_prefix = "$name",
    urls = ["$url"],
)
STANZA
