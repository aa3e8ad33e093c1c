// The pool's record of one accepted task (worker_pool.cc's only type of
// its own): its queue links (FairQueue::Node), what it runs, its state and
// its result. Records are recycled, never freed before the pool, so a stale
// TaskHandle's pointer stays valid and its sequence number tells it apart.
// Internal to the pool; guarded by the pool's mutex.
#ifndef COMPUTE_SERVER_POOL_POOL_TASK_H_
#define COMPUTE_SERVER_POOL_POOL_TASK_H_

#include <cstdint>

#include "server/pool/cancel_token.h"
#include "server/pool/fair_queue.h"
#include "server/pool/pool_check.h"
#include "server/pool/task_types.h"

namespace compute {

namespace pool_internal {

struct PoolTask : FairQueue::Node {
  enum class State {
    kFree,        // on the free list
    kQueued,      // in the FIFO
    kRunning,     // on a worker
    kDelivering,  // finished or taken out; its completion is being delivered
  };

  State state = State::kFree;
  uint64_t seq = 0;  // unique per submission; 0 while free
  TaskFn fn;
  DoneFn done;
  TaskOptions options;
  int64_t submitted_ticks = 0;
  PoolTask* next_free = nullptr;  // on the free list
  // The timer must act on this task's deadline: queued or running, with a
  // finite deadline, not yet signalled. Its heap entry is stale otherwise.
  // Set and cleared by the pool's DeadlineHeap only.
  bool timed = false;
  CancelSource cancel;
  TaskResult result;

  // The one place a state changes: every transition is checked.
  void MoveTo(State to) {
#if COMPUTE_POOL_CHECKS
    bool allowed = false;
    switch (to) {
      case State::kQueued:
        allowed = state == State::kFree;
        break;
      case State::kRunning:
        allowed = state == State::kQueued;
        break;
      case State::kDelivering:
        allowed = state == State::kQueued || state == State::kRunning;
        break;
      case State::kFree:
        allowed = state == State::kDelivering;
        break;
    }
    POOL_CHECK(allowed);
#endif
    state = to;
  }
};

}  // namespace pool_internal

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_POOL_TASK_H_
