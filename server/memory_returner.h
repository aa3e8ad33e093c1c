// memory_returner: gives the allocator's freed pages back to the system when
// the server is done with them, not on a timer that also takes the pages a
// steady stream of large calls reuses.
//
// Why: jemalloc returns freed pages by decay, a fixed time after they were
// freed, whether or not the next call is about to reuse them. At 1 s a warm
// 16 MP blur every ~60 ms still faulted in 800-2,300 of its pages afresh
// (~10 us each on a VM); with no decay, ~20. But a long decay alone keeps
// what a burst freed: a 10 s decay put the 64-blur burst's peak at 838-1,052
// MiB against 681-723 (scripts/bench/memory.sh). So the decay is long
// (server/jemalloc_conf.cc) and this class returns freed pages:
//   - at once when they pass `cap_bytes` (checked every `interval`): what a
//     burst frees and does not reuse is returned while the burst runs;
//   - once the pool has been idle for `quiet` (nothing queued, running or
//     held, no task accepted, refused or finished): what a burst left
//     behind goes back ~1 s after it ends, not after the decay; once per
//     idle spell.
//
// Invariants: hooks are called only from the thread that calls Tick (the
// returner's own thread once Start is called; a test's otherwise); Tick
// returns the pages at most once per check.
#ifndef COMPUTE_SERVER_MEMORY_RETURNER_H_
#define COMPUTE_SERVER_MEMORY_RETURNER_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/pool/sync.h"

namespace compute {

class MemoryReturner {
 public:
  enum class Action { kNone, kOverCap, kQuiet };
  // What the server is doing, as the pool sees it.
  struct Activity {
    uint64_t events = 0;  // changes whenever a task comes, goes or is refused
    bool idle = true;     // nothing queued, running, or held for delivery
  };
  struct Hooks {
    std::function<int64_t()> kept_bytes;  // freed bytes kept; < 0: unknown
    std::function<void()> return_kept;    // returns all of them
    std::function<Activity()> activity;
    // Told after each return, by the rule that fired (optional).
    std::function<void(Action)> returned;
  };
  struct Options {
    absl::Duration interval = absl::Milliseconds(250);
    absl::Duration quiet = absl::Seconds(1);
    int64_t cap_bytes = int64_t{64} << 20;
    // Less kept than this is not worth a return when quiet (a return walks
    // every arena).
    int64_t min_bytes = int64_t{1} << 20;
    // Starts the returner's thread (tests refuse it); std::thread when
    // empty. Throws std::system_error when the system refuses the thread.
    std::function<std::thread(std::function<void()>)> start_thread;
  };
  MemoryReturner(Hooks hooks, Options options);
  // Stops and joins the thread, if started.
  ~MemoryReturner();
  MemoryReturner(const MemoryReturner&) = delete;
  MemoryReturner& operator=(const MemoryReturner&) = delete;

  // Calls Tick every `interval` on a thread of its own, until destroyed.
  // ResourceExhausted, naming the cause, when the system refuses the thread
  // (pids.max, RLIMIT_NPROC): the server serves on without it (before, the
  // refusal's exception ended the process at start-up, its port open).
  [[nodiscard]] absl::Status Start();

  // One check at `now` (monotonic within a returner): reads the activity
  // and what is kept, returns the pages if a rule says so, and says which.
  Action Tick(absl::Time now);

  const Options& options() const { return options_; }

 private:
  void Loop();

  const Hooks hooks_;
  const Options options_;
  // Tick's own state: one thread at a time (see the header comment).
  uint64_t last_events_ = 0;
  bool seen_ = false;
  absl::Time active_at_;  // when the pool was last seen doing something
  bool returned_since_active_ = false;  // the quiet rule fired this spell

  Mutex mu_;
  CondVar stop_cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_MEMORY_RETURNER_H_
