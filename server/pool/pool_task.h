// The pool's record of one accepted task (worker_pool.cc's only type of
// its own): its queue links (FairQueue::Node), what it runs, its state, and
// how it left if it never ran. Records are recycled, never freed before the
// pool, so a stale TaskHandle's pointer stays valid and its sequence number
// tells it apart. Internal to the pool; guarded by the pool's mutex.
#ifndef COMPUTE_SERVER_POOL_POOL_TASK_H_
#define COMPUTE_SERVER_POOL_POOL_TASK_H_

#include <cstdint>

#include "server/pool/cancel_token.h"
#include "server/pool/fair_queue.h"
#include "server/pool/pool_check.h"
#include "server/pool/task_types.h"

namespace compute {

namespace pool_internal {

struct alignas(64) PoolTask : FairQueue::Node {
  enum class State {
    kFree,        // on the free list
    kQueued,      // in the FIFO
    kRunning,     // on a worker
    kDelivering,  // finished or taken out; its completion is being delivered
  };

  // Kept small (three cache lines): a deep queue's records are its working
  // set, and every field here is written by Submit and read by a worker.
  // Only the options the pool reads after Submit are copied (the tenant and
  // weight live in the queue's flow); the result is built by whoever
  // completes the task, not stored here.
  State state = State::kFree;
  Priority priority = Priority::kDefault;  // TaskOptions::priority
  // The timer must act on this task's deadline: queued or running, with a
  // finite deadline, not yet signalled. Its heap entry is stale otherwise.
  // Set and cleared by the pool's DeadlineHeap only.
  bool timed = false;
  uint32_t tag = 0;  // TaskOptions::tag
  uint64_t seq = 0;  // unique per submission; 0 while free
  // (Here, not after `deadline`: it fills what would be padding before the
  // 16-byte-aligned functions.)
  int64_t submitted_ticks = 0;
  TaskFn fn;
  DoneFn done;
  absl::Time deadline = absl::InfiniteFuture();  // TaskOptions::deadline
  // (TaskOptions::bytes is FairQueue::Node::bytes.)
  CancelSource cancel;
  // Taken out unrun (kDelivering without running): how, and its queue wait.
  TaskOutcome unrun_outcome = TaskOutcome::kOk;
  RefusalReason displaced_for = RefusalReason::kPreempted;  // kPreempted only
  int64_t unrun_wait_ns = 0;
  PoolTask* next_free = nullptr;  // on the free list

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

// Three cache lines: see the comment on the fields.
static_assert(sizeof(PoolTask) <= 192, "the task record grew past 3 lines");

}  // namespace pool_internal

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_POOL_TASK_H_
