#include "server/memory_returner.h"

#include <pthread.h>

#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace compute {

MemoryReturner::MemoryReturner(Hooks hooks, Options options)
    : hooks_(std::move(hooks)), options_(options) {}

MemoryReturner::~MemoryReturner() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  stop_cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

absl::Status MemoryReturner::Start() {
  std::function<void()> body = [this] { Loop(); };
  try {
    thread_ = options_.start_thread ? options_.start_thread(std::move(body))
                                    : std::thread(std::move(body));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the memory returner's thread: ", e.what()));
  }
  return absl::OkStatus();
}

void MemoryReturner::Loop() {
  pthread_setname_np(pthread_self(), "compute-memret");
  MutexLock lock(&mu_);
  while (!stop_) {
    const absl::Time next = MonotonicNow() + options_.interval;
    while (!stop_ && !stop_cv_.WaitWithDeadline(&mu_, next)) {
    }
    if (stop_) break;
    mu_.Unlock();
    Tick(MonotonicNow());
    mu_.Lock();
  }
}

MemoryReturner::Action MemoryReturner::Tick(absl::Time now) {
  const Activity activity = hooks_.activity();
  if (!seen_ || activity.events != last_events_ || !activity.idle) {
    seen_ = true;
    last_events_ = activity.events;
    active_at_ = now;
    returned_since_active_ = false;
  }
  const int64_t kept = hooks_.kept_bytes();
  if (kept < 0) return Action::kNone;
  Action action = Action::kNone;
  if (kept > options_.cap_bytes) {
    action = Action::kOverCap;
  } else if (!returned_since_active_ && kept >= options_.min_bytes &&
             now - active_at_ >= options_.quiet) {
    action = Action::kQuiet;
    returned_since_active_ = true;
  } else {
    return Action::kNone;
  }
  hooks_.return_kept();
  if (hooks_.returned) hooks_.returned(action);
  return action;
}

}  // namespace compute
