// LogSink: log lines to a file descriptor (stderr) through a bounded buffer
// and a writer thread of its own, so that a reader that stalls never blocks
// a thread that logs.
//
// Why: a log collector that stops reading but keeps its end open (a hung
// container runtime's shim, a full log disk, a paused `kubectl logs`
// pipe) fills the pipe, and then every write(2) to it blocks. Writing from
// the logging thread, that blocked gRPC's threads on the error line a
// client can provoke with one bad request, and the drain on SIGTERM on its
// "draining" line: the server hung, every call in flight with it, until
// the kubelet's SIGKILL. Here a line is queued and the caller returns; when
// max_pending_bytes are already waiting the line is dropped and counted,
// and the next line queued after a drop is preceded by the notice the
// owner formats from the count (drop_notice), so the log says what it lost.
//
// Error lines (Write's wait_for > 0) wait, for a bounded time, until they
// are written: the line before an abort (gRPC's failed assertion) must
// reach the log though abort() flushes nothing. While the writer is
// stalled (such a wait ran out and nothing has been written since) they do
// not wait.
//
// Before Start, and when its thread cannot start, Write writes on the
// caller's thread, as stdio would (start-up lines, a start-up failure).
//
// Memory: max_pending_bytes waiting, plus the batch being written (as much
// again at most), plus a drop notice.
//
// Threading: every method may be called from any thread. Invariants (under
// mu_): pending_.size() <= max_pending_bytes_ + the size of one drop
// notice; written_end_ <= queued_end_ (bytes, since construction); lines
// are written whole and in the order they were queued.
#ifndef COMPUTE_SERVER_LOG_SINK_H_
#define COMPUTE_SERVER_LOG_SINK_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/pool/sync.h"

namespace compute {

class LogSink {
 public:
  // `drop_notice(n)`: the line (ending in '\n') that says n lines were
  // dropped.
  LogSink(int fd, size_t max_pending_bytes,
          std::function<std::string(uint64_t)> drop_notice);
  // Waits for the writer to finish what it holds (it cannot be interrupted
  // in write(2): destroy only a sink whose reader reads, as tests do).
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // Starts the writer thread; an error if the system refuses it (the sink
  // then goes on writing on the callers' threads).
  absl::Status Start();

  // Queues `line` (which ends in '\n') and returns, or drops it (see
  // above). With wait_for > 0, then waits up to that long until it is
  // written, unless the writer is stalled.
  void Write(std::string line, absl::Duration wait_for = absl::ZeroDuration());

  // Queues the notice of drops not yet said, then waits until every line
  // queued so far is written; false if `timeout` passed first.
  bool Flush(absl::Duration timeout);

  uint64_t dropped() const;  // lines dropped since construction
  bool stalled() const;      // an error line's wait ran out, nothing written

 private:
  // Queues the notice of the drops not yet said, if any.
  void QueueDropNoticeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriterLoop();
  // write(2) until all of `data` is written or the fd fails (the rest is
  // lost: a reader that went away).
  void WriteAll(const std::string& data);

  const int fd_;
  const size_t max_pending_bytes_;
  const std::function<std::string(uint64_t)> drop_notice_;

  mutable Mutex mu_;
  CondVar work_cv_;     // lines queued, or stopping_
  CondVar written_cv_;  // written_end_ moved
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_end_ ABSL_GUARDED_BY(mu_) = 0;      // bytes queued, ever
  uint64_t written_end_ ABSL_GUARDED_BY(mu_) = 0;     // bytes written, ever
  uint64_t dropped_unsaid_ ABSL_GUARDED_BY(mu_) = 0;  // not yet in a notice
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  // Serializes the callers' own writes before Start (and after a refused
  // one), so lines never interleave.
  Mutex direct_mu_;
  std::thread writer_;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_LOG_SINK_H_
