#!/usr/bin/env node
// What the schemas cannot say: does a rendered overlay deploy compute the way
// the service needs (README: health, shutdown, configuration)?
//
//   node policy-k8s.mjs RENDERED.yaml --overlay base|dev|prod --alerts alerts.yml [--write-rules OUT.yml]
//
// --write-rules writes the PrometheusRule's groups as a plain Prometheus rule
// file, for `promtool check rules`. Exit 0 when every check holds, 1 otherwise.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import YAML from "yaml";
import { byteSize, checker, exitAfterSigterm, kubernetesRuleGroups, longestCallSeconds, memoryBudgetFits } from "./checks.mjs";

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const file = args[0];
const overlay = opt("--overlay");
const alertsPath = opt("--alerts");
const rulesOut = opt("--write-rules");
if (!file || !["base", "dev", "prod"].includes(overlay) || !alertsPath) {
  console.error("usage: policy-k8s.mjs RENDERED.yaml --overlay base|dev|prod --alerts alerts.yml [--write-rules OUT]");
  process.exit(2);
}

const objs = YAML.parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const checks = checker();
const { failures, check } = checks;
const all = (kind) => objs.filter((o) => o.kind === kind);
const one = (kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata?.name === name));
const matches = (selector, labels) =>
  !!selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// The COMPUTE_* variables the server reads: the env column of the README's
// "Configuration" table (rows "| `--flag` | `COMPUTE_FLAG` | ..."), so the
// list is the documented one, not a copy of it.
const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "README.md"), "utf8");
const KNOWN_ENV = new Set(readme.split("\n").filter((l) => l.startsWith("| `--"))
  .flatMap((l) => (l.split("|")[2] ?? "").match(/COMPUTE_[A-Z_]+/g) ?? []));
const DURATION_ENV = new Set(["COMPUTE_IDLE_TIMEOUT", "COMPUTE_DRAIN_TIMEOUT", "COMPUTE_MAX_CONNECTION_AGE",
  "COMPUTE_MAX_CONNECTION_AGE_GRACE", "COMPUTE_KEEPALIVE_TIME", "COMPUTE_KEEPALIVE_TIMEOUT"]);
// absl durations as the README writes them: 250ms, 10s, 1m, 1h30m, inf.
const seconds = (d) => {
  if (d === "inf") return Infinity;
  const re = /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/gy;
  const unit = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0, m, end = 0;
  while ((m = re.exec(d))) { total += Number(m[1]) * unit[m[2]]; end = re.lastIndex; }
  return end === d.length && end > 0 ? total : NaN;
};
const cpu = (q) => (typeof q === "string" && q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q));

// --- Deployment and its pod -------------------------------------------------
const deploy = one("Deployment", "compute");
if (!check(deploy, "a Deployment named compute")) finish();
const pod = deploy.spec.template;
const podLabels = pod.metadata?.labels ?? {};
const spec = pod.spec;
const c = spec.containers.find((x) => x.name === "compute") ?? spec.containers[0];
check(matches(deploy.spec.selector?.matchLabels, podLabels), "Deployment selector matches its pod labels");

const psc = spec.securityContext ?? {};
check(psc.runAsNonRoot === true, "pod securityContext.runAsNonRoot: true");
check(psc.runAsUser === 10001, "pod securityContext.runAsUser: 10001");
check(psc.seccompProfile?.type === "RuntimeDefault", "pod seccompProfile RuntimeDefault");
const csc = c.securityContext ?? {};
check(csc.readOnlyRootFilesystem === true, "container readOnlyRootFilesystem: true");
check(csc.allowPrivilegeEscalation === false, "container allowPrivilegeEscalation: false");
check(csc.runAsNonRoot === true && csc.runAsUser === 10001, "container runAsNonRoot, runAsUser 10001");
check(csc.capabilities?.drop?.includes("ALL"), "container capabilities drop ALL");
check(!csc.capabilities?.add?.length, "container adds no capabilities");
check(csc.seccompProfile?.type === "RuntimeDefault", "container seccompProfile RuntimeDefault");
check(spec.enableServiceLinks === false,
  "enableServiceLinks: false (a Service named compute would inject COMPUTE_PORT=tcp://...)");

