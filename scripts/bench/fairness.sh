#!/usr/bin/env bash
# fairness.sh: one greedy client must not starve the others.
#
# compute-server runs on 127.0.0.1 with --workers=2 and
# --trust_tenant_header, so each compute-client process names its tenant
# with --tenant. The task is `spin` (capacity: 2 workers / 5 ms = 400
# calls/s). Every client is an open loop with a 2 s deadline per call; the
# clients of a scenario run at the same time. Scenarios:
#   1. idle:      the modest tenant alone, 40/s (10% of capacity): its p99
#                 on an idle server, the baseline of 2.
#   2. greedy:    greedy at 4000/s (10x capacity) + modest at 40/s: the
#                 modest tenant's goodput / offered and p99 (target: >= 0.95
#                 and <= 3x idle + one task time), and the total goodput /
#                 capacity.
#   3. cost:      two greedy tenants far over capacity, one sending 10x the
#                 cost per call (spin 50ms at 160/s vs spin 5ms at 1600/s):
#                 each one's share of the CPU, as OK calls x spin time
#                 (target: 0.5 +- 0.05 each).
#   4. critical:  --priority critical at 200/s (50% of capacity) under a
#                 sheddable flood at 1600/s (4x): critical goodput / offered
#                 (target >= 0.99) and p99 against critical alone.
#   5. mix:       the same critical load under a flood of default-priority
#                 work, from one `bench --mix` process: a full queue of
#                 default work gives way to critical calls too.
# Capacity is 400 calls/s on paper; the table also gives the total goodput
# against what a closed loop (8 in flight, nothing refused) gets in the same
# run, since the clients share the machine's cores with the server.
#
#   scripts/bench/fairness.sh
#   FAIRNESS_TIME=10s scripts/bench/fairness.sh
#
# Environment (defaults):
#   FAIRNESS_TIME (30s; BENCH_QUICK=1: 5s)  open-loop time per scenario
#   FAIRNESS_SERVER_FLAGS                   extra compute-server flags
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, BENCH_KEEP: see lib.sh
set -euo pipefail
BENCH_NAME=fairness
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

TIME=${FAIRNESS_TIME:-$(bench_default 30s 5s)}
read -r -a EXTRA_FLAGS <<<"${FAIRNESS_SERVER_FLAGS:-}"
[[ $TIME =~ ^[0-9]+(ms|s|m)$ ]] || bench_die "FAIRNESS_TIME: like 30s"
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT"

rc=0
bench_start_compute "$bench_tmp/server.log" --workers=2 --trust_tenant_header \
  --metrics_port=0 "${EXTRA_FLAGS[@]}" || rc=$?
((rc != 2)) ||
  bench_die "compute-server refused its flags: $(tail -1 "$bench_tmp/server.log")"
((rc == 0)) || bench_die "compute-server did not start"
target=127.0.0.1:$compute_port

# client OUT TENANT RATE SPIN [FLAGS...]: one open-loop client, in the
# background (its pid appended to `pids`), bounded by `timeout`; calls that
# time out are part of what is measured (--max_error_rate 1), so they do
# not fail the client.
pids=()
client() {
  local out=$1 tenant=$2 rate=$3 spin=$4
  shift 4
  timeout --foreground 300 "$COMPUTE_CLIENT" bench --target "$target" --task spin \
    --duration "$spin" --rate "$rate" --time "$TIME" --deadline 2s \
    --tenant "$tenant" --max_error_rate 1 --json "$@" >"$out" &
  pids+=($!)
  bench_pids+=($!) # stopped with the servers when the script ends early
}
wait_clients() {
  local pid
  for pid in "${pids[@]}"; do
    wait "$pid" || bench_die "a compute-client bench failed (see above)"
  done
  pids=()
}
j() { bench_json "$@"; }
ok() { j "$1" 'j["status"].get("OK", 0)'; }
goodput() { j "$1" 'j["status"].get("OK", 0) / j["elapsed_seconds"]'; }
offered() { j "$1" 'j["sent"] / j["elapsed_seconds"]'; }
p99() { j "$1" 'j["latency_ms"]["p99"] if j["latency_ms"]["count"] else float("nan")'; }
calc() { python3 -c "print('%.3g' % ($1))"; }

echo "## fairness: spin on 2 workers (capacity 400 calls/s of spin 5ms)," \
  "open loop, $TIME per scenario, deadline 2s"
