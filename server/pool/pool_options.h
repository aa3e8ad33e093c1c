// PoolOptions: how a WorkerPool is sized, budgeted and run
// (worker_pool.h says what each budget does), and their check.
#ifndef COMPUTE_SERVER_POOL_POOL_OPTIONS_H_
#define COMPUTE_SERVER_POOL_POOL_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/pool/clock.h"
#include "server/pool/task_types.h"

namespace compute {

struct PoolOptions {
  int max_workers = 1;  // >= 1
  int min_workers = 1;  // 1..max_workers (a pool always keeps one worker)
  // Tasks that may wait for a busy worker; 0 = queueless.
  size_t queue_capacity = 64;
  // Bytes queued and running tasks may hold; 0 = no limit.
  int64_t max_inflight_bytes = 0;
  // The queue wait a standing queue is held to; InfiniteDuration = no
  // overload control (only the count and bytes bound the queue).
  absl::Duration target_queue_wait = absl::InfiniteDuration();
  // How long every dequeued task must have waited over the target before
  // the queue counts as standing (CoDel's interval).
  absl::Duration overload_interval = absl::Milliseconds(100);
  // RunInlineIfFree runs a task whose cost is at most this on the calling
  // thread ("workers as permits": the bound on concurrent tasks is the same,
  // and a trivial task skips two thread hand-offs). Zero: never.
  absl::Duration inline_max_cost = absl::ZeroDuration();
  // Before it parks, one idle worker at a time spins briefly for the next
  // task (SpinForWorkLocked).
  bool spin_before_park = true;
  // A worker above min_workers idle this long exits.
  absl::Duration idle_timeout = absl::Seconds(60);
  Clock* clock = nullptr;                 // nullptr = Clock::Real()
  PoolObserver* observer = nullptr;       // optional; must outlive the pool
  std::string thread_name = "compute-w";  // + worker index (15 chars max)
  // How the pool starts its threads (workers and the timer); empty =
  // std::thread. It returns the started thread or throws std::system_error,
  // as std::thread does when the system refuses one (pids.max, RLIMIT_NPROC,
  // RLIMIT_AS); tests make it throw. Called with the pool's lock held: it
  // must not call the pool.
  std::function<std::thread(std::function<void()>)> start_thread;
};

// OK, or absl::InvalidArgumentError naming the first field out of range.
absl::Status ValidatePoolOptions(const PoolOptions& options);

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_POOL_OPTIONS_H_
