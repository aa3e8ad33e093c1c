#!/usr/bin/env node
// Writes deploy/k8s/components/prometheus-operator/prometheusrule.yaml from
// deploy/prometheus/alerts.yml,
// so that Kubernetes gets exactly the alerts compose has. check.sh fails when
// the two differ; run `node tests/deploy/sync-rules.mjs` after editing alerts.yml.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { kubernetesRuleGroups } from "./checks.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const alerts = YAML.parse(readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8"));
const rule = {
  apiVersion: "monitoring.coreos.com/v1",
  kind: "PrometheusRule",
  metadata: {
    name: "compute",
    labels: { "app.kubernetes.io/name": "compute", "app.kubernetes.io/component": "server" },
  },
  spec: { groups: kubernetesRuleGroups(alerts.groups, "compute") },
};
const header = `# GENERATED from deploy/prometheus/alerts.yml by tests/deploy/sync-rules.mjs:
# edit alerts.yml, then run \`node tests/deploy/sync-rules.mjs\`.
# tests/deploy/check.sh fails when this file and alerts.yml differ (but for
# ComputeAbsent's namespace, which the prod overlay writes in).
# Your Prometheus must select this rule (its ruleSelector, e.g. a \`release\` label).
`;
const out = join(root, "deploy/k8s/components/prometheus-operator/prometheusrule.yaml");
writeFileSync(out, header + YAML.stringify(rule, { lineWidth: 0 }));
console.log(`wrote ${out}`);