const res = c.resources ?? {};
check(res.requests?.cpu && res.limits?.cpu, "CPU request and CPU limit (the pool sizes itself from the quota)");
check(cpu(res.limits?.cpu) >= cpu(res.requests?.cpu), "CPU limit >= request");
check(res.requests?.memory && res.limits?.memory, "memory request and limit");
check(byteSize(res.requests?.memory) === byteSize(res.limits?.memory),
  "memory request = limit (the server uses its limit in a burst: a lower request overpacks nodes, and the pod is evicted first)");

const grpcPort = c.ports?.find((p) => p.name === "grpc");
const metricsPort = c.ports?.find((p) => p.name === "metrics");
check(grpcPort?.containerPort === 50051, "container port grpc 50051");
check(metricsPort?.containerPort === 9464, "container port metrics 9464");
check(c.readinessProbe?.grpc?.port === 50051 && c.readinessProbe.grpc.service === "compute.v1.Compute",
  "readinessProbe: native gRPC, port 50051, service compute.v1.Compute");
check(c.livenessProbe?.grpc?.port === 50051, "livenessProbe: native gRPC, port 50051");

// ConfigMap with the COMPUTE_* env.
const cmName = c.envFrom?.find((e) => e.configMapRef)?.configMapRef?.name;
const cm = cmName && one("ConfigMap", cmName);
check(cm, `envFrom a ConfigMap that the render contains (${cmName})`);
const env = cm?.data ?? {};
for (const [k, v] of Object.entries(env)) {
  check(KNOWN_ENV.has(k), `ConfigMap key ${k} is a compute-server COMPUTE_* variable`);
  if (DURATION_ENV.has(k)) check(!Number.isNaN(seconds(v)), `${k}=${v} is a duration (e.g. 30s, 5m)`);
}
// An aged connection's calls get the grace to finish: at least the longest
// call the API accepts, or such a call is cut off (UNAVAILABLE, retried from
// the start by the client) when its connection turns
// COMPUTE_MAX_CONNECTION_AGE old.
const longestCall = longestCallSeconds(check);
if (env.COMPUTE_MAX_CONNECTION_AGE_GRACE) {
  check(seconds(env.COMPUTE_MAX_CONNECTION_AGE_GRACE) >= longestCall,
    `COMPUTE_MAX_CONNECTION_AGE_GRACE (${env.COMPUTE_MAX_CONNECTION_AGE_GRACE}) lets the longest call (${longestCall}s) finish`);
}
// The same for a scale-down or a rollout: the drain lets the longest call
// finish, or such calls are cut off at SIGTERM and retried from the start.
check(seconds(env.COMPUTE_DRAIN_TIMEOUT ?? "20s") >= longestCall,
  `COMPUTE_DRAIN_TIMEOUT (${env.COMPUTE_DRAIN_TIMEOUT ?? "20s, the server's default"}) lets the longest call (${longestCall}s) finish`);
if (env.COMPUTE_PORT) check(Number(env.COMPUTE_PORT) === 50051, "COMPUTE_PORT matches the grpc containerPort");
if (env.COMPUTE_METRICS_PORT) check(Number(env.COMPUTE_METRICS_PORT) === 9464, "COMPUTE_METRICS_PORT matches the metrics containerPort");

