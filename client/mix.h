// `compute-client bench --mix`: several loads at once, each with its own
// tenant, priority and rate, measured apart, to see fair sharing and
// priorities from the clients' side.
//
//   --mix "greedy:rate=4000,modest:rate=40,ops:rate=100:priority=critical"
//
// Entries are separated by ',', fields of an entry by ':'. The first field
// is the entry's name; the others are key=value:
//   rate=R          open loop, R calls per second (default: closed loop)
//   concurrency=N   closed loop, N calls in flight (default: --concurrency)
//   priority=P      compute-priority: critical, default or sheddable
//   tenant=T        compute-tenant (default: the entry's name)
// Each entry runs on its own connections (--connections each), with the
// same task, deadline and duration.
#ifndef COMPUTE_CLIENT_MIX_H_
#define COMPUTE_CLIENT_MIX_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compute::client {

// The lowest open-loop rate, one call in 1000 s: slower, the load
// generator's schedule (nanoseconds from the start) would overflow 64 bits.
// Here, not in load.h, so that a --mix is checked without gRPC.
inline constexpr double kMinRate = 0.001;

struct MixEntry {
  std::string name;
  std::string tenant;
  std::string priority;  // empty: not sent (the server's default)
  double rate = 0;       // > 0: open loop
  int concurrency = 0;   // closed loop; 0: the bench's --concurrency
};

// The server's limit on compute-tenant (kMaxTenantBytes in
// server/service/compute_service.cc, which the client does not link).
inline constexpr size_t kMaxTenantBytes = 128;

// InvalidArgument naming `flag` unless `tenant` is at most kMaxTenantBytes
// of printable ASCII (0x20-0x7E): gRPC takes nothing else in a metadata
// value, and aborts the process (an "API misuse" assertion) when given it.
absl::Status CheckTenant(std::string_view flag, std::string_view tenant);

// InvalidArgument naming the entry and the field for a bad spec; at most
// kMaxMixEntries entries, names unique, each entry's name and tenant as
// CheckTenant takes them (the name is the default tenant, and printed).
inline constexpr int kMaxMixEntries = 16;
absl::StatusOr<std::vector<MixEntry>> ParseMix(const std::string& spec);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_MIX_H_
