// TenantMetrics: per-tenant series with a hard cap on their number, for
// compute-server --tenant_metrics=N (off by default):
//   compute_tenant_tasks_total{tenant,outcome}   counter
//   compute_tenant_rejected_total{tenant}        counter (refused at admission,
//                                                or displaced from the queue)
//   compute_tenant_run_seconds_total{tenant}     counter (worker time used)
//
// Why capped: a tenant is a client certificate, a header or a peer address,
// so their number is the clients' to choose; one series each would let any
// client grow the server's memory and Prometheus's without bound.
//
// Which tenants get series: at most `max_tenants`, those that sent the most
// estimated cost (TaskOptions::cost of every call, accepted or refused,
// a refused one at most kRefusalScore) recently; every other tenant's calls
// count under tenant="other". A
// tenant's score is the cost it sent, halved every `rank_interval`, so it
// follows recent demand. While there is a free place, the next new tenant
// takes it. Once per rank_interval (on the first call after it passes) the
// places are re-dealt: a named tenant gives its place up only to one that
// scores more than twice as much, so two similar tenants do not flap.
//   - A tenant that loses its place loses its series (Prometheus sees them
//     go stale); one that gains a place starts its series from zero. So the
//     `other` series only grow, and rate() over any series stays right.
//   - Calls of a tenant before it has a place count under `other`.
//   - Every series exists for `other` from the start.
//   - A tenant's name is its label value, with U+FFFD for each byte of it
//     that is not well-formed UTF-8: Prometheus refuses a whole scrape for
//     one such label value. (The service's tenants are printable ASCII.)
//
// Memory: scores for at most kTrackedPerTenant * max_tenants + kTrackedExtra
// tenants; when full, the lower scored half of the unnamed ones are
// forgotten to make room, so a flood of one-call tenants cannot grow the
// map, and costs O(1) a tenant (amortised).
//
// Thread-safety: all methods may be called concurrently (one mutex: a map
// lookup per call, and only when the flag is on).
#ifndef COMPUTE_SERVER_METRICS_TENANT_METRICS_H_
#define COMPUTE_SERVER_METRICS_TENANT_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/pool/clock.h"
#include "server/pool/sync.h"
#include "server/service/call_observer.h"

namespace compute::metrics {

class TenantMetrics final : public service::TenantObserver,
                            public prometheus::Collectable {
 public:
  static constexpr size_t kMaxTenants = 1000;  // the flag's upper bound
  static constexpr size_t kTrackedPerTenant = 16;
  static constexpr size_t kTrackedExtra = 64;
  // The label value of everyone without a place.
  static constexpr std::string_view kOther = "other";
  // What a refused call adds to its tenant's score at most. It used no
  // worker: counted at its whole estimate, a client's refused 60 s calls,
  // one per name every few seconds, took every place from the tenants
  // using the workers (a review's run), and a flood of refusals still
  // scores.
  static constexpr absl::Duration kRefusalScore = absl::Milliseconds(1);

  // 1 <= max_tenants <= kMaxTenants; `clock` (which must outlive this)
  // times the re-ranking.
  TenantMetrics(size_t max_tenants, const Clock& clock,
                absl::Duration rank_interval = absl::Seconds(10));

  void OnTenantTask(std::string_view tenant, TaskOutcome outcome,
                    absl::Duration cost, absl::Duration run_time) override;
  void OnTenantRejected(std::string_view tenant, absl::Duration cost) override;

  std::vector<prometheus::MetricFamily> Collect() const override;

  // The tenants with their own series now; for tests.
  std::vector<std::string> NamedTenants() const;
  // Times the map was full and made room; for tests.
  size_t forget_passes() const;

 private:
  struct Counts {
    std::array<uint64_t, kNumTaskOutcomes> tasks{};
    uint64_t rejected = 0;
    double run_seconds = 0;
  };
  struct Tenant {
    double score = 0;  // cost sent, seconds, decayed
    bool named = false;
    Counts counts;  // only while named
  };

  // The counts `tenant`'s call goes to (its own, or other's), after adding
  // `cost` to its score.
  Counts& Account(std::string_view tenant, absl::Duration cost)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Tenant* Track(std::string_view tenant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RerankIfDue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetWeakerUnnamed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_tenants_;
  const size_t max_tracked_;
  const Clock& clock_;
  const absl::Duration rank_interval_;

  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Tenant> tenants_ ABSL_GUARDED_BY(mu_);
  size_t named_ ABSL_GUARDED_BY(mu_) = 0;
  size_t forget_passes_ ABSL_GUARDED_BY(mu_) = 0;
  Counts other_ ABSL_GUARDED_BY(mu_);
  absl::Time next_rank_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_TENANT_METRICS_H_