// Shutdown timing: the grace period counts from the start of preStop, and
// SIGTERM comes after it, so preStop + the server's longest exit after
// SIGTERM (the drain, gRPC's grace, the wait for call objects: checks.mjs)
// < grace. Liveness (NOT_SERVING while draining) is not checked against the
// drain: the kubelet stops liveness probes once a pod is terminating.
const preStop = c.lifecycle?.preStop?.exec?.command ?? [];
const sleepIdx = preStop.findIndex((a) => /(^|\/)sleep$/.test(a));
const preStopSeconds = sleepIdx >= 0 ? Number(preStop[sleepIdx + 1]) : NaN;
check(preStopSeconds > 0, `preStop exec sleep N (got ${JSON.stringify(preStop)})`);
const drain = seconds(env.COMPUTE_DRAIN_TIMEOUT ?? "20s");
const grace = spec.terminationGracePeriodSeconds ?? 30;
const stopping = exitAfterSigterm(drain, "drain_timeout");
check(grace > preStopSeconds + stopping.seconds,
  `terminationGracePeriodSeconds (${grace}) > preStop (${preStopSeconds}) + ${stopping.what}`);
// Memory: the byte budget leaves the process a fifth of the limit (checks.mjs).
const memLimit = byteSize(res.limits?.memory);
if (check(memLimit > 0, `memory limit is a byte quantity (got ${res.limits?.memory})`)) {
  const fits = memoryBudgetFits(env.COMPUTE_MAX_INFLIGHT_BYTES, memLimit);
  check(fits.ok, fits.what);
}

// --- Services ---------------------------------------------------------------
const services = all("Service");
// The Services clients call; the prometheus-operator component adds one for
// scraping only (a metrics port, no grpc), checked with the ServiceMonitor.
const serving = services.filter((s) => s.spec.ports.some((p) => p.name === "grpc"));
const clusterIP = serving.filter((s) => s.spec.clusterIP !== "None" && (s.spec.type ?? "ClusterIP") === "ClusterIP");
const headless = serving.filter((s) => s.spec.clusterIP === "None");
check(clusterIP.length === 1, "one ClusterIP Service");
check(headless.length === 1, "one headless Service (clusterIP: None) for client-side round_robin");
for (const s of services) {
  const n = s.metadata.name;
  check(matches(s.spec.selector, podLabels), `Service ${n} selects the pods`);
  for (const p of s.spec.ports) {
    const target = p.targetPort ?? p.port;
    check(c.ports.some((cp) => cp.name === target || cp.containerPort === target),
      `Service ${n} port ${p.name} targets a container port (${target})`);
  }
}
for (const s of serving) {
  const n = s.metadata.name;
  for (const p of s.spec.ports) {
    if (p.name === "grpc") check(p.appProtocol === "grpc", `Service ${n} port grpc has appProtocol: grpc`);
  }
  check(s.spec.ports.some((p) => p.name === "grpc" && p.port === 50051), `Service ${n} serves grpc on 50051`);
  check(!s.spec.publishNotReadyAddresses, `Service ${n} leaves not-ready (draining) pods out`);
  // /metrics is Prometheus's: a client Service offering it handed every
  // client a way to stall the scrapes with a few slow connections (the
  // pods' addresses still serve it; a NetworkPolicy closes that).
  check(s.spec.ports.every((p) => p.name === "grpc"), `Service ${n} offers grpc only (got ${s.spec.ports.map((p) => p.name)})`);
}

// --- PDB; custom resources only where their operator runs --------------------
const pdb = one("PodDisruptionBudget");
check(pdb && matches(pdb.spec.selector?.matchLabels, podLabels), "PodDisruptionBudget selects the pods");
// One pod at a time, at any fleet size: each drains its calls for up to
// the drain timeout, and the rest carry its load meanwhile (prod's
// minAvailable: 2 let a node-pool upgrade take 18 of 20 at once).
check(pdb?.spec.maxUnavailable === 1 && pdb?.spec.minAvailable === undefined,
  `PodDisruptionBudget lets one pod go at a time (maxUnavailable: 1; got ${JSON.stringify(pdb?.spec)})`);
