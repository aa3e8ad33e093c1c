#!/usr/bin/env node
// The PromQL that deploy/ ships, checked against a real Prometheus and against
// compute-server's metric names.
//
//   node promql-exprs.mjs list                  print every expression (JSON lines)
//   node promql-exprs.mjs query URL             send each to URL/api/v1/query; all must
//                                               answer status "success" (i.e. parse and run)
//   node promql-exprs.mjs names METRICS.txt     every compute_/grpc_server_/process_ metric
//                                               named is in that /metrics exposition
//   node promql-exprs.mjs data URL              every dashboard query returns series from a
//                                               Prometheus that scrapes compute-server as
//                                               job "compute" (label names and values match)
//
// Expressions: every target of every panel of deploy/grafana/dashboards/*.json
// (Grafana variables replaced as Grafana would: $__rate_interval -> 1m,
// $instance -> its "All" value), the dashboard's variable queries
// (label_values(m, l) -> count by (l) (m)), the alert rules of
// deploy/prometheus/alerts.yml and the KEDA ScaledObject's prometheus query.
// Each also names only metrics of compute's fixed metric contract (below).
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { checker } from "./checks.mjs";

// DEPLOY_ROOT: a folder holding deploy/ (default: this repository), so the
// negative test can point it at a broken copy.
const root = process.env.DEPLOY_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const checks = checker();
const { failures, check } = checks;

