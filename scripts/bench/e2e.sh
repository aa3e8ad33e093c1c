#!/usr/bin/env bash
# e2e.sh: compute-server's calls/s end to end against a bare gRPC server.
#
# Three servers run on 127.0.0.1, side by side (only one is loaded at a
# time): build/server/compute-server (default workers and queue) and two
# baselines, build/tests/bench/echo_server answering Run at once with no
# pool: on the gRPC callback API ("echo"), and on the completion-queue API
# with one queue and one thread per core ("echo_cq", ECHO_API=cq: the
# ceiling of gRPC C++ on this machine, and what compute-server is built on). h2load (Debian's nghttp2-client) sends trivial `fib n=1`
# calls, 1 thread, 4 connections x 32 streams, as real gRPC requests: POST
# /compute.v1.Compute/Run with content-type application/grpc, te: trailers,
# grpc-timeout 10S and the gRPC frame of RunRequest{fib{n:1}} as body.
# Rounds alternate the three, in an order that changes each round, so a
# slow phase of a shared machine hits all; the table shows each round's calls/s, the medians
# and the ratios compute/echo_cq and compute/echo, all from this run.
#
# Only successful calls count. h2load sees HTTP statuses, not gRPC's
# (grpc-status travels in trailers, and a refusal such as
# RESOURCE_EXHAUSTED is an HTTP 200 too), so:
#   - before and after the rounds each server gets two calls that must end
#     in grpc-status 0: compute-client `run fib --n 1`, and nghttp (same
#     package) sending h2load's exact request, whose trailers it prints;
#   - a round counts h2load's 2xx responses (req/s x 2xx / done);
#   - for compute-server, that is multiplied by the share of the round's
#     calls it answered OK: grpc_server_handled_total by grpc_code, scraped
#     from its /metrics before and after the round (the counters are kept
#     whether or not /metrics is served, so serving it costs a call nothing;
#     E2E_METRICS=0 runs it with --metrics_port=0 and counts 2xx only).
#     echo_server answers OK to every call it gets.
#
# Then latency under load: compute-client bench, open loop at half of
# echo_cq's median calls/s but at most E2E_LATENCY_RATE (20000: what one
# compute-client process drives on 2 cores that the server shares; past it
# the client's own queueing is what gets measured), 4 connections, deadline
# 10s, alternating compute and echo_cq for E2E_LATENCY_ROUNDS short rounds
# of E2E_LATENCY_SECONDS; the medians of each one's p50 and p99, their
# ratios, and the median of the ratios of rounds run back to back. Many
# short rounds, because on a shared 2-core machine the p50 of one server
# alone moves by 2x from one 5 s round to the next (a slow phase of the
# machine lasts seconds): 10 rounds of 2 s put both servers through the
# same phases more evenly than 5 of 5 s, in less time.
#
#   scripts/bench/e2e.sh
#   E2E_ROUNDS=3 E2E_SECONDS=2 scripts/bench/e2e.sh
#
# Environment (defaults):
#   E2E_ROUNDS (5; BENCH_QUICK=1: 2)    rounds per server
#   E2E_SECONDS (5; BENCH_QUICK=1: 2)   measured seconds per round (h2load -D)
#   E2E_LATENCY_ROUNDS (10; BENCH_QUICK=1: 4)   latency rounds per server
#   E2E_LATENCY_SECONDS (2)   seconds per latency round
#   E2E_LATENCY_CLIENT (compute-client)   h2load: the latency rounds use
#                        h2load --rps (per connection) and its --log-file
#                        instead, which drives the full half of echo_cq's
#                        rate where compute-client cannot (it sends from one
#                        pacing thread); E2E_LATENCY_RATE then has no
#                        default cap. HTTP 200s count (a gRPC refusal is one:
#                        at half load there are none to count)
#   E2E_LATENCY_RATE (20000)  cap on the latency rounds' rate (above)
#   E2E_WARMUP (1)       warm-up seconds per round, not measured
#   E2E_REQUESTS (0)     > 0: each round sends this many calls instead (-n)
#   E2E_CONNECTIONS (4), E2E_STREAMS (32)   h2load -c and -m
#   E2E_H2LOAD_THREADS (1)  h2load -t: more where the servers have more
#                        cores than one h2load thread can load
#   E2E_SERVER_FLAGS     extra compute-server flags (word-split)
#   E2E_NEIGHBOUR (0)    1: a neighbour process keeps one core busy (a shell
#                        loop) for the whole run, as on a shared node
#   E2E_METRICS (1)      0: compute-server with --metrics_port=0 (see above)
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, ECHO_SERVER, BENCH_KEEP,
#   BENCH_SERVER_CPUS, BENCH_CLIENT_CPUS (pinning; the neighbour counts as a
#   server): lib.sh
set -euo pipefail
BENCH_NAME=e2e
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${E2E_ROUNDS:-$(bench_default 5 2)}
ROUND_SECONDS=${E2E_SECONDS:-$(bench_default 5 2)}
WARMUP=${E2E_WARMUP:-1}
REQUESTS=${E2E_REQUESTS:-0}
CONNECTIONS=${E2E_CONNECTIONS:-4}
STREAMS=${E2E_STREAMS:-32}
H2LOAD_THREADS=${E2E_H2LOAD_THREADS:-1}
read -r -a EXTRA_FLAGS <<<"${E2E_SERVER_FLAGS:-}"
METRICS=${E2E_METRICS:-1}
LATENCY_ROUNDS=${E2E_LATENCY_ROUNDS:-$(bench_default 10 4)}
LATENCY_SECONDS=${E2E_LATENCY_SECONDS:-2}

