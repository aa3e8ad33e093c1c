// Client-side test helpers: request builders and a call in flight that can
// be awaited and cancelled. No server code, so tests of the real binary
// (which must not link gRPC's reflection plugin) can use them too.
#ifndef COMPUTE_TESTS_INTEGRATION_CALLS_H_
#define COMPUTE_TESTS_INTEGRATION_CALLS_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/v1/compute.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"

namespace compute::testing {

inline constexpr absl::Duration kWait = absl::Seconds(30);

inline google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(
      absl::ToInt64Nanoseconds(d));
}

inline compute::v1::RunRequest Spin(absl::Duration d) {
  compute::v1::RunRequest r;
  *r.mutable_spin()->mutable_duration() = ToProtoDuration(d);
  return r;
}

// A sleep: holds a worker for `d` without using a CPU (a test that only
// needs busy workers leaves the cores to the tests running beside it).
inline compute::v1::RunRequest Sleep(absl::Duration d) {
  compute::v1::RunRequest r;
  *r.mutable_sleep()->mutable_duration() = ToProtoDuration(d);
  return r;
}

inline compute::v1::RunRequest Fib(uint32_t n) {
  compute::v1::RunRequest r;
  r.mutable_fib()->set_n(n);
  return r;
}

// One asynchronous call (callback API) that can be awaited and cancelled.
class AsyncCall {
 public:
  // `metadata`: request metadata, e.g. {{"compute-tenant", "a"}}.
  AsyncCall(
      compute::v1::Compute::Stub& stub, compute::v1::RunRequest request,
      absl::Duration deadline = absl::InfiniteDuration(),
      const std::vector<std::pair<std::string, std::string>>& metadata = {})
      : request_(std::move(request)) {
    if (deadline != absl::InfiniteDuration()) {
      context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    }
    for (const auto& [key, value] : metadata) {
      context_.AddMetadata(key, value);
    }
    stub.async()->Run(&context_, &request_, &response_, [this](grpc::Status s) {
      MutexLock lock(&mu_);
      status_ = std::move(s);
      done_ = true;
      cv_.SignalAll();
    });
  }
  ~AsyncCall() {
    context_.TryCancel();
    Wait();
    // Freeing the call while gRPC may still run its callback would be a
    // use after free, a crash far from its cause: stop here, saying why.
    if (!done()) {
      std::fprintf(stderr, "AsyncCall: a cancelled call did not finish\n");
      std::abort();
    }
  }
  // The final status; fails the test on timeout.
  grpc::Status Wait() {
    absl::Time deadline = MonotonicNow() + kWait;
    MutexLock lock(&mu_);
    while (!done_) {
      if (cv_.WaitWithDeadline(&mu_, deadline) && !done_) {
        ADD_FAILURE() << "call did not finish";
        return grpc::Status(grpc::StatusCode::UNKNOWN, "test timeout");
      }
    }
    return status_;
  }
  bool done() {
    MutexLock lock(&mu_);
    return done_;
  }
  void Cancel() { context_.TryCancel(); }
  const compute::v1::RunResponse& response() const { return response_; }
  grpc::ClientContext& context() { return context_; }

 private:
  grpc::ClientContext context_;
  compute::v1::RunRequest request_;
  compute::v1::RunResponse response_;
  Mutex mu_;
  CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_INTEGRATION_CALLS_H_