// Base and dev apply to a plain cluster (kind, minikube): built-in kinds only.
// Prod needs the prometheus-operator (ServiceMonitor, PrometheusRule) and KEDA.
const BUILTIN = /^(v1|apps\/v1|policy\/v1|autoscaling\/v2)$/;
const custom = objs.filter((o) => !BUILTIN.test(o.apiVersion)).map((o) => `${o.apiVersion} ${o.kind}`);
if (overlay === "prod") {
  check(custom.length > 0, "prod: the operators' custom resources are included");
} else {
  check(custom.length === 0, `${overlay}: only built-in kinds, no operator CRD needed (got ${custom.join(", ") || "none"})`);
}
const sm = one("ServiceMonitor");
if (overlay === "prod" && check(sm, "prod: a ServiceMonitor")) {
  const scraped = services.filter((s) => matches(sm.spec.selector?.matchLabels, s.metadata.labels));
  check(scraped.length === 1, `ServiceMonitor selects exactly one Service (got ${scraped.map((s) => s.metadata.name)})`);
  for (const ep of sm.spec.endpoints ?? []) {
    check(scraped[0]?.spec.ports.some((p) => p.name === ep.port), `ServiceMonitor endpoint port ${ep.port} is on the Service`);
  }
  const job = sm.spec.jobLabel ? scraped[0]?.metadata.labels?.[sm.spec.jobLabel] : scraped[0]?.metadata.name;
  check(job === "compute", `the scrape's job label is "compute" (the alerts select job="compute"; got ${job})`);
  // A pod that drains stays a target until it exits: its last counters
  // (calls finished or shut down in the drain) reach Prometheus.
  check(scraped[0]?.spec.publishNotReadyAddresses === true,
    "the scraped Service publishes not-ready addresses (draining pods stay targets)");
  check(!scraped[0]?.spec.ports.some((p) => p.name === "grpc"),
    "the scraped Service has no grpc port (it is for Prometheus: its DNS lists draining pods)");
  // But not pods still starting: one pulling its image (Pending) has an
  // address and no server, and ComputeTargetDown would page for it.
  check((sm.spec.endpoints ?? []).every((ep) => (ep.relabelings ?? []).some((r) =>
    r.action === "keep" && r.regex === "Running" &&
    isDeepStrictEqual(r.sourceLabels, ["__meta_kubernetes_pod_phase"]))),
    "the ServiceMonitor keeps Running pods only (a Pending one is not down)");
}

// --- PrometheusRule = alerts.yml ----------------------------------------------
const rule = one("PrometheusRule");
const alerts = YAML.parse(readFileSync(alertsPath, "utf8"));
if (overlay === "prod" && check(rule, "prod: a PrometheusRule")) {
  // ComputeAbsent names the Deployment's namespace: the rendered rule is
  // compared with alerts.yml's groups so rewritten for it.
  check(isDeepStrictEqual(rule.spec.groups, kubernetesRuleGroups(alerts.groups, deploy.metadata.namespace)),
    `PrometheusRule groups equal ${alertsPath} (run: node tests/deploy/sync-rules.mjs), ` +
    `ComputeAbsent asking for namespace ${deploy.metadata.namespace}`);
  const names = new Set(rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert)));
  for (const a of ["ComputeHighRejectionRatio", "ComputeQueueSaturated", "ComputeQueueWaitP99High",
    "ComputeTargetDown", "ComputeAbsent"]) {
    check(names.has(a), `alert ${a}`);
  }
  for (const r of rule.spec.groups.flatMap((g) => g.rules)) {
    check(["warning", "critical"].includes(r.labels?.severity), `alert ${r.alert} has severity warning|critical`);
    check(r.for && r.annotations?.summary && r.annotations?.description, `alert ${r.alert} has for, summary, description`);
  }
  if (rulesOut) writeFileSync(rulesOut, YAML.stringify({ groups: rule.spec.groups }));
}

