#!/usr/bin/env bash
# Runs the demo as a user would and checks its exit status and reports.
set -u
demo=$(realpath "${1:-examples/demo}")  # Bazel runs it from the runfiles, CMake passes its path
failures=0
check() {  # check NAME EXPECTED_STATUS PATTERN -- ARGS...
  local name=$1 want=$2 pattern=$3
  shift 4
  local out status
  out=$("$demo" "$@" 2>&1)
  status=$?
  if [ "$status" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: status $status (wanted $want), output:"
    echo "$out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

check clean-start 0 '^== stopped in' --
# The producer starts after the elector, maintenance after the notifier,
# after the client's own simulated 30ms: the two longest chains, as long as
# each other.
check critical-path 0 '^client [0-9.]+ms: client @0 \+[0-9.]+ms → client/(elector|notifier) @[0-9.]+ms \+[0-9.]+ms → client/(producer|maintenance) @' --
trace_dir=$(mktemp -d)
check trace 0 "trace: $trace_dir/start.json" -- --trace="$trace_dir/start.json"
if python3 -c 'import json,sys
events = json.load(open(sys.argv[1]))["traceEvents"]
names = {e["name"] for e in events if e["ph"] == "X"}
assert "client/producer/default" in names and "client" in names, names' "$trace_dir/start.json" &&
  grep -q '<svg' "$trace_dir/start.json.svg"; then
  echo "ok   trace-files"
else
  echo "FAIL trace-files: $trace_dir/start.json or its .svg"
  failures=$((failures + 1))
fi
# Under `bazel run`, a relative path is the user's, from the directory they ran it in.
if (cd / && BUILD_WORKING_DIRECTORY="$trace_dir" "$demo" --trace=rel.json >"$trace_dir/out" 2>&1) &&
  grep -q "trace: $trace_dir/rel.json" "$trace_dir/out" && [ -s "$trace_dir/rel.json" ] &&
  [ -s "$trace_dir/rel.json.svg" ]; then
  echo "ok   trace-relative-to-working-directory"
else
  echo "FAIL trace-relative-to-working-directory: no $trace_dir/rel.json(.svg):"
  cat "$trace_dir/out"
  failures=$((failures + 1))
fi
check trace-unwritable 2 "demo: could not write /nonexistent/t.json" -- --trace=/nonexistent/t.json
rm -rf "$trace_dir"
check clean-table 0 'client/producer/default +started' --
check queues 0 'client/producer/queue3 +started' -- --queues=4
check json 0 '"path":"client/notifier"' -- --json
# Under --json, stdout is JSON Lines alone: every line parses.
if out=$("$demo" --json 2>/dev/null) &&
  python3 -c 'import json,sys
lines = sys.stdin.read().splitlines()
phases = [json.loads(l)["phase"] for l in lines]
assert phases == ["starting", "started", "stopped"], phases' <<<"$out"; then
  echo "ok   json-lines"
else
  echo "FAIL json-lines: stdout of --json is not JSON Lines:"
  echo "$out"
  failures=$((failures + 1))
fi
check fail 1 "failed service: client/notifier" -- --fail=client/notifier
check fail-table 1 'client/notifier +failed' -- --fail=client/notifier
# The injected hang never ends, so the timeout only has to outlast the rest of
# the start-up (about 100ms), also under ThreadSanitizer on a loaded machine:
# 300ms did not (the producer was still starting in 2 of 3 tsan runs of CI).
check hang 1 "client/maintenance/cleaner \(starting for" -- --hang=client/maintenance/cleaner --timeout=3s
check die-restart 0 'client/notifier +started .* 1 +0' -- --die=client/notifier
check die-degrade 0 'client +degraded' -- --die=client/maintenance/rescuer
check die-degrade-table 0 'client/maintenance +failed' -- --die=client/maintenance/rescuer
check die-fail 1 'failed service: client/producer/default' -- --die=client/producer/default
check die-group 2 "--die wants a leaf service" -- --die=client/producer
check unknown-flag 1 "Unknown command line flag 'bogus'" -- --bogus
check unexpected-argument 2 "unexpected argument 'extra'" -- extra
check fail-list 2 "unknown service path 'client/nope'" -- --fail=client/notifier,client/nope
check unknown-path 2 "unknown service path 'client/nope'. Valid paths: client, client/notifier" -- --fail=client/nope
check bad-queues 2 "--queues wants a number from 1 to 20" -- --queues=0
check bad-timeout 2 "--timeout wants a positive duration" -- --timeout=-1s
check help 1 'Flags from .*demo.cc' -- --help
check help-exit-statuses 1 '2  a usage error of the demo' -- --help
[ "$failures" -eq 0 ]
