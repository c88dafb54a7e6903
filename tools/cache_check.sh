#!/usr/bin/env bash
# Checks the shared Bazel cache (tools/cache, README "Running the matrix on many
# machines") the way a team uses it:
#   1. two clean clones, each with an output base of its own and no disk cache,
#      build in the opt configuration: the second's build is served from the
#      cache (its remote cache hits are printed). Given URL (.ci/run passes the
#      cache its matrix ran against), the clones use that one, and the first
#      shows how much of it the matrix's opt build left there (Bazel uploads
#      what it builds, not what its disk cache gave it).
#   2. the cache going away in the middle of a matrix run, a cache that answers
#      every request with an error (500, and 507 for "full"), and one that is
#      down: Bazel builds locally, the matrix says so, and no run fails for it.
#   3. the tool itself: bad flags, a taken port, a SIGKILL that leaves no nginx
#      behind, and --max_size_mb.
# Prints one "ok"/"FAIL" line per check and "N passed, N failed".
#
#   bash tools/cache_check.sh [URL]
set -u
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
work=$(mktemp -d /tmp/cache-check.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  remove_work
}
trap cleanup EXIT
. "$repo/tools/checks.sh"

check "bazel build //tools/cache" bazel build //tools/cache || finish
cp bazel-bin/tools/cache/cache "$work/cache"  # bazel-bin changes under a running one

start_cache() {  # start_cache NAME: a cache on a fresh folder; sets cache_pid, cache_url
  "$work/cache" --dir="$work/$1" --port_file="$work/$1.port" >"$work/$1.out" 2>&1 &
  cache_pid=$!
  pids+=("$cache_pid")
  for _ in $(seq 200); do
    [ -s "$work/$1.port" ] && break
    kill -0 "$cache_pid" 2>/dev/null || break
    sleep 0.05
  done
  cache_url="http://127.0.0.1:$(cat "$work/$1.port" 2>/dev/null)"
}

# 1. Two clean clones.
url=${1:-}
if [ -z "$url" ]; then
  start_cache shared
  url=$cache_url
fi
hits_of() {  # hits_of LOG: "HITS ACTIONS" of a build's process summary
  local line
  line=$(grep -E '^INFO: [0-9]+ processes' "$1" | tail -n 1)
  local total internal hits
  total=$(sed -E 's/^INFO: ([0-9]+) processes.*/\1/' <<<"$line")
  internal=$(grep -oE '[0-9]+ internal' <<<"$line" | awk '{print $1}')
  hits=$(grep -oE '[0-9]+ remote cache hit' <<<"$line" | awk '{print $1}')
  echo "${hits:-0} $((${total:-0} - ${internal:-0}))"
}
for clone in first second; do
  git clone -q . "$work/$clone"
  (cd "$work/$clone" && bazel --output_base="$work/base-$clone" build --config=opt \
    --disk_cache= --remote_cache="$url" //lifecycle:signal_test) >"$work/$clone.log" 2>&1
  expect "a clean clone ($clone) builds //lifecycle:signal_test (opt) with the remote cache" $?
  read -r hits actions < <(hits_of "$work/$clone.log")
  echo "     $clone clean clone: $hits of $actions actions were remote cache hits"
  bazel --output_base="$work/base-$clone" shutdown >/dev/null 2>&1
done
[ "$actions" -gt 0 ] && [ "$hits" -eq "$actions" ]
expect "the second clean clone's build is served from the cache ($hits of $actions)" $?

# 2. A cache that goes away in the middle of a run.
F=//tools/matrix_fixtures
start_cache going
out=$(python3 tools/matrix.py --configs=fastbuild,opt --runs=2 --remote_cache="$cache_url" \
  $F:ends_the_cache $F:passing -- --test_env=MATRIX_FIXTURE_CACHE_PID="$cache_pid" 2>&1)
rc=$?
! kill -0 "$cache_pid" 2>/dev/null && grep -q "remote cache ready" "$work/going.out"
expect "the fixture stopped the cache during the run" $?
[ $rc -eq 0 ] && [ "$(tail -n 1 <<<"$out")" = "8 passed, 0 failed" ]
expect "the cache going away fails no run (8 passed)" $?
grep -qE "^remote cache failed [0-9]+ time\(s\) in (fastbuild|opt), so Bazel built and ran locally instead \(not a test failure\)" <<<"$out"
expect "the matrix says the remote cache failed and Bazel built locally" $?

# A cache that is full and answers errors, and one that is down.
python3 tools/matrix_fixtures/error_cache.py >"$work/error.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/error.port" ] && break; sleep 0.05; done
for kind in "answers errors (500, 507)|http://127.0.0.1:$(cat "$work/error.port")" \
  "is down|$cache_url"; do
  out=$(python3 tools/matrix.py --configs=fastbuild --runs=2 --remote_cache="${kind#*|}" \
    $F:passing 2>&1)
  rc=$?
  [ $rc -eq 0 ] && [ "$(tail -n 1 <<<"$out")" = "2 passed, 0 failed" ] &&
    grep -q "^remote cache failed" <<<"$out"
  expect "a cache that ${kind%%|*}: the runs pass and the matrix says so" $?