// compute-server's metric contract (the README's "Metrics"): histograms expose
// _bucket/_sum/_count.
const COUNTERS_GAUGES = [
  "compute_pool_queue_depth", "compute_pool_queue_capacity", "compute_pool_workers", "compute_pool_workers_busy",
  "compute_tasks_total", "compute_tasks_rejected_total", "compute_build_info",
  "compute_priority_tasks_total", "compute_priority_rejected_total",
  "compute_pool_min_workers", "compute_pool_max_workers", "compute_pool_worker_start_failures_total",
  "compute_pool_queued_cost_seconds", "compute_pool_running_cost_seconds",
  "compute_pool_expected_wait_seconds", "compute_pool_target_queue_wait_seconds", "compute_pool_overloaded",
  "compute_task_cost_seconds_per_unit", "compute_task_probes_total", "compute_memory_returns_total", "process_threads",
  "compute_pool_inflight_bytes", "compute_pool_inflight_bytes_limit", "compute_transport_quota_bytes",
  "compute_log_lines_dropped_total", "compute_answers_undelivered_total",
  "compute_tenant_tasks_total", "compute_tenant_rejected_total", "compute_tenant_run_seconds_total",
  "grpc_server_started_total", "grpc_server_handled_total",
  "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
  "process_open_fds", "process_max_fds", "process_start_time_seconds",
];
const HISTOGRAMS = [
  "compute_task_queue_wait_seconds", "compute_task_run_seconds", "compute_refusal_seconds", "grpc_server_handling_seconds",
];
const CONTRACT = new Set([...COUNTERS_GAUGES, ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`])]);
const OURS = /^(compute_|grpc_server_|process_)/;

// --- collect ------------------------------------------------------------------
const exprs = []; // {where, expr}
const dashDir = join(root, "deploy/grafana/dashboards");
for (const f of readdirSync(dashDir).filter((x) => x.endsWith(".json")).sort()) {
  const dash = JSON.parse(readFileSync(join(dashDir, f), "utf8"));
  const vars = dash.templating?.list ?? [];
  const values = { __rate_interval: "1m", __interval: "15s", __range: "1h", __range_s: "3600" };
  for (const v of vars) {
    if (v.type === "datasource") continue;
    values[v.name] = v.allValue ?? ".*";
  }
  const subst = (expr, where) => {
    const out = expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (m, a, b) => values[a ?? b] ?? m);
    check(!/\$\{?\w/.test(out), `${where}: no unknown Grafana variable left (${out})`);
    return out;
  };
  for (const v of vars) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    const m = /^label_values\((.*),\s*(\w+)\)$/s.exec(q ?? "");
    if (check(m, `${f} variable ${v.name}: label_values(metric, label) query`)) {
      exprs.push({ kind: "dashboard", where: `${f} variable ${v.name}`, expr: subst(`count by (${m[2]}) (${m[1]})`, `${f} variable ${v.name}`) });
    }
  }
  const panels = [];
  const flat = (ps) => ps?.forEach((p) => { panels.push(p); flat(p.panels); });
  flat(dash.panels);
  const ids = new Set();
  for (const p of panels) {
    check(!ids.has(p.id), `${f}: panel id ${p.id} is unique`);
    ids.add(p.id);
    if (p.type === "row") continue;
    const where = `${f} panel ${p.id} "${p.title}"`;
    check(p.datasource?.uid === "${datasource}" || p.datasource?.uid === "prometheus", `${where}: uses the Prometheus datasource`);
    check(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0, `${where}: has a gridPos`);
    check(p.targets?.length > 0, `${where}: has a query`);
    for (const t of p.targets ?? []) {
      check(typeof t.expr === "string" && t.expr.trim() !== "", `${where} ${t.refId}: expr is not empty`);
      if (t.expr) exprs.push({ kind: "dashboard", where: `${where} ${t.refId}`, expr: subst(t.expr, `${where} ${t.refId}`) });
    }
  }
}
for (const g of YAML.parse(readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8")).groups) {
  for (const r of g.rules) exprs.push({ kind: "alert", where: `alerts.yml ${g.name}/${r.alert ?? r.record} (${r.labels?.severity})`, expr: r.expr });
}
const so = YAML.parse(readFileSync(join(root, "deploy/k8s/components/keda-queue-depth/scaledobject.yaml"), "utf8"));
for (const t of so.spec.triggers.filter((x) => x.type === "prometheus")) {
  exprs.push({ kind: "keda", where: `ScaledObject trigger ${t.name}`, expr: t.metadata.query });
}

const metricNames = (expr) => {
  // Identifiers followed by a selector, a range or the end of a call argument,
  // minus PromQL keywords and label names inside braces.
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, "{}");
  const ids = noStrings.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return [...new Set(ids.filter((id) => OURS.test(id)))];
};
for (const { where, expr } of exprs) {
  for (const m of metricNames(expr)) check(CONTRACT.has(m), `${where}: metric ${m} is in compute's metric contract`);
}

// --- modes ----------------------------------------------------------------------
const [mode, arg] = process.argv.slice(2);
if (mode === "list") {
  for (const e of exprs) console.log(JSON.stringify(e));
} else if (mode === "query" || mode === "data") {
  for (const { kind, where, expr } of exprs) {
    if (mode === "data" && kind !== "dashboard") continue;
    let body;
    try {
      const res = await fetch(`${arg}/api/v1/query`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ query: expr, timeout: "5s" }),
        signal: AbortSignal.timeout(10000),
      });
      body = await res.json();
    } catch (e) {
      body = { status: "error", error: String(e) };
    }
    check(body.status === "success", `${where}: Prometheus answered ${body.status}: ${body.errorType ?? ""} ${body.error ?? ""}\n       ${expr.trim()}`);
    if (mode === "data" && body.status === "success") {
      const n = body.data?.result?.length ?? 0;
      check(n > 0, `${where}: no series from compute-server (labels or metric names do not match?)\n       ${expr.trim()}`);
      if (n > 0) console.log(`ok   ${where}: ${n} series`);
    } else if (body.status === "success") {
      console.log(`ok   ${where}`);
    }
  }
} else if (mode === "names") {
  const text = readFileSync(arg, "utf8");
  const exposed = new Set(text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/[{ ]/)[0]));
  const used = new Set(exprs.flatMap(({ expr }) => metricNames(expr)));
  for (const m of [...used].sort()) check(exposed.has(m), `compute-server /metrics exposes ${m}`);
} else {
  console.error("usage: promql-exprs.mjs list | query URL | names METRICS.txt | data URL");
  process.exit(2);
}

for (const f of failures) console.log(`FAIL ${f}`);
console.log(`promql-exprs ${mode}: ${exprs.length} expressions, ${checks.passed} checks passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
