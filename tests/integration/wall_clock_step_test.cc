// A step of the wall clock (NTP, a VM resumed, `date -s`) while calls are
// queued and running must not expire them: the server judges deadlines on
// the monotonic clock (server/pool/sync.h, MonotonicNow), carrying over what
// is left of gRPC's own deadline as each call arrives.
//
// The wall clock is stepped for this process alone (tests/realtime_step.h).
// The binary also defines pthread_cond_timedwait, so that a wait on a
// CLOCK_REALTIME condition variable ends when the stepped clock passes its
// deadline, as the kernel ends it on a real step.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <thread>

#include "absl/time/time.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "server/tasks/registry.h"
#include "tests/integration/calls.h"
#include "tests/integration/test_server.h"
#include "tests/realtime_step.h"
#include "tests/wait_until.h"

namespace {
int64_t Nanos(const timespec& ts) {
  return ts.tv_sec * int64_t{1000000000} + ts.tv_nsec;
}
}  // namespace

// Waits in slices of 5 ms, each judged against the stepped clock, when the
// condition variable waits on CLOCK_REALTIME (glibc keeps its clock in bit
// 1 of __wrefs: set for CLOCK_MONOTONIC); other waits pass through.
extern "C" int pthread_cond_timedwait(pthread_cond_t* cv, pthread_mutex_t* mu,
                                      const timespec* deadline) {
  using Wait = int (*)(pthread_cond_t*, pthread_mutex_t*, const timespec*);
  // The current version on x86-64 (GLIBC_2.3.2); elsewhere the default.
  static const Wait real_wait = [] {
    void* f = dlvsym(RTLD_NEXT, "pthread_cond_timedwait", "GLIBC_2.3.2");
    if (f == nullptr) f = dlsym(RTLD_NEXT, "pthread_cond_timedwait");
    return reinterpret_cast<Wait>(f);
  }();
  if ((cv->__data.__wrefs & 2) != 0) return real_wait(cv, mu, deadline);
  for (;;) {
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);  // stepped
    const int64_t left = Nanos(*deadline) - Nanos(now);
    if (left <= 0) return ETIMEDOUT;
    timespec unstepped;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &unstepped);
    const int64_t until = Nanos(unstepped) + std::min<int64_t>(left, 5'000'000);
    const timespec slice{until / 1000000000, until % 1000000000};
    const int result = real_wait(cv, mu, &slice);
    if (result != ETIMEDOUT) return result;
  }
}

namespace compute::testing {
namespace {

constexpr int64_t kHourNs = int64_t{3600} * 1000000000;

// MonotonicNow does not move with the wall clock, and a timed wait begun
// before a step back ends on time. Before, such a wait (the memory
// returner's tick, the pool's deadline timer) slept for the hour as well.
TEST(WallClockStepTest, ATimedWaitEndsOnTimeWhenTheClockStepsBack) {
  const absl::Time before = MonotonicNow();
  g_realtime_step_ns.store(-kHourNs);
  EXPECT_LT(absl::AbsDuration(MonotonicNow() - before), absl::Minutes(1));
  g_realtime_step_ns.store(0);

  Mutex mu;
  CondVar cv;
  bool waiting = false;
  std::promise<void> woke;
  std::thread waiter([&] {
    MutexLock lock(&mu);
    waiting = true;
    // Long enough that the step below lands while it waits (with 200 ms, a
    // test thread held up that long found the wait over, and passed
    // whatever the wait did with the step); short of the 10 s bound.
    while (!cv.WaitWithTimeout(&mu, absl::Seconds(2))) {
    }
    woke.set_value();
  });
  // Seen under the lock, which the waiter holds until it waits.
  ASSERT_TRUE(WaitUntil([&] {
    MutexLock lock(&mu);
    return waiting;
  }));
  g_realtime_step_ns.store(-kHourNs);
  EXPECT_EQ(woke.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  g_realtime_step_ns.store(0);  // lets a waiter that overslept finish
  waiter.join();
}

// The running call's spin (400 ms) starts only once the test opens the
// gate, or its call is stopped: the call stays running, and the ones behind
// it queued, through every step below however slow the machine (a bare
// 400 ms spin could end first: the queued call and then the 50 ms one ran,
// and the 50 ms one was answered OK).
std::atomic<bool> running_gate_open{false};

absl::Status RunningSpinWaitsForTheGate(const tasks::TaskKind& kind,
                                        const compute::v1::RunRequest& request,
                                        tasks::Payload payload,
                                        const CancelToken& cancel,
                                        compute::v1::RunResponse* response) {
  if (request.has_spin() && request.spin().duration().nanos() == 400'000'000) {
    while (!running_gate_open.load() && !cancel.stop_requested()) {
      absl::SleepFor(absl::Milliseconds(1));  // polls the gate
    }
  }
  // A stop (the step expiring the call) makes the spin end cancelled.
  return kind.run(request, payload, cancel, response);
}

// One worker runs a call, a second waits in the queue, both with 30 s
// deadlines; the wall clock jumps an hour ahead; a third call with a 50 ms
// deadline arrives (which wakes the pool's deadline timer). Before: the
// timer judged the first two an hour past their deadlines and ended both
// DEADLINE_EXCEEDED ("the task was stopped", "never ran").
TEST(WallClockStepTest, AStepForwardExpiresNoQueuedOrRunningCall) {
  running_gate_open = false;
  service::ServerConfig config = LocalConfig(/*workers=*/1, /*capacity=*/8);
  // So that the 50 ms call queues (admission would refuse it: the queue
  // ahead of it is longer than its deadline).
  config.admission = false;
  config.run_task = &RunningSpinWaitsForTheGate;
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  AsyncCall running(*stub, Spin(absl::Milliseconds(400)), absl::Seconds(30));
  ASSERT_TRUE(WaitUntil([&] { return server->pool().Stats().busy == 1; }));
  AsyncCall queued(*stub, Spin(absl::Milliseconds(1)), absl::Seconds(30));
  ASSERT_TRUE(
      WaitUntil([&] { return server->pool().Stats().queue_depth == 1; }));

  g_realtime_step_ns.store(kHourNs);
  // Its deadline from the stepped wall clock, as a client on this host
  // would set it (AsyncCall's absl::Now() may not see the step yet).
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(50));
  compute::v1::RunRequest request = Spin(absl::Milliseconds(1));
  compute::v1::RunResponse response;
  // Waited for on the steady clock: the test's own waits must not depend
  // on the code under test.
  std::promise<grpc::Status> short_status;
  stub->async()->Run(&context, &request, &response, [&](grpc::Status s) {
    short_status.set_value(std::move(s));
  });
  std::future<grpc::Status> short_done = short_status.get_future();
  ASSERT_EQ(short_done.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  g_realtime_step_ns.store(0);
  const grpc::Status s = short_done.get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  running_gate_open = true;

  const grpc::Status running_status = running.Wait();
  const grpc::Status queued_status = queued.Wait();
  EXPECT_TRUE(running_status.ok()) << running_status.error_message();
  EXPECT_TRUE(queued_status.ok()) << queued_status.error_message();
}

}  // namespace
}  // namespace compute::testing
