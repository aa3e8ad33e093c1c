#!/usr/bin/env bash
# payload.sh: the round trip of a large call, against what gRPC alone takes
# to move the same bytes.
#
# Two servers run on 127.0.0.1: compute-server (--workers=2) and
# build/tests/bench/echo_server on the completion-queue API (ECHO_API=cq),
# which answers a blur with its own pixels and runs no kernel: gRPC and
# protobuf moving the payload in and out, nothing else. compute-client bench
# sends blurs of a SIDE x SIDE 8-bit image (4096: 16 MiB in, 16 MiB out),
# radius 1, one at a time on one connection (closed loop, concurrency 1,
# deadline 60 s):
#   - warm: PAYLOAD_CALLS calls per round after PAYLOAD_WARMUP unmeasured
#     ones, rounds alternating compute, echo, compute, ... (a slow phase of
#     a shared machine hits both); each round's p50 and p90 round trip, and
#     for compute-server the mean run time of its blur kernel
#     (compute_task_run_seconds{task="blur"}, _sum / _count between /metrics
#     scrapes around the round);
#   - cold: PAYLOAD_COLD calls to each, each after 1.5 s without calls (past
#     the 1-1.25 s after which an idle compute-server returns freed pages,
#     server/memory_returner.h: buffers freed by the last call have gone
#     back to the system), each from a fresh client process, p50.
# Reported: the medians, each server's minor page faults per warm call
# (/proc/<pid>/stat: on a VM each costs ~10 us, so memory that is not reused
# shows here first), the target of the large-payloads issue (round trip
# <= 1.3 x the kernel's run time + 16 ms), and compute - echo - kernel: what
# compute-server adds beyond moving the bytes and running the kernel.
#
#   scripts/bench/payload.sh
#   PAYLOAD_SIDE=2048 scripts/bench/payload.sh
#
# Environment (defaults):
#   PAYLOAD_SIDE (4096)     image width = height, pixels (1..4096)
#   PAYLOAD_ROUNDS (3; BENCH_QUICK=1: 2)    warm rounds per server
#   PAYLOAD_CALLS (20; BENCH_QUICK=1: 10)   measured calls per warm round
#   PAYLOAD_WARMUP (3)      unmeasured calls before each warm round
#   PAYLOAD_COLD (5; BENCH_QUICK=1: 3)      cold calls per server (0: none)
#   PAYLOAD_SERVER_FLAGS    extra compute-server flags (word-split)
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, ECHO_SERVER, BENCH_KEEP: lib.sh
set -euo pipefail
BENCH_NAME=payload
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

SIDE=${PAYLOAD_SIDE:-4096}
ROUNDS=${PAYLOAD_ROUNDS:-$(bench_default 3 2)}
CALLS=${PAYLOAD_CALLS:-$(bench_default 20 10)}
WARMUP=${PAYLOAD_WARMUP:-3}
COLD=${PAYLOAD_COLD:-$(bench_default 5 3)}
read -r -a EXTRA_FLAGS <<<"${PAYLOAD_SERVER_FLAGS:-}"
for v in SIDE ROUNDS CALLS WARMUP COLD; do
  name=PAYLOAD_$v
  [[ ${!v} =~ ^[0-9]+$ ]] || bench_die "$name must be a whole number"
done
((SIDE >= 1 && SIDE <= 4096)) || bench_die "PAYLOAD_SIDE must be 1..4096"
((ROUNDS >= 1 && ROUNDS <= 20)) || bench_die "PAYLOAD_ROUNDS must be 1..20"
((CALLS >= 1 && CALLS <= 1000)) || bench_die "PAYLOAD_CALLS must be 1..1000"
((WARMUP <= 100)) || bench_die "PAYLOAD_WARMUP must be 0..100"
((COLD <= 100)) || bench_die "PAYLOAD_COLD must be 0..100"
command -v curl >/dev/null || bench_die "curl not found (apt-get install curl)"
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT" "$ECHO_SERVER"

# The image: binary PGM (P5), a gradient.
image=$bench_tmp/image.pgm
bench_write_pgm "$image" "$SIDE"

rc=0
bench_start_compute "$bench_tmp/compute.log" --workers=2 --metrics_port=free \
  "${EXTRA_FLAGS[@]}" || rc=$?
if ((rc == 2)); then
  bench_die "compute-server refused its flags: $(tail -1 "$bench_tmp/compute.log")"
fi
((rc == 0)) || bench_die "compute-server did not start"
# Pinned like compute-server (BENCH_SERVER_CPUS), so neither has more cores.
ECHO_API=cq bench_start "$bench_tmp/echo.log" "${bench_server_prefix[@]}" \
  "$ECHO_SERVER" --port=0
echo_pid=$bench_last_pid
bench_wait_line "$bench_tmp/echo.log" '^port [0-9]+$' 30 "$echo_pid" ||
  bench_die "echo_server did not start: $(tail -3 "$bench_tmp/echo.log")"
echo_port=$(awk '/^port [0-9]+$/ {print $2; exit}' "$bench_tmp/echo.log")
declare -A PORT=([compute]=$compute_port [echo]=$echo_port)
declare -A PID=([compute]=$compute_pid [echo]=$echo_pid)

