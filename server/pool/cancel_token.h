// CancelToken: how a running task learns that it should stop.
//
// The pool owns one CancelSource per task record and hands the task a
// CancelToken. A task polls `stop_requested()` at its own safe points (a loop
// iteration, a row, a segment) and returns early, typically with
// absl::CancelledError; the pool then reports the reason it asked (client
// cancel, deadline, shutdown).
//
// Why not std::stop_token: std::stop_source allocates a shared control block
// per task, and a no-op task through the pool costs about a hundred ns in
// all; this token is one atomic load (a plain load on x86), with no
// allocation.
//
// Generations: the pool recycles its task records, so a stop request that
// was aimed at one task (a Cancel, a deadline) may arrive after the record
// was reused for another. The source's one atomic word holds the current
// generation (the pool's task sequence number) beside the stop code, and
// RequestStopFor(generation, code) only succeeds while that generation is
// current: a late request misses harmlessly instead of stopping a stranger.
//
// Thread-safety: every member may race freely with every other except
// Reset(), which only the owner calls between two uses. The source must
// outlive every token made from it (the pool guarantees this for the
// duration of the task's run).
#ifndef COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_
#define COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_

#include <atomic>
#include <cstdint>

namespace compute {

class CancelSource;

class CancelToken {
 public:
  // A token that never reports a stop.
  CancelToken() = default;

  bool stop_requested() const {
    return word_ != nullptr &&
           (word_->load(std::memory_order_acquire) & kCodeMask) != 0;
  }

 private:
  friend class CancelSource;
  static constexpr uint64_t kCodeMask = 0xff;
  explicit CancelToken(const std::atomic<uint64_t>* word) : word_(word) {}
  const std::atomic<uint64_t>* word_ = nullptr;
};

class CancelSource {
 public:
  // Stop codes are the owner's; 0 means "not stopped".
  static constexpr uint8_t kStoppedCode = 1;

  CancelSource() = default;
  CancelSource(const CancelSource&) = delete;
  CancelSource& operator=(const CancelSource&) = delete;

  CancelToken token() const { return CancelToken(&word_); }

  // Stops whatever generation is current (first code wins).
  void request_stop(uint8_t code = kStoppedCode) {
    uint64_t word = word_.load(std::memory_order_relaxed);
    while ((word & CancelToken::kCodeMask) == 0 &&
           !word_.compare_exchange_weak(word, word | code,
                                        std::memory_order_release,
                                        std::memory_order_relaxed)) {
    }
  }

  // Stops `generation` with `code` if it is still current and not yet
  // stopped; returns whether this call set the code. Release/acquire: what
  // the requester wrote before is visible to a thread that saw the stop.
  bool RequestStopFor(uint64_t generation, uint8_t code) {
    uint64_t expected = generation << kGenerationShift;
    return word_.compare_exchange_strong(expected, expected | code,
                                         std::memory_order_release,
                                         std::memory_order_relaxed);
  }

  // For an owner that reuses the source for a new task: no token of the
  // previous use may still be polled.
  void Reset(uint64_t generation = 0) {
    word_.store(generation << kGenerationShift, std::memory_order_relaxed);
  }

  bool stop_requested() const { return stop_code() != 0; }
  // 0 when no stop was requested, else the first requester's code.
  uint8_t stop_code() const {
    return static_cast<uint8_t>(word_.load(std::memory_order_acquire) &
                                CancelToken::kCodeMask);
  }

 private:
  static constexpr int kGenerationShift = 8;
  std::atomic<uint64_t> word_{0};
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CANCEL_TOKEN_H_
