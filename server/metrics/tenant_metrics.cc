#include "server/metrics/tenant_metrics.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "server/base/string_view.h"
#include "server/metrics/families.h"

namespace compute::metrics {

using prometheus::MetricType;

namespace {

// The length of the well-formed UTF-8 sequence `s` starts with, or 0 (RFC
// 3629 table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF;
// what Prometheus's utf8.ValidString takes).
size_t Utf8Length(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char first = byte(0);
  if (first < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
  if (first >= 0xc2 && first <= 0xdf) {
    n = 2;
  } else if (first >= 0xe0 && first <= 0xef) {
    n = 3;
    if (first == 0xe0) lo = 0xa0;
    if (first == 0xed) hi = 0x9f;
  } else if (first >= 0xf0 && first <= 0xf4) {
    n = 4;
    if (first == 0xf0) lo = 0x90;
    if (first == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return n;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t n; !s.empty(); s.remove_prefix(n)) {
    if ((n = Utf8Length(s)) == 0) return false;
  }
  return true;
}

// `s` with each byte that is not part of a well-formed sequence replaced by
// U+FFFD.
std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  while (!s.empty()) {
    size_t n = Utf8Length(s);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      n = 1;
    } else {
      out.append(s.data(), n);
    }
    s.remove_prefix(n);
  }
  return out;
}

}  // namespace

TenantMetrics::TenantMetrics(size_t max_tenants, const Clock& clock,
                             absl::Duration rank_interval)
    : max_tenants_(std::clamp<size_t>(max_tenants, 1, kMaxTenants)),
      max_tracked_(kTrackedPerTenant * max_tenants_ + kTrackedExtra),
      clock_(clock),
      rank_interval_(rank_interval),
      next_rank_(clock.Now() + rank_interval) {}

void TenantMetrics::OnTenantTask(std::string_view tenant, TaskOutcome outcome,
                                 absl::Duration cost, absl::Duration run_time) {
  MutexLock lock(&mu_);
  Counts& counts = Account(tenant, cost);
  ++counts.tasks[static_cast<size_t>(outcome)];
  counts.run_seconds += absl::ToDoubleSeconds(run_time);
}

void TenantMetrics::OnTenantRejected(std::string_view tenant,
                                     absl::Duration cost) {
  MutexLock lock(&mu_);
  ++Account(tenant, std::min(cost, kRefusalScore)).rejected;
}

TenantMetrics::Counts& TenantMetrics::Account(std::string_view tenant,
                                              absl::Duration cost) {
  RerankIfDue();
  // A tenant becomes a label value, and Prometheus refuses a scrape with
  // one that is not UTF-8: every series of the server lost. The service
  // lets only printable ASCII through; this is for any other way in. Keyed
  // by the name as written, two names that differ only in bad bytes share
  // a series (never two series with one label set).
  std::string valid;
  if (!IsValidUtf8(tenant)) {
    valid = ToValidUtf8(tenant);
    tenant = valid;
  }
  // A tenant that calls itself "other" is everyone else.
  if (tenant == kOther) return other_;
  Tenant& t = *Track(tenant);
  t.score += std::max(0.0, absl::ToDoubleSeconds(cost));
  if (!t.named && named_ < max_tenants_) {
    t.named = true;
    ++named_;
  }
  return t.named ? t.counts : other_;
}

TenantMetrics::Tenant* TenantMetrics::Track(std::string_view tenant) {
  auto it = tenants_.find(AbslView(tenant));
  if (it != tenants_.end()) return &it->second;
  if (tenants_.size() >= max_tracked_) ForgetWeakerUnnamed();
  return &tenants_.try_emplace(std::string(tenant)).first->second;
}

// Full: room for newcomers. The weaker half of the unnamed tenants' scores
// go in one pass (there is at least one unnamed tenant: max_tracked_ >
// max_tenants_ >= named_). One pass per newcomer, for the single weakest,
// cost 74 us a call at --tenant_metrics=1000 when every call came from a
// new tenant (a client changing its name or address each time); now a
// pass frees about half the map, O(1) a newcomer amortised.
void TenantMetrics::ForgetWeakerUnnamed() {
  ++forget_passes_;
  std::vector<double> scores;
  for (const auto& [name, t] : tenants_) {
    if (!t.named) scores.push_back(t.score);
  }
  const size_t forget = std::max<size_t>(1, scores.size() / 2);
  auto cut = scores.begin() + static_cast<ptrdiff_t>(forget - 1);
  std::nth_element(scores.begin(), cut, scores.end());
  const double at_most = *cut;  // `forget` scores are at most this
  size_t forgotten = 0;
  for (auto it = tenants_.begin();
       it != tenants_.end() && forgotten < forget;) {
    if (!it->second.named && it->second.score <= at_most) {
      tenants_.erase(it++);
      ++forgotten;
    } else {
      ++it;
    }
  }
}

size_t TenantMetrics::forget_passes() const {
  MutexLock lock(&mu_);
  return forget_passes_;
}

void TenantMetrics::RerankIfDue() {
  const absl::Time now = clock_.Now();
  if (now < next_rank_) return;
  next_rank_ = now + rank_interval_;
  std::vector<std::pair<double, Tenant*>> named;
  std::vector<std::pair<double, Tenant*>> unnamed;
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    Tenant& t = it->second;
    t.score /= 2;
    // Forget unnamed tenants that have gone quiet (a nanosecond of cost).
    if (!t.named && t.score < 1e-9) {
      tenants_.erase(it++);
      continue;
    }
    (t.named ? named : unnamed).emplace_back(t.score, &t);
    ++it;
  }
  // The weakest named first, the strongest unnamed first.
  std::sort(named.begin(), named.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::sort(unnamed.begin(), unnamed.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  size_t weak = 0;
  for (const auto& [score, tenant] : unnamed) {
    if (named_ < max_tenants_) {
      tenant->named = true;
      ++named_;
      continue;
    }
    if (weak == named.size() || score <= 2 * named[weak].first) break;
    Tenant* loser = named[weak++].second;
    loser->named = false;
    loser->counts = Counts();
    tenant->named = true;
  }
}

std::vector<std::string> TenantMetrics::NamedTenants() const {
  MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, t] : tenants_) {
    if (t.named) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<prometheus::MetricFamily> TenantMetrics::Collect() const {
  auto tasks = MakeFamily(
      "compute_tenant_tasks_total",
      "Tasks the worker pool completed, by tenant and outcome: the top "
      "tenants by cost sent (--tenant_metrics), everyone else as \"other\".",
      MetricType::Counter);
  auto rejected = MakeFamily("compute_tenant_rejected_total",
                             "Calls the scheduler refused, at admission or by "
                             "displacing them from the queue, by tenant (as "
                             "compute_tenant_tasks_total).",
                             MetricType::Counter);
  auto run = MakeFamily("compute_tenant_run_seconds_total",
                        "Worker time the tenant's tasks ran, seconds (as "
                        "compute_tenant_tasks_total).",
                        MetricType::Counter);
  auto add = [&](const std::string& name, const Counts& c) {
    for (int o = 0; o < kNumTaskOutcomes; ++o) {
      AddValue(tasks,
               {{"outcome",
                 std::string(TaskOutcomeName(static_cast<TaskOutcome>(o)))},
                {"tenant", name}},
               static_cast<double>(c.tasks[o]));
    }
    AddValue(rejected, {{"tenant", name}}, static_cast<double>(c.rejected));
    AddValue(run, {{"tenant", name}}, c.run_seconds);
  };
  {
    MutexLock lock(&mu_);
    add(std::string(kOther), other_);
    for (const auto& [name, t] : tenants_) {
      if (t.named) add(name, t.counts);
    }
  }
  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(tasks));
  families.push_back(std::move(rejected));
  families.push_back(std::move(run));
  return families;
}

}  // namespace compute::metrics