for v in ROUNDS ROUND_SECONDS WARMUP REQUESTS CONNECTIONS STREAMS \
  H2LOAD_THREADS LATENCY_ROUNDS LATENCY_SECONDS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || bench_die "$v must be a whole number (got '${!v}')"
done
((ROUNDS >= 1 && ROUNDS <= 100)) || bench_die "E2E_ROUNDS must be 1..100"
((ROUND_SECONDS >= 1 && ROUND_SECONDS <= 600)) ||
  bench_die "E2E_SECONDS must be 1..600"
((REQUESTS <= 100000000)) || bench_die "E2E_REQUESTS must be <= 1e8"
((H2LOAD_THREADS >= 1 && H2LOAD_THREADS <= CONNECTIONS)) ||
  bench_die "E2E_H2LOAD_THREADS must be 1..E2E_CONNECTIONS"
((LATENCY_ROUNDS >= 1 && LATENCY_ROUNDS <= 100)) ||
  bench_die "E2E_LATENCY_ROUNDS must be 1..100"
((LATENCY_SECONDS >= 1 && LATENCY_SECONDS <= 600)) ||
  bench_die "E2E_LATENCY_SECONDS must be 1..600"

# h2load and nghttp: Debian's nghttp2-client.
if ! command -v h2load >/dev/null || ! command -v nghttp >/dev/null; then
  echo "e2e: h2load not found; installing nghttp2-client" >&2
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null ||
      bench_die "need root or sudo: apt-get install nghttp2-client"
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
    nghttp2-client >/dev/null; then
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends nghttp2-client
  fi
  command -v h2load >/dev/null || bench_die "h2load still missing"
fi
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT" "$ECHO_SERVER"

# The request body: a gRPC frame (uncompressed, length 4) of
# RunRequest{fib{n:1}} = 0a 02 08 01.
body=$bench_tmp/fib1.bin
printf '\x00\x00\x00\x00\x04\x0a\x02\x08\x01' >"$body"
HEADERS=(-H 'content-type: application/grpc' -H 'te: trailers'
  -H 'grpc-timeout: 10S')

# A busy neighbour, if asked: it competes with every server alike.
if [[ ${E2E_NEIGHBOUR:-0} == 1 ]]; then
  bench_start "$bench_tmp/neighbour.log" "${bench_server_prefix[@]}" \
    timeout --foreground 3600 sh -c 'while :; do :; done'
  echo "neighbour: a shell loop keeping one core busy (pid $bench_last_pid)"
fi

# Servers.
rc=0
if [[ $METRICS == 1 ]]; then metrics_flag=--metrics_port=free; else
  metrics_flag=--metrics_port=0
fi
bench_start_compute "$bench_tmp/compute.log" "$metrics_flag" \
  "${EXTRA_FLAGS[@]}" || rc=$?
if ((rc == 2)); then
  bench_die "compute-server refused its flags: $(tail -1 "$bench_tmp/compute.log")"
