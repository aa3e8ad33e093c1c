#include "server/pool/pool_options.h"

#include "absl/strings/str_cat.h"

namespace compute {

absl::Status ValidatePoolOptions(const PoolOptions& options) {
  if (options.max_workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_workers must be >= 1 (got ", options.max_workers, ")"));
  }
  if (options.min_workers < 1 || options.min_workers > options.max_workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_workers must be between 1 and max_workers (",
                     options.max_workers, ") (got ", options.min_workers, ")"));
  }
  if (options.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("idle_timeout must be > 0");
  }
  if (options.max_inflight_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_inflight_bytes must be >= 0 (got ",
                     options.max_inflight_bytes, ")"));
  }
  if (options.target_queue_wait <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("target_queue_wait must be > 0");
  }
  if (options.overload_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("overload_interval must be > 0");
  }
  if (options.inline_max_cost < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("inline_max_cost must be >= 0");
  }
  return absl::OkStatus();
}

}  // namespace compute
