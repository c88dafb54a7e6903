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

# Prints "N passed, N failed" and exits, non-zero on any failure.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