fi
((rc == 0)) || bench_die "compute-server did not start"
workers=$(bench_log_field "$bench_tmp/compute.log" starting workers)
bench_start "$bench_tmp/echo.log" "${bench_server_prefix[@]}" "$ECHO_SERVER" \
  --port=0
echo_pid=$bench_last_pid
bench_wait_line "$bench_tmp/echo.log" '^port [0-9]+$' 30 "$echo_pid" ||
  bench_die "echo_server did not start: $(tail -3 "$bench_tmp/echo.log")"
echo_port=$(awk '/^port [0-9]+$/ {print $2; exit}' "$bench_tmp/echo.log")
ECHO_API=cq bench_start "$bench_tmp/echo_cq.log" "${bench_server_prefix[@]}" \
  "$ECHO_SERVER" --port=0
echo_cq_pid=$bench_last_pid
bench_wait_line "$bench_tmp/echo_cq.log" '^port [0-9]+$' 30 "$echo_cq_pid" ||
  bench_die "echo_server (ECHO_API=cq) did not start: $(tail -3 "$bench_tmp/echo_cq.log")"
echo_cq_port=$(awk '/^port [0-9]+$/ {print $2; exit}' "$bench_tmp/echo_cq.log")

declare -A PORT=([compute]=$compute_port [echo]=$echo_port [echo_cq]=$echo_cq_port)

# sanity NAME: both calls must answer fib(1) = 1 with grpc-status 0.
sanity() {
  local name=$1 port=${PORT[$1]} out
  if ! out=$(timeout --foreground 30 "$COMPUTE_CLIENT" run fib --n 1 --deadline 10s \
    --target "127.0.0.1:$port" 2>&1); then
    bench_die "sanity: compute-client run fib --n 1 on $name failed: $out"
  fi
  [[ $out == *"fib(n=1) = 1"* ]] ||
    bench_die "sanity: unexpected answer from $name: $out"
  # nghttp -v prints every frame, the response's binary DATA included.
  out=$bench_tmp/nghttp-$name.txt
  timeout --foreground 30 nghttp -v -d "$body" "${HEADERS[@]}" \
    "http://127.0.0.1:$port/compute.v1.Compute/Run" >"$out" 2>&1 || true
  if ! grep -aEq 'recv \(stream_id=[0-9]+\) grpc-status: 0$' "$out"; then
    bench_die "sanity: h2load's request to $name did not end in grpc-status 0:
$(grep -aE ':status|grpc-|rror' "$out" | head -5)"
  fi
}
sanity compute
sanity echo
sanity echo_cq

# grpc_codes BEFORE AFTER: compute-server's answers between two scrapes,
# "OK 123 ResourceExhausted 4 ..." (codes that did not occur left out).
grpc_codes() {
  bench_promq delta "$1" "$2" grpc_server_handled_total grpc_code \
    grpc_service=compute.v1.Compute |
    awk '$2 > 0 {printf "%s%s %d", s, $1, $2; s = " "}'
}

# ok_share CODES: OK / all answers but Canceled (h2load cancels the streams
# in flight when its time is up; those are not in its counts either).
ok_share() {
  awk '{
    for (i = 1; i < NF; i += 2) {
      if ($i != "Canceled") all += $(i + 1)
      if ($i == "OK") ok += $(i + 1)
    }
  }
  END { printf "%.6f", (all > 0 ? ok / all : 0) }' <<<"$1"
}

