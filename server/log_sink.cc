#include "server/log_sink.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace compute {

LogSink::LogSink(int fd, size_t max_pending_bytes,
                 std::function<std::string(uint64_t)> drop_notice)
    : fd_(fd),
      max_pending_bytes_(max_pending_bytes),
      drop_notice_(std::move(drop_notice)) {}

LogSink::~LogSink() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  if (writer_.joinable()) writer_.join();
}

absl::Status LogSink::Start() {
  MutexLock lock(&mu_);
  if (started_) return absl::OkStatus();
  try {
    writer_ = std::thread([this] { WriterLoop(); });
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the log writer thread: ", e.what()));
  }
  started_ = true;
  return absl::OkStatus();
}

void LogSink::Write(std::string line, absl::Duration wait_for) {
  bool direct;
  {
    MutexLock lock(&mu_);
    direct = !started_;
  }
  if (direct) {  // not under mu_: Flush and dropped() never wait on it
    MutexLock lock(&direct_mu_);
    WriteAll(line);
    return;
  }
  uint64_t line_end = 0;
  {
    MutexLock lock(&mu_);
    if (pending_.size() + line.size() > max_pending_bytes_) {
      ++dropped_unsaid_;
      ++dropped_;
      return;
    }
    // Before the line, though it may pass the bound by its size: the count
    // must not wait for a second line that fits.
    QueueDropNoticeLocked();
    pending_ += line;
    queued_end_ += line.size();
    line_end = queued_end_;
    work_cv_.Signal();
    if (wait_for <= absl::ZeroDuration() || stalled_) return;
    const absl::Time deadline = MonotonicNow() + wait_for;
    while (written_end_ < line_end) {
      if (written_cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    if (written_end_ < line_end) stalled_ = true;
  }
}

bool LogSink::Flush(absl::Duration timeout) {
  const absl::Time deadline = MonotonicNow() + timeout;
  MutexLock lock(&mu_);
  if (!started_) return true;  // written as they came
  // The last spell of drops is said too (at exit, no line may follow).
  QueueDropNoticeLocked();
  work_cv_.Signal();
  const uint64_t end = queued_end_;
  while (written_end_ < end) {
    if (written_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return written_end_ >= end;
}

uint64_t LogSink::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

bool LogSink::stalled() const {
  MutexLock lock(&mu_);
  return stalled_;
}

void LogSink::QueueDropNoticeLocked() {
  if (dropped_unsaid_ == 0) return;
  const std::string notice = drop_notice_(dropped_unsaid_);
  dropped_unsaid_ = 0;
  pending_ += notice;
  queued_end_ += notice.size();
}

void LogSink::WriterLoop() {
  std::string batch;
  MutexLock lock(&mu_);
  while (true) {
    while (pending_.empty() && !stopping_) work_cv_.Wait(&mu_);
    if (pending_.empty()) return;  // stopping, with everything written
    batch.clear();
    batch.swap(pending_);
    mu_.Unlock();
    WriteAll(batch);
    mu_.Lock();
    written_end_ += batch.size();
    stalled_ = false;
    written_cv_.SignalAll();
  }
}

void LogSink::WriteAll(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // A non-blocking stderr (set by whoever shares it): wait as a
      // blocking write would, on this thread only.
      pollfd p{fd_, POLLOUT, 0};
      poll(&p, 1, -1);
    } else {
      return;  // EPIPE (SIGPIPE is ignored), EBADF: the rest is lost
    }
  }
}

}  // namespace compute
