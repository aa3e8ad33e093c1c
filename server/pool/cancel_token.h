// CancelToken: how a running task learns that it should stop.
//
// The pool owns one CancelSource per task and hands the task a CancelToken. A
// task polls `stop_requested()` at its own safe points (a loop iteration, a
// row, a segment) and returns early, typically with absl::CancelledError; the
// pool then reports the reason it asked (client cancel, deadline, shutdown).
//
// Why not std::stop_token: std::stop_source allocates a shared control block
// per task, and a no-op task through the pool costs a few hundred ns in all;
// this token is one atomic load (a plain load on x86), with no allocation.
//
// Thread-safety: request_stop() and stop_requested() may race freely. The
// source must outlive every token made from it (the pool guarantees this for
// the duration of the task's run).
#ifndef COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_
#define COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_

#include <atomic>

namespace compute {

class CancelSource;

class CancelToken {
 public:
  // A token that never reports a stop.
  CancelToken() = default;

  bool stop_requested() const {
    return flag_ != nullptr && flag_->load(std::memory_order_acquire);
  }

 private:
  friend class CancelSource;
  explicit CancelToken(const std::atomic<bool>* flag) : flag_(flag) {}
  const std::atomic<bool>* flag_ = nullptr;
};

class CancelSource {
 public:
  CancelSource() = default;
  CancelSource(const CancelSource&) = delete;
  CancelSource& operator=(const CancelSource&) = delete;

  CancelToken token() const { return CancelToken(&flag_); }
  // Release/acquire: whatever the requester wrote before request_stop() (the
  // pool's stop reason) is visible to a thread that saw stop_requested().
  void request_stop() { flag_.store(true, std::memory_order_release); }
  // For an owner that reuses the source for a new task (the pool recycles
  // task records); no token of the previous use may still be polled.
  void Reset() { flag_.store(false, std::memory_order_relaxed); }
  bool stop_requested() const { return flag_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_
