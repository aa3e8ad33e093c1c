#!/usr/bin/env bash
# Sends every PromQL expression that deploy/ ships (each Grafana panel and
# variable, each alert rule, the KEDA trigger query) to a real Prometheus's
# /api/v1/query and fails unless every answer is status "success": the
# expression parses and evaluates. A broken copy of the dashboard must fail
# the same check. The Prometheus is Debian's /usr/bin/prometheus on a free
# 127.0.0.1 port with a temporary TSDB, stopped on exit.
#
#   tests/deploy/dashboard_promql.sh
#   COMPUTE_SERVER=build/server/compute-server tests/deploy/dashboard_promql.sh
#
# Without COMPUTE_SERVER, Prometheus has an empty configuration. With it, that
# server runs on free loopback ports, its /metrics must expose every compute_,
# grpc_server_ and process_ metric the expressions name, and Prometheus
# scrapes it as job "compute" every second: then every dashboard query must
# also return series (the label names and values in the panels match).
# Needs: prometheus, node, curl; tests/deploy/node_modules (check.sh runs npm ci).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PROMETHEUS=${PROMETHEUS:-prometheus}
command -v "$PROMETHEUS" >/dev/null || { echo "dashboard_promql: $PROMETHEUS not found (Debian package prometheus)" >&2; exit 1; }
[[ -d $here/node_modules ]] || (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap "exit 143" TERM INT

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# wait_http URL SECONDS: until URL answers 2xx.
wait_http() {
  local deadline=$((SECONDS + $2))
  until curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.2
  done
}

# Optional: a real compute-server to scrape.
: >"$tmp/prometheus.yml" # empty configuration: no scrapes, no rules
if [[ -n ${COMPUTE_SERVER:-} ]]; then
  # The port is free when picked, but another process may take it before
  # the server binds it: the server then stops at once, saying so, and is
  # started again on another.
  for attempt in 1 2 3; do
    mport=$(free_port)
    "$COMPUTE_SERVER" --address=127.0.0.1 --port=0 --metrics_address=127.0.0.1 --metrics_port="$mport" \
      --workers=1 --tenant_metrics=10 >"$tmp/server.log" 2>&1 &
    pids+=($!)
    # /metrics answers before the gRPC server starts (a bad metrics port
    # stops start-up first); the pool's gauges appear once it serves.
    deadline=$((SECONDS + 15))
    serving=
    until grep -q '"msg":"serving"' "$tmp/server.log" 2>/dev/null; do
      # Taken before its check (in use) or between its check and its bind
      # (cannot listen).
      if ! kill -0 "${pids[-1]}" 2>/dev/null &&
        grep -Eq -- "--metrics_port: port $mport is in use|cannot listen on 127.0.0.1:$mport " \
          "$tmp/server.log"; then
        echo "dashboard_promql: metrics port $mport taken (try $attempt)" >&2
        continue 2
      fi
      if ((SECONDS >= deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
        echo "FAIL dashboard_promql: $COMPUTE_SERVER did not start serving" >&2
        tail -5 "$tmp/server.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    serving=1
    break
  done
  if [[ -z $serving ]]; then
    echo "FAIL dashboard_promql: no free metrics port in 3 tries" >&2
    exit 1
  fi
  if ! wait_http "http://127.0.0.1:$mport/metrics" 15; then
    echo "FAIL dashboard_promql: $COMPUTE_SERVER served no /metrics on 127.0.0.1:$mport" >&2
    tail -5 "$tmp/server.log" >&2
    exit 1
  fi
  curl -fsS -m 5 "http://127.0.0.1:$mport/metrics" >"$tmp/metrics.txt"
  node "$here/promql-exprs.mjs" names "$tmp/metrics.txt"
  cat >"$tmp/prometheus.yml" <<YAML
scrape_configs:
  - job_name: compute
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["127.0.0.1:$mport"]
YAML
fi

started=
for attempt in 1 2 3; do
  port=$(free_port)
  "$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
  pids+=($!)
  if wait_http "http://127.0.0.1:$port/-/ready" 30; then started=1; break; fi
  echo "dashboard_promql: prometheus did not start on port $port (try $attempt):" >&2
  tail -5 "$tmp/prometheus.log" >&2
  kill "${pids[-1]}" 2>/dev/null || true
done
[[ -n $started ]] || exit 1
url="http://127.0.0.1:$port"
echo "dashboard_promql: $("$PROMETHEUS" --version 2>&1 | head -1) on 127.0.0.1:$port"

node "$here/promql-exprs.mjs" query "$url"

# Negative: the same check must fail on a panel whose PromQL does not parse.
mkdir -p "$tmp/broken"
cp -r "$here/../../deploy" "$tmp/broken/deploy"
node -e '
  const fs = require("fs"), f = process.argv[1], d = JSON.parse(fs.readFileSync(f));
  const p = d.panels.find((x) => x.targets && x.targets.length);
  p.targets[0].expr = "sum by (grpc_code (" + p.targets[0].expr;
  fs.writeFileSync(f, JSON.stringify(d));' "$tmp/broken/deploy/grafana/dashboards/compute.json"
if DEPLOY_ROOT="$tmp/broken" node "$here/promql-exprs.mjs" query "$url" >"$tmp/neg.log" 2>&1; then
  echo "FAIL dashboard_promql: a panel with unparsable PromQL was not caught" >&2
  cat "$tmp/neg.log" >&2
  exit 1
fi
if ! grep -q 'answered error: bad_data' "$tmp/neg.log"; then
  echo "FAIL dashboard_promql: the negative test failed for another reason:" >&2
  cat "$tmp/neg.log" >&2
  exit 1
fi
echo "ok   negative: unparsable panel PromQL is rejected ($(grep -m1 -o 'bad_data.*' "$tmp/neg.log" | cut -c1-90))"

if [[ -n ${COMPUTE_SERVER:-} ]]; then
  # rate() needs two samples in its window: wait for three scrapes (<= 20s).
  deadline=$((SECONDS + 20))
  until curl -fsS -m 2 "$url/api/v1/query" --data-urlencode 'query=count_over_time(up{job="compute"}[1m]) >= 3' |
    grep -q '"result":\[{'; do
    if ((SECONDS >= deadline)); then
      echo "FAIL dashboard_promql: Prometheus did not scrape compute-server three times in 20s" >&2
      exit 1
    fi
    sleep 0.5
  done
  node "$here/promql-exprs.mjs" data "$url"
fi
