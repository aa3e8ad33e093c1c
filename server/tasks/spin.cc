// spin: a steady-clock busy loop. std::chrono::steady_clock (not absl::Now) so
// that a wall-clock step (NTP, a VM migration) cannot stretch or cut a spin.
#include "server/tasks/spin.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace compute::tasks {
namespace {

constexpr int32_t kMaxNanos = 999'999'999;

// "1.5s", "-0.000000001s", "60s": seconds with the nanos shown exactly, for
// messages (absl::FormatDuration would say "1m0.000000001s").
std::string FormatSeconds(const google::protobuf::Duration& d) {
  const bool negative = d.seconds() < 0 || d.nanos() < 0;
  // Unsigned negation, so that INT64_MIN is printed rather than overflowing.
  const uint64_t seconds = d.seconds() < 0
                               ? 0 - static_cast<uint64_t>(d.seconds())
                               : static_cast<uint64_t>(d.seconds());
  const int32_t nanos = std::abs(d.nanos());
  std::string out = absl::StrCat(negative ? "-" : "", seconds);
  if (nanos != 0) {
    std::string frac = absl::StrFormat("%09d", nanos);
    frac.erase(frac.find_last_not_of('0') + 1);
    absl::StrAppend(&out, ".", frac);
  }
  out += "s";
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

}  // namespace

absl::Status ValidateSpin(const compute::v1::SpinRequest& request) {
  const google::protobuf::Duration& d = request.duration();
  if (d.nanos() > kMaxNanos || d.nanos() < -kMaxNanos) {
    return absl::InvalidArgumentError(
        absl::StrCat("spin.duration.nanos must be within [-", kMaxNanos, ", ",
                     kMaxNanos, "] (got ", d.nanos(), ")"));
  }
  if ((d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spin.duration is malformed: seconds (", d.seconds(), ") and nanos (",
        d.nanos(), ") must not have opposite signs"));
  }
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spin.duration must be >= 0s (got ", FormatSeconds(d), ")"));
  }
  if (FromProto(d) > kMaxSpinDuration) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spin.duration must be <= ", absl::ToInt64Seconds(kMaxSpinDuration),
        "s (got ", FormatSeconds(d), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> Spin(absl::Duration duration,
                                    const CancelToken& cancel) {
  using Clock = std::chrono::steady_clock;
  // Compared as elapsed time rather than as an end time point, so that even
  // absl::InfiniteDuration() (saturated to the largest count) cannot overflow.
  const std::chrono::nanoseconds target = absl::ToChronoNanoseconds(duration);
  const Clock::time_point start = Clock::now();
  Clock::time_point now = start;
  while (now - start < target) {
    if (cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("spin stopped after ",
                       absl::FormatDuration(absl::FromChrono(now - start))));
    }
    now = Clock::now();
  }
  return absl::FromChrono(now - start);
}

absl::Status ValidateSpinTask(const compute::v1::RunRequest& request) {
  return ValidateSpin(request.spin());
}

absl::Status RunSpinTask(const compute::v1::RunRequest& request,
                         const CancelToken& cancel,
                         compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateSpin(request.spin()); !status.ok()) {
    return status;
  }
  absl::StatusOr<absl::Duration> spun =
      Spin(FromProto(request.spin().duration()), cancel);
  if (!spun.ok()) return spun.status();
  ToProto(*spun, response->mutable_spin()->mutable_spun());
  return absl::OkStatus();
}

double SpinCostUnits(const compute::v1::RunRequest& request) {
  // Validity makes the duration >= 0; max() only guards a caller that skipped
  // validation, since a negative cost would break the scheduler's sums.
  const double seconds =
      absl::ToDoubleSeconds(FromProto(request.spin().duration()));
  return std::max(seconds, 0.0) + kSpinFixedCostSeconds;
}

int64_t SpinResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kSpinResponseBytes;
}

}  // namespace compute::tasks
