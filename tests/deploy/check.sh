#!/usr/bin/env bash
# Checks docker-compose.yml and deploy/ without a cluster, an engine or a
# network (beyond `npm ci` from the npm registry). Exits non-zero on any failure.
#
#   tests/deploy/check.sh          (make check-deploy)
#   tests/deploy/check.sh --tools  only says whether the tools it needs are
#                                  there (.ci/run asks first)
#
#  1. Prometheus: promtool check config / check rules on deploy/prometheus,
#     and the alerts' unit tests (alerts_test.yml: promtool test rules).
#  2. Compose: the compose-spec JSON schema (strict: unknown keys fail) and
#     the wiring between services and deploy/ (check-compose.mjs); plus
#     `docker-compose config` (Debian's docker-compose), `docker compose
#     config` or `podman-compose config`, whichever exists.
#  3. Kubernetes: `kubectl kustomize` renders base, overlays/dev and
#     overlays/prod; every rendered object is validated against the
#     Kubernetes, prometheus-operator and KEDA schemas, with unknown fields
#     rejected (validate-k8s.mjs); deployment rules (probes, securityContext,
#     shutdown timing, the byte budget against the memory limit (checks.mjs),
#     selectors, autoscaling per overlay; base and dev hold
#     only built-in kinds, so they apply without the operators' CRDs; prod's
#     image is a registry's versioned one: policy-k8s.mjs); the
#     PrometheusRule's groups equal alerts.yml and pass promtool.
#  4. Negative tests: misspelled fields (replicaz, a nested probe field, CRD
#     fields), a wrong type, an unknown kind, too short a grace period (k8s
#     and compose: under the drain, or under its exit after the drain), a
#     memory limit too small for the byte budget (k8s and compose), a
#     drifted PrometheusRule and a misspelled compose key must each fail.
#  5. Grafana and PromQL: dashboard_promql.sh sends every panel's, alert's and
#     the KEDA trigger's PromQL to a real Prometheus. With
#     COMPUTE_SERVER=path/to/compute-server (make check-deploy sets it) that
#     Prometheus also scrapes the real server, and every dashboard query must
#     return series.
# Needs kubectl, promtool + prometheus (Debian package prometheus), node + npm,
# curl; docker-compose (Debian) is used when present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# run NAME CMD...: one check, its output shown only when it fails.
run() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name"; printf '%s\n' "$out" | sed 's/^/     /'; fi
}
# expect_fail NAME PATTERN CMD...: CMD must fail, and say PATTERN.
expect_fail() {
  local name=$1 pattern=$2 out; shift 2
  if out=$("$@" 2>&1); then
    fail "negative: $name: the check passed"
  elif grep -qE -- "$pattern" <<<"$out"; then
    ok "negative: $name: rejected ($(grep -m1 -oE -- "$pattern.{0,60}" <<<"$out"))"
  else
    fail "negative: $name: failed without saying /$pattern/"; printf '%s\n' "$out" | sed 's/^/     /'
  fi
}

for tool in kubectl promtool prometheus node npm curl; do
  command -v "$tool" >/dev/null || { echo "check-deploy: $tool not found" >&2; exit 1; }
done
# The overlays' `labels: includeTemplates` needs the kustomize of kubectl
# 1.25 or later; an older one (bookworm's kubernetes-client is 1.20) would
# fail later, on the first overlay, with a less clear error.
kubectl_minor=$({ kubectl version --client -o json 2>/dev/null || true; } |
  sed -nE 's/^ *"minor": "([0-9]+).*/\1/p' | head -1)
if [[ -z $kubectl_minor || $kubectl_minor -lt 25 ]]; then
  echo "check-deploy: kubectl 1.25 or later needed, found 1.${kubectl_minor:-?} (see README)" >&2
  exit 1
fi
[[ ${1:-} == --tools ]] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npm dependencies, pinned by package-lock.json; reinstalled when it changes.
stamp="$here/node_modules/.lock-sha256"
lock_sha=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$lock_sha" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sha" >"$stamp"
fi

