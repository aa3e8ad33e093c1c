#!/usr/bin/env bash
# overload.sh: what compute-server does with 1x, 2x and 4x the load it can
# run: goodput, latency of the calls it accepts, and why it refuses the rest.
#
# compute-server runs on 127.0.0.1 with --workers=2 (its default
# --target_queue_wait and queue) and /metrics on a free port. The task is
# `spin 5ms`, so its capacity is workers / 5 ms = 400 calls/s; the script
# also measures it closed loop (compute-client bench, 2 x workers calls in
# flight) and prints both. Then, for each load factor, an open loop
#   compute-client bench --task spin --duration 5ms --rate R --time T
#                        --deadline 2s --json
# with R = factor x the computed capacity. Per step it reports:
#   - goodput: OK calls per second (client's count over its elapsed time),
#     and goodput / capacity (computed and measured);
#   - p50 and p99 latency of the OK calls, from the client;
#   - from the server's /metrics, scraped before and after the step (after
#     its queue has emptied): the p50 of compute_task_queue_wait_seconds
#     and the p99 of compute_refusal_seconds (calls refused on arrival)
#     over that step's observations (bucket
#     differences, interpolated like histogram_quantile; promq.py), and the
#     increase of compute_tasks_rejected_total by reason.
#
#   scripts/bench/overload.sh
#   OVERLOAD_TIME=5s scripts/bench/overload.sh
#   OVERLOAD_SERVER_FLAGS='--target_queue_wait=50ms' scripts/bench/overload.sh
#   OVERLOAD_DEADLINE=100ms scripts/bench/overload.sh  (deadlines under the
#     target queue wait: the deadline budget, not the standing-queue rule,
#     holds the queue then)
#
# Environment (defaults):
#   OVERLOAD_TIME (30s; BENCH_QUICK=1: 5s)  open-loop time per step
#   OVERLOAD_FACTORS (1 2 4)     load factors, x the computed capacity
#   OVERLOAD_WORKERS (2)         --workers
#   OVERLOAD_SPIN (5ms)          spin duration of each call
#   OVERLOAD_DEADLINE (2s)       per-call deadline
#   OVERLOAD_CAPACITY_TIME (5s; BENCH_QUICK=1: 2s)  closed-loop capacity
#   OVERLOAD_SERVER_FLAGS        extra compute-server flags (word-split)
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, BENCH_KEEP: see lib.sh
set -euo pipefail
BENCH_NAME=overload
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

STEP_TIME=${OVERLOAD_TIME:-$(bench_default 30s 5s)}
read -r -a FACTORS <<<"${OVERLOAD_FACTORS:-1 2 4}"
WORKERS=${OVERLOAD_WORKERS:-2}
SPIN=${OVERLOAD_SPIN:-5ms}
DEADLINE=${OVERLOAD_DEADLINE:-2s}
CAPACITY_TIME=${OVERLOAD_CAPACITY_TIME:-$(bench_default 5s 2s)}
read -r -a EXTRA_FLAGS <<<"${OVERLOAD_SERVER_FLAGS:-}"

# seconds DURATION: "30s", "250ms", "1m" -> seconds (a decimal number).
seconds() {
  python3 -c 'import re, sys
m = re.fullmatch(r"([0-9]*\.?[0-9]+)(ms|s|m)", sys.argv[1])
if not m: sys.exit("not a duration: %s (like 250ms, 30s, 1m)" % sys.argv[1])
print(float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60}[m.group(2)])' "$1" ||
    bench_die "bad duration '$1'"
}
step_s=$(seconds "$STEP_TIME")
spin_s=$(seconds "$SPIN")
deadline_s=$(seconds "$DEADLINE")
capacity_s=$(seconds "$CAPACITY_TIME")
if ! [[ $WORKERS =~ ^[0-9]+$ ]] || ((WORKERS < 1 || WORKERS > 256)); then
  bench_die "OVERLOAD_WORKERS must be 1..256"