echo
echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2- | sed 's/^ *//')"
echo

timeout --foreground 300 "$COMPUTE_CLIENT" bench --target "$target" --task spin \
  --duration 5ms --concurrency 8 --time 10s --deadline 2s --json \
  >"$bench_tmp/capacity.json"
capacity=$(goodput "$bench_tmp/capacity.json")
client "$bench_tmp/idle.json" modest 40 5ms
wait_clients
client "$bench_tmp/greedy.json" greedy 4000 5ms
client "$bench_tmp/modest.json" modest 40 5ms
wait_clients
idle_p99=$(p99 "$bench_tmp/idle.json")
modest_share=$(calc "$(ok "$bench_tmp/modest.json") / $(j "$bench_tmp/modest.json" 'j["sent"]')")
total=$(calc "($(goodput "$bench_tmp/greedy.json") + $(goodput "$bench_tmp/modest.json")) / 400")
echo "| scenario | what | measured | target |"
echo "|---|---|---|---|"
echo "| greedy 4000/s + modest 40/s | modest: OK / sent | $modest_share | >= 0.95 |"
echo "| | modest p99, idle -> under greedy | $(calc "$idle_p99") ms -> $(calc "$(p99 "$bench_tmp/modest.json")") ms | <= 3 x idle + 5 ms = $(calc "3 * $idle_p99 + 5") ms |"
echo "| | total goodput / capacity | $total | >= 0.95 |"
echo "| | total goodput / closed-loop goodput ($(calc "$capacity")/s) | $(calc "($(goodput "$bench_tmp/greedy.json") + $(goodput "$bench_tmp/modest.json")) / $capacity") | - |"

client "$bench_tmp/cheap.json" cheap 1600 5ms
client "$bench_tmp/dear.json" dear 160 50ms
wait_clients
cheap_cpu=$(calc "$(ok "$bench_tmp/cheap.json") * 0.005")
dear_cpu=$(calc "$(ok "$bench_tmp/dear.json") * 0.050")
echo "| spin 5ms at 1600/s vs spin 50ms at 160/s | CPU share, 5 ms tenant | $(calc "$cheap_cpu / ($cheap_cpu + $dear_cpu)") | 0.5 +- 0.05 |"
echo "| | CPU share, 50 ms tenant | $(calc "$dear_cpu / ($cheap_cpu + $dear_cpu)") | 0.5 +- 0.05 |"

client "$bench_tmp/critical_idle.json" crit 200 5ms --priority critical
wait_clients
client "$bench_tmp/sheddable.json" flood 1600 5ms --priority sheddable
client "$bench_tmp/critical.json" crit 200 5ms --priority critical
wait_clients
crit_idle_p99=$(p99 "$bench_tmp/critical_idle.json")
echo "| critical 200/s + sheddable 1600/s | critical: OK / sent | $(calc "$(ok "$bench_tmp/critical.json") / $(j "$bench_tmp/critical.json" 'j["sent"]')") | >= 0.99 |"
echo "| | critical p99, alone -> under the flood | $(calc "$crit_idle_p99") ms -> $(calc "$(p99 "$bench_tmp/critical.json")") ms | <= 2 x alone + 5 ms = $(calc "2 * $crit_idle_p99 + 5") ms |"
echo "| | sheddable: OK / sent | $(calc "$(ok "$bench_tmp/sheddable.json") / $(j "$bench_tmp/sheddable.json" 'j["sent"]')") | - |"

timeout --foreground 300 "$COMPUTE_CLIENT" bench --target "$target" --task spin \
  --duration 5ms --time "$TIME" --deadline 2s --max_error_rate 1 --json \
  --mix "flood:rate=1600,crit:rate=200:priority=critical" >"$bench_tmp/mix.json"
mix() { j "$bench_tmp/mix.json" "[e for e in j['mix'] if e['name'] == '$1'][0]$2"; }
echo "| bench --mix: critical 200/s + default 1600/s | critical: OK / sent | $(calc "$(mix crit '["status"].get("OK", 0)') / $(mix crit '["sent"]')") | >= 0.99 |"
echo "| | critical p99 | $(calc "$(mix crit '["latency_ms"]["p99"]')") ms | <= 2 x alone + 5 ms = $(calc "2 * $crit_idle_p99 + 5") ms |"
echo "| | default: OK / sent | $(calc "$(mix flood '["status"].get("OK", 0)') / $(mix flood '["sent"]')") | - |"