echo "== Prometheus"
run "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
run "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
run "promtool test rules tests/deploy/alerts_test.yml" promtool test rules tests/deploy/alerts_test.yml

echo "== docker-compose.yml"
run "compose-spec schema + wiring (check-compose.mjs)" node "$here/check-compose.mjs" docker-compose.yml
if command -v docker-compose >/dev/null; then
  run "docker-compose config" docker-compose -f docker-compose.yml config -q
  run "docker-compose --profile load config" docker-compose -f docker-compose.yml --profile load config -q
elif docker compose version >/dev/null 2>&1; then
  run "docker compose config" docker compose -f docker-compose.yml config -q
  run "docker compose --profile load config" docker compose -f docker-compose.yml --profile load config -q
elif command -v podman-compose >/dev/null; then
  run "podman-compose config" podman-compose -f docker-compose.yml config
else
  echo "skip no docker-compose / docker compose / podman-compose: the schema check above stands alone"
fi

echo "== Kubernetes (kustomize)"
rendered=()
for target in base overlays/dev overlays/prod; do
  name=$(basename "$target")
  if kubectl kustomize "deploy/k8s/$target" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
    ok "kubectl kustomize deploy/k8s/$target ($(grep -c '^kind:' "$tmp/$name.yaml") objects)"
    rendered+=("$name")
  else
    fail "kubectl kustomize deploy/k8s/$target"; sed 's/^/     /' "$tmp/$name.err"
  fi