fi
((${#FACTORS[@]} >= 1 && ${#FACTORS[@]} <= 10)) ||
  bench_die "OVERLOAD_FACTORS: 1 to 10 factors"
for f in "${FACTORS[@]}"; do
  [[ $f =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "bad load factor '$f'"
done
python3 -c "import sys; sys.exit(not (0 < $spin_s <= 1 and 0 < $step_s <= 600 \
  and 0 < $capacity_s <= 600 and 0 < $deadline_s <= 60))" ||
  bench_die "need 0 < OVERLOAD_SPIN <= 1s, OVERLOAD_TIME and" \
    "OVERLOAD_CAPACITY_TIME <= 10m, OVERLOAD_DEADLINE <= 1m"
command -v curl >/dev/null || bench_die "curl not found (apt-get install curl)"
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT"

rc=0
bench_start_compute "$bench_tmp/server.log" --workers="$WORKERS" \
  --metrics_port=free "${EXTRA_FLAGS[@]}" || rc=$?
if ((rc == 2)); then
  bench_die "compute-server refused its flags: $(tail -1 "$bench_tmp/server.log")"
fi
((rc == 0)) || bench_die "compute-server did not start"
target=127.0.0.1:$compute_port
queue_capacity=$(bench_log_field "$bench_tmp/server.log" starting queue_capacity)
target_wait=$(bench_log_field "$bench_tmp/server.log" starting target_queue_wait)

# wait_idle: until the server's queue is empty and no worker is busy (10 s
# at most, or the run stops), so the next scrape has every call of the step.
wait_idle() {
  local m end=$((SECONDS + 10))
  while ((SECONDS < end)); do
    m=$(curl -fsS -m 2 "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null) ||
      true
    if grep -Eq '^compute_pool_queue_depth 0$' <<<"$m" &&
      grep -Eq '^compute_pool_workers_busy 0$' <<<"$m"; then
      return 0
    fi
    sleep 0.1
  done
  # A step's numbers would miss the calls still running: not a result.
  bench_die "the server's queue did not empty within 10 s"
}

# bench LOG ARGS...: compute-client bench --json against the server,
# bounded by its own time, the deadline and a margin.
bench() {
  local out=$1 limit
  shift
  limit=$(python3 -c "print(int($step_s + $capacity_s + $deadline_s) + 60)")
  timeout --foreground "$limit" "$COMPUTE_CLIENT" bench --target "$target" --task spin \
    --duration "$SPIN" --deadline "$DEADLINE" --json "$@" >"$out" ||
    bench_die "compute-client bench $* failed (see above)"
}

# Capacity: computed, and measured closed loop.
nominal=$(python3 -c "print($WORKERS / $spin_s)")
bench "$bench_tmp/capacity.json" --concurrency $((2 * WORKERS)) \
  --time "$CAPACITY_TIME"
wait_idle
measured=$(bench_json "$bench_tmp/capacity.json" \
  'j["status"].get("OK", 0) / j["elapsed_seconds"]')

echo "## overload: spin $SPIN on $WORKERS workers, open loop," \
  "$STEP_TIME per step, deadline $DEADLINE"
echo
echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2- | sed 's/^ *//')"
extra=${EXTRA_FLAGS[*]:+, flags: ${EXTRA_FLAGS[*]}}
echo "compute-server: $target, metrics :$metrics_port, queue_capacity" \
  "${queue_capacity:-?}, target_queue_wait ${target_wait:-(not in this build)}$extra"
printf 'capacity: computed %.0f calls/s (%d / %s); measured %.1f calls/s' \
  "$nominal" "$WORKERS" "$SPIN" "$measured"
printf ' (closed loop, %d in flight, %s)\n\n' $((2 * WORKERS)) "$CAPACITY_TIME"

ms() { # seconds (or nan / nolabel) -> "12.3 ms"
  case $1 in
    nan) echo "-" ;;
    nolabel) echo "n/a¹" ;;
    *) python3 -c "print('%.1f ms' % ($1 * 1e3))" ;;
  esac
}

echo "| load | offered/s | sent | OK | goodput/s | goodput / computed cap. |" \
  "goodput / measured cap. | p50 OK (client) | p99 OK (client) |" \
  "queue wait p50 (server) | RESOURCE_EXHAUSTED p99 (server) |" \
  "RESOURCE_EXHAUSTED p99 (client) |" \
  "rejected by reason (server) | status codes (client) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
nolabel=0
for f in "${FACTORS[@]}"; do
  rate=$(python3 -c "print('%.1f' % ($f * $nominal))")
  before=$bench_tmp/before-$f.prom
  after=$bench_tmp/after-$f.prom
  out=$bench_tmp/step-$f.json
  bench_scrape "$metrics_port" "$before"
  # Calls that fail in a step (DEADLINE_EXCEEDED with a short
  # OVERLOAD_DEADLINE) are a result, in its status codes column, not a
  # failed run; the capacity run above allows none.
  bench "$out" --rate "$rate" --time "$STEP_TIME" --max_error_rate 1
  wait_idle
  bench_scrape "$metrics_port" "$after"

  sent=$(bench_json "$out" 'j["sent"]')
  ok=$(bench_json "$out" 'j["status"].get("OK", 0)')
  goodput=$(bench_json "$out" 'j["status"].get("OK", 0) / j["elapsed_seconds"]')
  p50=$(bench_json "$out" 'j["latency_ms"].get("p50", float("nan")) / 1e3')
  p99=$(bench_json "$out" 'j["latency_ms"].get("p99", float("nan")) / 1e3')
  codes=$(bench_json "$out" \
    '", ".join("%s %d" % (k, v) for k, v in sorted(j["status"].items()))')
  wait50=$(bench_promq quantile "$before" "$after" \
    compute_task_queue_wait_seconds 0.5)
  # compute_refusal_seconds: calls refused on arrival (the server's time,
  # from the call's arrival at the service to its answer).
  re99=$(bench_promq quantile "$before" "$after" compute_refusal_seconds 0.99)
  [[ $re99 != nolabel ]] || nolabel=1
  # The client's view of a refusal: the server's time plus the round trip.
  re99_client=$(bench_json "$out" \
    'j.get("refused_latency_ms", {}).get("p99", float("nan")) / 1e3 if j.get("refused_latency_ms", {}).get("count") else float("nan")')
  rejected=$(bench_promq delta "$before" "$after" \
    compute_tasks_rejected_total reason |
    awk '$2 > 0 {printf "%s%s %d", s, $1, $2; s = ", "}')
  printf '| %sx | %s | %d | %d | %.1f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$f" "$rate" "$sent" "$ok" "$goodput" \
    "$(python3 -c "print($goodput / $nominal)")" \
    "$(python3 -c "print($goodput / $measured if $measured > 0 else 0)")" \
    "$(ms "$p50")" "$(ms "$p99")" "$(ms "$wait50")" "$(ms "$re99")" \
    "$(ms "$re99_client")" "${rejected:-0}" "$codes"
done
if ((nolabel)); then
  echo
  echo "¹ this server has no compute_refusal_seconds (an older build), so" \
    "the latency of its refusals cannot be told apart; the client's column" \
    "bounds it from above."
fi