# round NAME: one h2load run; prints "rps_2xx rps done 2xx failed errored".
round() {
  local name=$1 port=${PORT[$1]} out load limit
  if ((REQUESTS > 0)); then
    load=(-n "$REQUESTS")
    limit=$((60 + REQUESTS / 1000))
  else
    load=(-D "$ROUND_SECONDS" --warm-up-time="$WARMUP")
    limit=$((ROUND_SECONDS + WARMUP + 60))
  fi
  out=$(timeout --foreground "$limit" "${bench_client_prefix[@]}" h2load \
    -t"$H2LOAD_THREADS" -c"$CONNECTIONS" -m"$STREAMS" "${load[@]}" \
    -d "$body" "${HEADERS[@]}" \
    "http://127.0.0.1:$port/compute.v1.Compute/Run" 2>&1) || {
    echo "e2e: h2load on $name failed or ran over ${limit}s:" >&2
    tail -5 <<<"$out" >&2
    echo "0 0 0 0 0 0"
    return
  }
  # nghttp2 1.52:
  #   finished in 5.00s, 76671.00 req/s, 4.18MB/s
  #   requests: 230013 total, 230013 started, 230013 done, 230013 succeeded, 0 failed, 0 errored, 0 timeout
  #   status codes: 230013 2xx, 0 3xx, 0 4xx, 0 5xx
  awk '
    /^finished in/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^req\/s/) rps = $i }
    /^requests:/ {
      for (i = 2; i < NF; i++) {
        w = $(i + 1); sub(/,$/, "", w)
        if (w == "done") done = $i
        if (w == "failed") failed = $i
        if (w == "errored") errored = $i
      }
    }
    /^status codes:/ { for (i = 3; i < NF; i++) if ($(i + 1) ~ /^2xx/) ok = $i }
    END {
      rps += 0; done += 0; ok += 0
      printf "%.2f %.2f %d %d %d %d\n", (done > 0 ? rps * ok / done : 0), rps,
        done, ok, failed + 0, errored + 0
    }' <<<"$out"
}

if ((REQUESTS > 0)); then
  per_round="$REQUESTS calls"
else
  per_round="${ROUND_SECONDS}s (+${WARMUP}s warm-up)"
fi
echo "## e2e: fib n=1 over gRPC, h2load -t$H2LOAD_THREADS -c$CONNECTIONS -m$STREAMS," \
  "$ROUNDS rounds x $per_round per server"
echo
echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2- | sed 's/^ *//')"
if [[ -n ${BENCH_SERVER_CPUS:-}${BENCH_CLIENT_CPUS:-} ]]; then
  echo "pinned (taskset): servers on CPUs ${BENCH_SERVER_CPUS:-any}," \
    "load generators on CPUs ${BENCH_CLIENT_CPUS:-any}"
fi
extra=${EXTRA_FLAGS[*]:+ (${EXTRA_FLAGS[*]})}
echo "compute-server: 127.0.0.1:$compute_port, ${workers:-?} workers$extra;" \
  "echo_server: 127.0.0.1:$echo_port (callback API)," \
  "127.0.0.1:$echo_cq_port (completion queues)"
echo "sanity: compute-client run fib --n 1 and h2load's request (nghttp):" \
  "grpc-status 0 on both"
if [[ $METRICS == 1 ]]; then
  echo "counted: 2xx responses; for compute-server, x the share of its" \
    "answers that were OK (its /metrics)"
else
  echo "counted: 2xx responses (E2E_METRICS=0: a gRPC refusal such as" \
    "RESOURCE_EXHAUSTED is an HTTP 200 and counts too)"
fi
echo
echo "| round | server | OK calls/s | h2load req/s | done | 2xx |" \
  "failed + errored | grpc codes (server metrics, incl. warm-up) |"
echo "|---|---|---|---|---|---|---|---|"
results=$bench_tmp/results.txt
: >"$results"
# The order changes each round, through all six, so that no server runs
# right after the same one most of the time (a slower phase of a shared VM,
# a previous round's cores still busy), and compute runs before echo_cq in
# half the rounds and after it in the other half. (Until 2026-12-07 the
# order only turned, C E Q, E Q C, Q C E, ...: compute then came right
# after echo_cq in 3 of its 4 rounds after the first.)
orders=("compute echo echo_cq" "echo_cq compute echo" "echo echo_cq compute"
  "compute echo_cq echo" "echo compute echo_cq" "echo_cq echo compute")
