# Shared by the tools/*_check.sh scripts (sourced, not run): one "ok NAME" or "FAIL NAME" line
# per check, with the end of the output of a failed one, and the closing count line that
# .ci/run adds up. Needs $work, a scratch folder.
passed=0
failed=0

# check NAME COMMAND...: runs the command, prints ok/FAIL, counts; returns its success.
check() {
  local name=$1 log="$work/check.log"
  shift
  if "$@" >"$log" 2>&1; then
    echo "ok $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    grep -vE 'linux-sandbox' "$log" | tail -n 40 | sed 's/^/  | /'
    failed=$((failed + 1))
    return 1
  fi
}

# remove_work: shuts down the Bazel servers of the output bases under $work (base-*), then
# removes $work (Bazel leaves its files read-only).
remove_work() {
  local base
  for base in "$work"/base-*; do
    [ -d "$base" ] && bazel --output_base="$base" shutdown >/dev/null 2>&1
  done
  chmod -R u+w "$work" 2>/dev/null
  rm -rf "$work"
}

# expect NAME STATUS: prints ok/FAIL for a status already known (0 is ok), counts; returns it.
expect() {
  if [ "$2" = 0 ]; then
    echo "ok $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1"
    failed=$((failed + 1))
  fi
  return "$2"
}

# make_release REPO: tools/release.sh of the checkout as it stands (git stash create records
# its tracked files, changes included, without touching anything; HEAD when nothing
# changed) into $work/dist, as a check; sets $release_archive and $release_sha256, and
# leaves the printed lines (the http_archive stanza among them) in $work/release.txt.
make_release() {
  local ref
  ref=$(git -C "$1" stash create 2>/dev/null)
  [ -n "$ref" ] || ref=HEAD
  check "tools/release.sh makes the archive" \
    bash -c 'bash "$0/tools/release.sh" --ref "$1" --out "$2/dist" >"$2/release.txt"' \
    "$1" "$ref" "$work" || return 1
  check "tools/release.sh says what it released (version, commit, tagged or not)" \
    grep -qE "^release: lifecycle [0-9]+\.[0-9]+\.[0-9]+, commit [0-9a-f]{40}, " \
    "$work/release.txt" || return 1
  release_archive=$(sed -n 's/^archive: \([^ ]*\) .*/\1/p' "$work/release.txt")
  release_sha256=$(sed -n 's/^sha256: *//p' "$work/release.txt")
}

# Prints "N passed, N failed" and exits, non-zero on any failure.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
