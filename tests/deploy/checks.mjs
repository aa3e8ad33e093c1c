import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The pass/fail tally every check script keeps: check(ok, what) counts a
// pass or records the failure, and returns ok so callers can branch on it.
export function checker() {
  const checks = { failures: [], passed: 0 };
  checks.check = (ok, what) => {
    if (ok) checks.passed++;
    else checks.failures.push(what);
    return ok;
  };
  return checks;
}

// Bytes of a size as compute-server's --max_inflight_bytes and Kubernetes
// write them: a whole number, optionally with Ki, Mi, Gi, Ti (x1024) or k,
// K, M, G, T (x1000); NaN otherwise. `auto` is the caller's to handle.
const UNITS = { "": 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
export function byteSize(text) {
  const m = /^(\d+)([A-Za-z]*)$/.exec(String(text));
  return m && m[2] in UNITS ? Number(m[1]) * UNITS[m[2]] : NaN;
}

// The memory rule every deployment of compute-server keeps: by
// construction the server holds at most its byte budget in calls
// (--max_inflight_bytes: 1/4 for queued and running calls and unsent
// answers, 3/4 for gRPC's transport quota), beside its own memory (64 MiB
// reserved: threads, code, the allocator), and that must stay within 80% of
// what the container's memory limit leaves after the reserve. The budget's
// default (`auto`) is 25/32 of the limit less the reserve, which keeps it:
// 25/32 = 0.78 (server/config.cc). Returns the check's text, with `ok`.
export function memoryBudgetFits(budgetText, limitBytes) {
  const reserve = 64 * 2 ** 20;
  const budget =
    budgetText === undefined || budgetText === "auto"
      ? Math.max(2 ** 20, Math.floor((limitBytes - reserve) / 32) * 25)
      : byteSize(budgetText);
  const mib = (b) => `${Math.round(b / 2 ** 20)} MiB`;
  if (budget === 0) {
    return { ok: false, what: "COMPUTE_MAX_INFLIGHT_BYTES=0 (no byte budget) under a memory limit: set one (<= 0.8x (the limit - 64 MiB))" };
  }
  return {
    ok: budget > 0 && budget <= 0.8 * (limitBytes - reserve),
    what: `COMPUTE_MAX_INFLIGHT_BYTES (${budgetText ?? "auto"}: ${mib(budget)}) <= 0.8 x (the memory limit - 64 MiB) (${mib(0.8 * (limitBytes - reserve))})`,
  };
}

// How long compute-server may take to exit after SIGTERM, in seconds: the
// drain (--drain_timeout: accepted calls finish and their answers are
// taken), then what follows it, cut off at kDrainOverrun (server/main.cc):
// the wait for quiet (100 ms), up to 1 s of gRPC's shutdown grace for calls
// still in gRPC (ComputeServer::Drain, server/service/server.cc) and up to
// 10 s for the call objects left on the completion queues
// (RunQueues::kCallsEndLimit, server/service/run_call.h); then up to 1.5 s
// for the log lines still queued, the "stopped" line among them, to be
// written (FlushLogs at exit, server/main.cc; 1 s after a cut-off). A grace
// period of only the drain lets the kill come in the last steps even when
// the drain itself went well.
// Returns the seconds and how they add up, for a check's text.
const DRAIN_OVERRUN_SECONDS = 11.5;
const LOG_FLUSH_SECONDS = 1.5;
export function exitAfterSigterm(drainSeconds, drainName) {
  return {
    seconds: drainSeconds + DRAIN_OVERRUN_SECONDS + LOG_FLUSH_SECONDS,
    what: `${drainName} (${drainSeconds}) + the drain's bound past it (gRPC's shutdown grace and the wait for ` +
      `call objects, ${DRAIN_OVERRUN_SECONDS}) + the log flush (${LOG_FLUSH_SECONDS})`,
  };
}

// The longest call the API accepts: the longer of spin's and sleep's
// longest duration (kMax...Duration = absl::Seconds(N) in
// server/tasks/<task>.h). A drain or an aged connection's grace shorter
// than it cuts such calls off (UNAVAILABLE, retried from the start).
export function longestCallSeconds(check) {
  const tasks = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "server", "tasks");
  return Math.max(...["spin", "sleep"].map((task) => {
    const header = readFileSync(join(tasks, `${task}.h`), "utf8");
    const m = /kMax\w+Duration = absl::Seconds\((\d+)\)/.exec(header);
    check(m, `server/tasks/${task}.h states its longest duration (kMax...Duration = absl::Seconds(N))`);
    return m ? Number(m[1]) : Infinity;
  }));
}

// The alert groups as Kubernetes gets them (the PrometheusRule): alerts.yml's,
// but ComputeAbsent asks for the namespace's own targets. One Prometheus
// often scrapes several namespaces (prod and a staging copy, both job
// "compute"): absent(up{job="compute"}) stayed silent while prod had no
// target at all, as long as staging had one. The namespace is the
// Deployment's (the prod overlay's replacements write it in; "compute"
// before that).
export function kubernetesRuleGroups(groups, namespace) {
  const copy = structuredClone(groups);
  for (const rule of copy.flatMap((g) => g.rules)) {
    if (rule.alert === "ComputeAbsent") {
      rule.expr = rule.expr.replace('job="compute"}', `job="compute", namespace="${namespace}"}`);
    }
  }
  return copy;
}