for ((r = 1; r <= ROUNDS; r++)); do
  read -r -a order <<<"${orders[(r - 1) % 6]}"
  for name in "${order[@]}"; do
    codes="-"
    share=1
    if [[ $name == compute && $METRICS == 1 ]]; then
      bench_scrape "$metrics_port" "$bench_tmp/before.prom"
    fi
    read -r ok_rps rps ndone ok failed errored <<<"$(round "$name")"
    if [[ $name == compute && $METRICS == 1 ]]; then
      bench_scrape "$metrics_port" "$bench_tmp/after.prom"
      codes=$(grpc_codes "$bench_tmp/before.prom" "$bench_tmp/after.prom")
      share=$(ok_share "$codes")
      ok_rps=$(awk -v a="$ok_rps" -v b="$share" 'BEGIN {printf "%.2f", a * b}')
      if [[ $share != 1.000000 ]]; then
        echo "e2e: round $r on compute: not every call answered OK ($codes);" \
          "counted: OK only (x $share)" >&2
      fi
    fi
    # A round that answered nothing (h2load failed, its output did not
    # parse, no call counted OK) is a failed benchmark, not a 0 in the
    # medians: one such round halved or doubled a ratio.
    if ! awk -v x="$ok_rps" 'BEGIN { exit !(x > 0) }'; then
      bench_die "round $r on $name: no call answered OK (see above)"
    fi
    echo "$name $ok_rps" >>"$results"
    printf '| %d | %s | %.0f | %.0f | %d | %d | %d | %s |\n' "$r" "$name" \
      "$ok_rps" "$rps" "$ndone" "$ok" "$((failed + errored))" "${codes:-none}"
    if ((ndone > ok || failed + errored > 0)); then
      echo "e2e: round $r on $name: $((ndone - ok)) non-2xx responses," \
        "$((failed + errored)) failed or errored (not counted)" >&2
    fi
  done
done
# And once more after the load: still grpc-status 0.
sanity compute
sanity echo
sanity echo_cq

python3 - "$results" <<'PY'
import statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    name, rps = line.split()
    rounds.setdefault(name, []).append(float(rps))
c = statistics.median(rounds["compute"])
print()
print("| server | median OK calls/s | min | max | compute / it (medians) |")
print("|---|---|---|---|---|")
for name, label in (("compute", "compute-server"),
                    ("echo_cq", "echo_server, completion queues (bare gRPC)"),
                    ("echo", "echo_server, callback API (bare gRPC)")):
    v = rounds[name]
    m = statistics.median(v)
    ratio = "%.3f" % (c / m) if m > 0 else "n/a"
    print("| %s | %.0f | %.0f | %.0f | %s |" % (label, m, min(v), max(v), ratio))
print()
for base in ("echo_cq", "echo"):
    pairs = [a / b for a, b in zip(rounds["compute"], rounds[base]) if b > 0]
    if not pairs:
        print("compute/%s: n/a (it answered no calls)" % base)
        sys.exit(1)
    print("compute/%s (medians): %.3f; per round: %s" % (
        base, c / statistics.median(rounds[base]),
        ", ".join("%.3f" % p for p in pairs)))
PY

# Latency at half of echo_cq's throughput, each server alone in its round.
LATENCY_CLIENT=${E2E_LATENCY_CLIENT:-compute-client}
case $LATENCY_CLIENT in
  compute-client) rate_cap=${E2E_LATENCY_RATE:-20000} ;;
  h2load) rate_cap=${E2E_LATENCY_RATE:-1000000000} ;;
  *) bench_die "E2E_LATENCY_CLIENT must be compute-client or h2load" ;;