// --- Autoscaling and overlay specifics -----------------------------------------
const hpas = all("HorizontalPodAutoscaler");
const scaled = all("ScaledObject");
const targets = (ref) => ref?.kind === "Deployment" && ref?.name === deploy.metadata.name;
if (overlay === "prod") {
  check(hpas.length === 0, "prod: no plain HPA (KEDA's ScaledObject owns the HPA)");
  const so = scaled[0];
  if (check(scaled.length === 1 && targets(so.spec.scaleTargetRef), "prod: one ScaledObject targeting the Deployment")) {
    const prom = so.spec.triggers.find((t) => t.type === "prometheus");
    // The offered load (run time, scaled by the refusals), not the queue's
    // depth, which admission holds near its wait target under overload.
    check(prom && /compute_task_run_seconds_sum/.test(prom.metadata.query ?? "") &&
      /compute_tasks_rejected_total/.test(prom.metadata.query ?? ""),
      "prod: a prometheus trigger on the offered load (compute_task_run_seconds_sum and compute_tasks_rejected_total)");
    check(prom?.metadata.ignoreNullValues === "false",
      "prod: the prometheus trigger errs when its query finds nothing (ignoreNullValues false)");
    check(prom && Number(prom.metadata.threshold) > 0, "prod: the prometheus trigger has a threshold");
    check(so.spec.minReplicaCount >= 2 && so.spec.maxReplicaCount > so.spec.minReplicaCount, "prod: min >= 2 < max replicas");
    const ns = deploy.metadata.namespace;
    check(prom && (prom.metadata.query ?? "").includes(`namespace="${ns}"`),
      `prod: the KEDA query selects the overlay's namespace (namespace="${ns}"; got ${prom?.metadata.query})`);
  }
  // A released image from a registry; never the local development tag.
  const [, host, tag] = /^(?:([^/]+)\/)?[^:@]+(?::([^@]+))?/.exec(c.image ?? "") ?? [];
  check(host && /[.:]|^localhost$/.test(host), `prod: image from a registry (got ${c.image})`);
  check(tag && !["dev", "latest"].includes(tag), `prod: image with a version tag, not dev or latest (got ${c.image})`);
  check(seconds(env.COMPUTE_MAX_CONNECTION_AGE ?? "inf") < Infinity,
    "prod: COMPUTE_MAX_CONNECTION_AGE set, so clients rebalance as pods come and go");
  check(seconds(env.COMPUTE_MAX_CONNECTION_AGE_GRACE ?? "inf") < Infinity, "prod: COMPUTE_MAX_CONNECTION_AGE_GRACE set");
} else {
  check(scaled.length === 0, `${overlay}: no ScaledObject`);
  const hpa = hpas[0];
  if (check(hpas.length === 1 && targets(hpa.spec.scaleTargetRef), `${overlay}: one autoscaling/v2 HPA targeting the Deployment`)) {
    check(hpa.apiVersion === "autoscaling/v2", "HPA is autoscaling/v2");
    check(hpa.spec.metrics?.some((m) => m.type === "Resource" && m.resource?.name === "cpu"), "HPA scales on CPU");
    check(hpa.spec.minReplicas <= hpa.spec.maxReplicas, "HPA min <= max");
  }
  if (overlay === "dev") check(hpa?.spec.minReplicas === 1, "dev: 1 replica at least");
  if (overlay === "base") check(hpa?.spec.minReplicas >= 2, "base: 2+ replicas at least");
}
// The autoscaler owns the replica count: a value in the manifest would
// reset it on every apply (a fleet scaled out for a load, cut back at once).
check(deploy.spec.replicas === undefined,
  `${overlay}: no spec.replicas on the Deployment (the autoscaler owns it; got ${deploy.spec.replicas})`);
if (overlay !== "base") {
  const ns = one("Namespace");
  check(ns, `${overlay}: the render creates its Namespace`);
  const namespaced = objs.filter((o) => o.kind !== "Namespace");
  check(namespaced.every((o) => o.metadata.namespace === ns?.metadata.name), `${overlay}: every object in namespace ${ns?.metadata.name}`);
}

finish();

function finish() {
  for (const f of failures) console.log(`FAIL ${file} (${overlay}): ${f}`);
  console.log(`policy-k8s ${overlay}: ${checks.passed} checks passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}