done
if [[ ${#rendered[@]} -gt 0 ]]; then
  files=()
  for name in "${rendered[@]}"; do files+=("$tmp/$name.yaml"); done
  run "schemas, strict (validate-k8s.mjs: ${rendered[*]})" node "$here/validate-k8s.mjs" "${files[@]}"
  for name in "${rendered[@]}"; do
    run "deployment rules $name (policy-k8s.mjs)" node "$here/policy-k8s.mjs" "$tmp/$name.yaml" --overlay "$name" \
      --alerts deploy/prometheus/alerts.yml --write-rules "$tmp/$name-rules.yml"
    # Only prod has the prometheus-operator's objects (base and dev apply to
    # a cluster without its CRDs; policy-k8s.mjs checks that they do).
    if [[ -f $tmp/$name-rules.yml ]]; then
      run "promtool check rules on the PrometheusRule of $name" promtool check rules "$tmp/$name-rules.yml"
      # ComputeAbsent, scoped to the overlay's namespace (absent_rule_test.yml).
      sed "s|RULES|$tmp/$name-rules.yml|" "$here/absent_rule_test.yml" >"$tmp/$name-absent_test.yml"
      run "promtool test rules: ComputeAbsent of $name sees its own namespace only" \
        promtool test rules "$tmp/$name-absent_test.yml"
    elif [[ $name == prod ]]; then
      fail "no PrometheusRule groups extracted from $name"
    fi
  done
fi

echo "== negative tests"
if [[ -f $tmp/prod.yaml ]]; then
  # The KEDA query as rendered, on a known load (keda_query_test.yml).
  query=$(cd "$here" && node -e '
    const YAML = require("yaml");
    for (const d of YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8"))) {
      const o = d.toJS();
      if (o?.kind === "ScaledObject") console.log(o.spec.triggers.find((t) => t.type === "prometheus")?.metadata?.query ?? "");
    }' "$tmp/prod.yaml") || query=
  if [[ -n $query ]]; then
    KEDA_QUERY=${query//\'/\'\'} perl -pe "s/KEDA_QUERY/\$ENV{KEDA_QUERY}/" "$here/keda_query_test.yml" >"$tmp/keda_query_test.yml"
    run "promtool test rules: the KEDA query on a known load" promtool test rules "$tmp/keda_query_test.yml"
  else
    fail "the prod render has no ScaledObject with a prometheus trigger's query"
  fi
  neg=$tmp/neg
  mkdir -p "$neg"
  m() { node "$here/mutate.mjs" "$tmp/prod.yaml" "$neg/$1.yaml" "${@:2}"; }
  m replicaz Deployment rename spec.revisionHistoryLimit replicaz
  m probe Deployment rename spec.template.spec.containers.0.readinessProbe.grpc.service servise
  m keda ScaledObject rename spec.triggers.0.metricType metricTyp
  m rule PrometheusRule rename spec.groups.0.rules.0.for fore
  m type Deployment set spec.replicas '"three"'
  m kind Deployment set kind '"Deploymnt"'
  declare -A want=(
    [replicaz]='unknown field spec\.replicaz'
    [probe]='unknown field spec\.template\.spec\.containers\[0\]\.readinessProbe\.grpc\.servise'
    [keda]='unknown field spec\.triggers\[0\]\.metricTyp'
    [rule]='unknown field spec\.groups\[0\]\.rules\[0\]\.fore'
    [type]='/spec/replicas must be integer'
    [kind]='no schema for apiVersion apps/v1 kind Deploymnt'
  )
  # One run over all six files (one TypeScript program); each file must fail
  # for its own reason.
  cases=(replicaz probe keda rule type kind)
  negfiles=()
  for case in "${cases[@]}"; do negfiles+=("$neg/$case.yaml"); done
  if out=$(node "$here/validate-k8s.mjs" "${negfiles[@]}" 2>&1); then
    fail "negative: validate-k8s passed broken manifests"
  fi
  for case in "${cases[@]}"; do
    if line=$(grep -m1 -E -- "^FAIL $neg/$case\.yaml#[0-9]+ .*${want[$case]}" <<<"$out"); then
      ok "negative: validate-k8s on $case: rejected (${line#*: })"
    else
      fail "negative: validate-k8s on $case: not rejected for /${want[$case]}/"
      grep -F -- "$neg/$case.yaml" <<<"$out" | sed 's/^/     /' || true
    fi
  done
  m grace Deployment set spec.template.spec.terminationGracePeriodSeconds 20
  expect_fail "policy-k8s on a grace period shorter than preStop + drain" 'terminationGracePeriodSeconds \(20\)' \
    node "$here/policy-k8s.mjs" "$neg/grace.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  # Longer than preStop (5) + drain (70), shorter than the server's exit
  # after the drain (+ 1 + 10): the kill could come after a good drain.
  m gracetight Deployment set spec.template.spec.terminationGracePeriodSeconds 80
  expect_fail "policy-k8s on a grace period without the exit after the drain" 'terminationGracePeriodSeconds \(80\)' \
    node "$here/policy-k8s.mjs" "$neg/gracetight.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  # A drain shorter than the longest call cuts such calls on a scale-down.
  m drainshort ConfigMap set data.COMPUTE_DRAIN_TIMEOUT '"20s"'
  expect_fail "policy-k8s on a drain shorter than the longest call" 'COMPUTE_DRAIN_TIMEOUT \(20s\) lets the longest call' \
    node "$here/policy-k8s.mjs" "$neg/drainshort.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  # A Service clients call that keeps not-ready pods would send calls to a
  # draining pod (only the scrape's own Service may).
  m notready Service set spec.publishNotReadyAddresses true
  expect_fail "policy-k8s on a client Service that keeps draining pods" 'Service compute leaves not-ready' \
    node "$here/policy-k8s.mjs" "$neg/notready.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m memtight Deployment set spec.template.spec.containers.0.resources.limits.memory '"512Mi"'
  expect_fail "policy-k8s on a memory limit the byte budget does not fit" 'COMPUTE_MAX_INFLIGHT_BYTES \(750Mi' \
    node "$here/policy-k8s.mjs" "$neg/memtight.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m drift PrometheusRule set spec.groups.0.rules.0.for '"1m"'
  expect_fail "policy-k8s on a PrometheusRule that differs from alerts.yml" 'PrometheusRule groups equal' \
    node "$here/policy-k8s.mjs" "$neg/drift.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m pdbwide PodDisruptionBudget set spec.maxUnavailable '"25%"'
  expect_fail "policy-k8s on a disruption budget that lets several pods go at once" 'lets one pod go at a time' \
    node "$here/policy-k8s.mjs" "$neg/pdbwide.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m devimage Deployment set spec.template.spec.containers.0.image '"compute:dev"'
  expect_fail "policy-k8s on prod shipping the local dev image" 'prod: image from a registry' \
    node "$here/policy-k8s.mjs" "$neg/devimage.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m memrequest Deployment set spec.template.spec.containers.0.resources.requests.memory '"256Mi"'
  expect_fail "policy-k8s on a memory request below the limit" 'memory request = limit' \
    node "$here/policy-k8s.mjs" "$neg/memrequest.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
  m kedans ScaledObject set spec.triggers.0.metadata.query '"sum(compute_pool_queue_depth{job=\"compute\", namespace=\"NAMESPACE\"})"'
  expect_fail "policy-k8s on a KEDA query left on the placeholder namespace" "selects the overlay's namespace" \
    node "$here/policy-k8s.mjs" "$neg/kedans.yaml" --overlay prod --alerts deploy/prometheus/alerts.yml
else
  fail "negative tests need the prod render"
fi
if [[ -f $tmp/dev.yaml ]]; then
  # dev with the operator component: no longer applies to a plain cluster.
  cat "$tmp/dev.yaml" deploy/k8s/components/prometheus-operator/servicemonitor.yaml >"$tmp/dev-crd.yaml"
  expect_fail "policy-k8s on dev with a ServiceMonitor" 'dev: only built-in kinds' \
    node "$here/policy-k8s.mjs" "$tmp/dev-crd.yaml" --overlay dev --alerts deploy/prometheus/alerts.yml
fi
sed 's/"${BIND_ADDRESS:-127.0.0.1}:3000:3000"/"3000:3000"/' docker-compose.yml >"$tmp/open-compose.yml"
expect_fail "check-compose on a port published on every interface" 'is published on 127.0.0.1' \
  node "$here/check-compose.mjs" "$tmp/open-compose.yml" "$root"
sed 's/COMPUTE_MAX_INFLIGHT_BYTES: "350Mi"/COMPUTE_MAX_INFLIGHT_BYTES: "512Mi"/' docker-compose.yml >"$tmp/whole-budget-compose.yml"
expect_fail "check-compose on a byte budget of all of mem_limit" 'COMPUTE_MAX_INFLIGHT_BYTES \(512Mi' \
  node "$here/check-compose.mjs" "$tmp/whole-budget-compose.yml" "$root"
sed 's/^    stop_grace_period: .*/    stop_grace_period: 25s/' docker-compose.yml >"$tmp/short-grace-compose.yml"
expect_fail "check-compose on a stop_grace_period without the exit after the drain" 'stop_grace_period \(25s\)' \
  node "$here/check-compose.mjs" "$tmp/short-grace-compose.yml" "$root"
sed 's/^      COMPUTE_DRAIN_TIMEOUT: .*/      COMPUTE_DRAIN_TIMEOUT: 20s/' docker-compose.yml >"$tmp/short-drain-compose.yml"
expect_fail "check-compose on a drain shorter than the longest call" 'COMPUTE_DRAIN_TIMEOUT \(20s\) lets the longest call' \
  node "$here/check-compose.mjs" "$tmp/short-drain-compose.yml" "$root"
sed 's/^    read_only: true/    read_onlyy: true/' docker-compose.yml >"$tmp/bad-compose.yml"
expect_fail "check-compose on a misspelled key" 'must NOT have additional properties \(read_onlyy\)' \
  node "$here/check-compose.mjs" "$tmp/bad-compose.yml" "$root"

echo "== Grafana"
run "PromQL on a real Prometheus${COMPUTE_SERVER:+, scraping $COMPUTE_SERVER} (dashboard_promql.sh)" \
  timeout 120 "$here/dashboard_promql.sh"

echo "check-deploy: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