esac
half=$(python3 - "$results" "$rate_cap" <<'PY'
import statistics, sys
v = [float(l.split()[1]) for l in open(sys.argv[1]) if l.split()[0] == "echo_cq"]
print(int(min(statistics.median(v) / 2, float(sys.argv[2]))))
PY
)
# latency_h2load NAME LOG: h2load at $half calls/s in all (--rps per
# connection), every response's time in LOG; prints "p50_ms p99_ms rate".
latency_h2load() {
  local name=$1 log=$2 per
  per=$(((half + CONNECTIONS - 1) / CONNECTIONS))
  timeout --foreground $((LATENCY_SECONDS + 60)) "${bench_client_prefix[@]}" h2load \
    -t"$H2LOAD_THREADS" -c"$CONNECTIONS" -m"$STREAMS" --rps="$per" \
    -D "$LATENCY_SECONDS" --log-file="$log" -d "$body" "${HEADERS[@]}" \
    "http://127.0.0.1:${PORT[$name]}/compute.v1.Compute/Run" >/dev/null 2>&1 ||
    bench_die "h2load --rps on $name failed"
  # Columns: start (us since the epoch), HTTP status, us to the response's end.
  python3 - "$log" <<'PY'
import math, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
ok = sorted(int(r[2]) for r in rows if r[1] == "200")
if not ok:
    sys.exit("no 200 responses")
starts = [int(r[0]) for r in rows]
span = (max(starts) - min(starts)) / 1e6
# Nearest rank: the smallest value with at least p of them at or below it.
q = lambda p: ok[max(0, math.ceil(p * len(ok)) - 1)] / 1000
print("%.3f %.3f %.1f" % (q(0.5), q(0.99), len(rows) / span if span > 0 else 0))
PY
}
lat=$bench_tmp/latency.txt
: >"$lat"
for ((r = 1; r <= LATENCY_ROUNDS; r++)); do
  # Each goes first in every other round.
  pair=(compute echo_cq)
  ((r % 2 == 1)) || pair=(echo_cq compute)
  for name in "${pair[@]}"; do
    if [[ $LATENCY_CLIENT == h2load ]]; then
      # Not inside echo's $(...): a failure there would end only that
      # subshell, and the script would go on with an empty row.
      row=$(latency_h2load "$name" "$bench_tmp/latency-$name-$r.tsv") ||
        bench_die "latency round $r on $name failed"
      echo "$name $row" >>"$lat"
      continue
    fi
    out=$bench_tmp/latency-$name-$r.json
    timeout --foreground $((LATENCY_SECONDS + 60)) "${bench_client_prefix[@]}" \
      "$COMPUTE_CLIENT" bench \
      --target "127.0.0.1:${PORT[$name]}" --task fib --n 1 --rate "$half" \
      --time "${LATENCY_SECONDS}s" --connections 4 --deadline 10s \
      --max_error_rate 1 --json \
      >"$out" || bench_die "compute-client bench on $name failed"
    # The percentiles are of the calls answered OK: say when they are not
    # nearly all of them (--max_error_rate 1 lets any share through).
    ok_share=$(bench_json "$out" \
      'j["status"].get("OK", 0) / max(1, sum(j["status"].values()))')
    if python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 0.99)" \
      "$ok_share"; then
      echo "e2e: latency round $r on $name: only $ok_share of its calls" \
        "OK ($(bench_json "$out" 'j["status"]')); its percentiles are of" \
        "those" >&2
    fi
    echo "$name $(bench_json "$out" 'j["latency_ms"]["p50"]')" \
      "$(bench_json "$out" 'j["latency_ms"]["p99"]')" \
      "$(bench_json "$out" 'j["offered_rate"]')" >>"$lat"
  done
done
python3 - "$lat" "$half" "$LATENCY_ROUNDS" "$LATENCY_SECONDS" \
  "$(if [[ $LATENCY_CLIENT == h2load ]]; then
    echo "h2load --rps (every response's time from its --log-file; HTTP 200s;" \
      "calls/s: those sent over the round), $CONNECTIONS connections"
  else echo "compute-client bench, open loop, 4 connections"; fi)" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, p50, p99, offered = line.split()
    rows.setdefault(name, []).append((float(p50), float(p99), float(offered)))
print()
print("Latency under load: %s, at %s calls/s "
      "(half of echo_cq's median, at most E2E_LATENCY_RATE), "
      "%s rounds of %s s each, alternating" % tuple(sys.argv[5:6] + sys.argv[2:5]))
print()
print("| server | offered calls/s | p50 ms (median) | p99 ms (median) |")
print("|---|---|---|---|")
med = {}
for name in ("compute", "echo_cq"):
    v = rows[name]
    med[name] = (statistics.median(x[0] for x in v),
                 statistics.median(x[1] for x in v))
    print("| %s | %.0f | %.3f | %.3f |" % (
        name, statistics.median(x[2] for x in v), med[name][0], med[name][1]))
c, e = med["compute"], med["echo_cq"]
print()
print("compute/echo_cq latency (medians): p50 %.2fx, p99 %.2fx" % (
    c[0] / e[0] if e[0] > 0 else float("nan"),
    c[1] / e[1] if e[1] > 0 else float("nan")))
# Each compute round against the echo_cq round right after it.
for i, label in ((0, "p50"), (1, "p99")):
    pairs = [a[i] / b[i] for a, b in zip(rows["compute"], rows["echo_cq"])
             if b[i] > 0]
    if pairs:
        print("  %s per pair of rounds: median %.2fx, %s" % (
            label, statistics.median(pairs),
            ", ".join("%.2f" % p for p in pairs)))
PY