# minor_faults PID: the process's minor page faults so far (/proc/PID/stat,
# field 10; the name in field 2 has no spaces here).
minor_faults() { awk '{print $10}' "/proc/$1/stat"; }

# blur PORT CALLS JSON: CALLS blurs one at a time; bench's JSON into JSON.
# Every call must end OK.
blur() {
  local out=$3
  timeout --foreground 600 "$COMPUTE_CLIENT" bench --target "127.0.0.1:$1" --task blur \
    --in "$image" --radius 1 --concurrency 1 --requests "$2" --deadline 60s \
    --json >"$out" 2>"$out.err" ||
    bench_die "compute-client bench failed: $(tail -3 "$out.err")"
  local ok
  ok=$(bench_json "$out" 'j["status"].get("OK", 0)')
  ((ok == $2)) || bench_die "only $ok of $2 blurs ended OK ($out)"
}

# median VALUE...: the median (the mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
    END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s * 1000}'; }

declare -A P50 P90 FAULTS
KERNEL=()
for server in compute echo; do
  P50[$server]=""
  P90[$server]=""
  FAULTS[$server]=""
done
for ((round = 1; round <= ROUNDS; round++)); do
  for server in compute echo; do
    port=${PORT[$server]}
    if ((WARMUP > 0)); then blur "$port" "$WARMUP" "$bench_tmp/warmup.json"; fi
    if [[ $server == compute ]]; then
      bench_scrape "$metrics_port" "$bench_tmp/before.prom"
    fi
    json=$bench_tmp/$server-$round.json
    faults_before=$(minor_faults "${PID[$server]}")
    blur "$port" "$CALLS" "$json"
    faults=$(($(minor_faults "${PID[$server]}") - faults_before))
    FAULTS[$server]+=" $((faults / CALLS))"
    P50[$server]+=" $(bench_json "$json" 'round(j["latency_ms"]["p50"], 1)')"
    P90[$server]+=" $(bench_json "$json" 'round(j["latency_ms"]["p90"], 1)')"
    if [[ $server == compute ]]; then
      bench_scrape "$metrics_port" "$bench_tmp/after.prom"
      kernel=$(bench_promq mean "$bench_tmp/before.prom" \
        "$bench_tmp/after.prom" compute_task_run_seconds task=blur)
      [[ $kernel != nan && $kernel != nolabel ]] ||
        bench_die "no blur run times in compute-server's /metrics"
      KERNEL+=("$(ms "$kernel")")
    fi
  done
done

# Cold: each call after 1.5 s idle (pacing, so that the last call's freed
# buffers have decayed away; nothing waits on it), from a fresh process.
declare -A COLD_P50
for server in compute echo; do
  cold=()
  for ((i = 0; i < COLD; i++)); do
    sleep 1.5
    blur "${PORT[$server]}" 1 "$bench_tmp/cold.json"
    cold+=("$(bench_json "$bench_tmp/cold.json" 'round(j["latency_ms"]["p50"], 1)')")
  done
  if ((COLD > 0)); then COLD_P50[$server]=$(median "${cold[@]}"); else COLD_P50[$server]=-; fi
done

# shellcheck disable=SC2086 # the lists are space-separated numbers
{
  c50=$(median ${P50[compute]})
  e50=$(median ${P50[echo]})
  kernel=$(median "${KERNEL[@]}")
}
mib=$(awk -v s="$SIDE" 'BEGIN {printf "%.1f", s * s / 1048576}')
echo "## payload: ${SIDE}x$SIDE blurs ($mib MiB in, as much out), radius 1," \
  "one at a time, 2 workers; $ROUNDS warm rounds of $CALLS calls, $COLD cold calls"
echo
bench_machine_line
echo "compute-server: 127.0.0.1:$compute_port; echo_server (ECHO_API=cq," \
  "answers with the request's pixels, no kernel): 127.0.0.1:$echo_port"
echo
echo "| server | warm round trip p50 per round (ms) | median | p90 per round (ms) | page faults per warm call | cold p50 (ms) |"
echo "|---|---|---|---|---|---|"
# commas LIST...: the words joined by ", ".
commas() {
  local IFS=,
  local joined="$*"
  echo "${joined//,/, }"
}
for server in compute echo; do
  # shellcheck disable=SC2086 # word-split on purpose
  echo "| $server | $(commas ${P50[$server]}) | $(median ${P50[$server]}) |" \
    "$(commas ${P90[$server]}) | $(commas ${FAULTS[$server]}) |" \
    "${COLD_P50[$server]} |"
done
echo
echo "compute-server's blur kernel, mean run time per round:" \
  "$(commas "${KERNEL[@]}") ms (median $kernel)"
awk -v c="$c50" -v e="$e50" -v k="$kernel" 'BEGIN {
  target = 1.3 * k + 16
  printf "compute / echo (warm p50): %.2fx; compute - echo - kernel: %.1f ms\n", c / e, c - e - k
  printf "target: warm round trip <= 1.3 x kernel + 16 ms = %.1f ms: %s (%.1f ms, %.2fx of it)\n",
    target, (c <= target ? "met" : "MISSED"), c, c / target
}'
