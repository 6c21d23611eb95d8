#!/usr/bin/env bash
# The test command: install what the tests need and is missing (nothing, on a
# machine that has it all), then run every test.
#
#   bash tests/run.sh                 every test, in three lanes (below)
#   bash tests/run.sh --test alerts   arguments go to one `cargo test --locked`
#
# Most of the suite's time is spent waiting: on Prometheus's 15 s evaluations
# and Alertmanager's group waits, on the real gateway's startup, on the
# watchdog's confirm period. So after one build, the test binaries run in
# three lanes side by side, each a `cargo test` of its own (cargo holds no lock
# once everything is built):
#   - "quiet": the real gateway watched for 15 minutes, alone in its lane;
#   - "alerting": the other tests that wait on Prometheus, Alertmanager or
#     the watchdog;
#   - "main": everything else, then the doc tests.
# A lane runs every one of its test files even after a failure
# (--no-fail-fast). Each lane's output goes to target/test-lanes/<lane>.log
# and is printed whole when the lane ends; the command fails if any lane
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/support/install-test-deps.sh
if [ "$#" -gt 0 ]; then
  exec cargo test --locked "$@" </dev/null
fi

QUIET=(real_gateway_e2e)
ALERTING=(e2e_alerts watchdog real_gateway_restart real_gateway_dependencies)

cargo test --locked --no-run </dev/null

# `--test NAME` for each of the given tests/NAME.rs that exists.
targets() {
  local name
  for name in "$@"; do
    if [ -f "tests/$name.rs" ]; then
      printf -- '--test\n%s\n' "$name"
    fi
  done
}
in_lane() {
  local name=$1 other
  for other in "${QUIET[@]}" "${ALERTING[@]}"; do
    [ "$name" = "$other" ] && return 0
  done
  return 1
}
main_tests=()
for file in tests/*.rs; do
  name=$(basename "$file" .rs)
  in_lane "$name" || main_tests+=("$name")
done

mkdir -p target/test-lanes
declare -A pids started
lane() {
  local name=$1
  shift
  started[$name]=$SECONDS
  (
    if [ "$name" = main ]; then
      cargo test --locked --no-fail-fast --lib --bins "$@" && cargo test --locked --doc
    else
      cargo test --locked --no-fail-fast "$@"
    fi
  ) </dev/null >"target/test-lanes/$name.log" 2>&1 &
  pids[$name]=$!
  echo "[tests/run.sh] lane $name started: ${*//--test /}"
}
mapfile -t args < <(targets "${QUIET[@]}")
[ "${#args[@]}" -eq 0 ] || lane quiet "${args[@]}"
mapfile -t args < <(targets "${ALERTING[@]}")
[ "${#args[@]}" -eq 0 ] || lane alerting "${args[@]}"
mapfile -t args < <(targets "${main_tests[@]}")
lane main "${args[@]}"

failed=()
while [ "${#pids[@]}" -gt 0 ]; do
  set +e
  wait -n -p done_pid "${pids[@]}"
  status=$?
  set -e
  for name in "${!pids[@]}"; do
    [ "${pids[$name]}" = "$done_pid" ] || continue
    unset "pids[$name]"
    echo
    echo "=== [tests/run.sh] lane $name: exit $status after $((SECONDS - started[$name])) s"
    cat "target/test-lanes/$name.log"
    [ "$status" = 0 ] || failed+=("$name")
  done
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[tests/run.sh] failed lanes: ${failed[*]} (logs in target/test-lanes/)" >&2
  exit 1
fi
echo "[tests/run.sh] every lane passed"