done

# 3. The tool: bad flags, a taken port, and SIGKILL.
"$work/cache" >"$work/flags.out" 2>&1
[ $? -eq 2 ] && grep -q -- "--dir is required" "$work/flags.out"
expect "the tool refuses to start without --dir (exit 2)" $?
"$work/cache" --dir="$work/x" --port=70000 >"$work/flags.out" 2>&1
[ $? -eq 2 ] && grep -q -- "--port is 0 to 65535" "$work/flags.out"
expect "the tool refuses --port=70000 (exit 2)" $?
start_cache held
held_port=${cache_url##*:}
"$work/cache" --dir="$work/taken" --port="$held_port" >"$work/taken.out" 2>&1
[ $? -eq 1 ] && grep -q "nginx did not start" "$work/taken.out" &&
  grep -q "Address already in use" "$work/taken.out"
expect "a taken port fails the start with nginx's own message (exit 1)" $?
state=$(pgrep -a -f "nginx: master process" | grep -oE '/tmp/lifecycle-cache-[A-Za-z0-9]+' |
  while read -r s; do grep -q "$held_port" "$s/nginx.conf" 2>/dev/null && echo "$s"; done | head -n 1)
{  # the shell's "Killed" line for its own background job, not wanted here
  kill -KILL "$cache_pid"
  wait "$cache_pid"
} 2>/dev/null
gone=1
for _ in $(seq 200); do
  if ! pgrep -f "nginx.*$state" >/dev/null 2>&1 && [ ! -e "$state" ]; then
    gone=0
    break
  fi
  sleep 0.05
done
[ -n "$state" ] && [ $gone -eq 0 ]
expect "a SIGKILLed cache leaves no nginx and no state folder" $?

# --max_size_mb: the entries read longest ago go first, down to nine tenths.
mkdir -p "$work/full/cas" "$work/full/ac"
for name in cas/oldest ac/older cas/newest; do
  head -c 409600 /dev/zero >"$work/full/$name"  # 400 KiB each: 1.2 MiB in all
done
touch -d '3 days ago' "$work/full/cas/oldest"
touch -d '2 days ago' "$work/full/ac/older"
"$work/cache" --dir="$work/full" --max_size_mb=1 --port_file="$work/full.port" \
  >"$work/full.out" 2>&1 &
full_pid=$!
pids+=("$full_pid")
for _ in $(seq 200); do [ -s "$work/full.port" ] && break; sleep 0.05; done
[ ! -e "$work/full/cas/oldest" ] && [ -e "$work/full/ac/older" ] &&
  [ -e "$work/full/cas/newest" ] &&
  grep -q "removed 1 entries (400 KiB) read longest ago" "$work/full.out"
expect "--max_size_mb=1 removes the entry read longest ago, and only it" $?
kill "$full_pid"
wait "$full_pid" 2>/dev/null

finish
