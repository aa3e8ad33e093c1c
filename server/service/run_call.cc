#include "server/service/run_call.h"

#include <pthread.h>

#include <atomic>
#include <cassert>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/wire.h"

namespace compute::service {

// One call; see the header for its states and lifetime.
class RunCall {
 public:
  enum class Kind { kArrived, kFinished, kDone };
  using Event = CallEvent<RunCall, Kind>;

  // Issues the request; the queue's thread takes it from there.
  RunCall(RunQueues& queues, RunQueues::Queue& queue)
      : queues_(queues), queue_(queue), responder_(&context_) {
    queues_.live_calls_.fetch_add(1, std::memory_order_relaxed);
    queues_.CallBegins();
    context_.AsyncNotifyWhenDone(&done_);
    queues_.async_.RequestRun(&context_, &received_, &responder_,
                              queue_.cq.get(), queue_.cq.get(), &arrived_);
  }

  // On the queue's thread.
  void On(Kind kind, bool ok) {
    switch (kind) {
      case Kind::kArrived:
        if (!ok) {  // shutting down, no call: no done event will come
          Unref();
          return;
        }
        refs_.fetch_add(1, std::memory_order_relaxed);  // the done event's
        queues_.Request(queue_);  // a replacement first: keep up
        Arrive();
        return;
      case Kind::kFinished:
        // The answer has been sent, or the client is gone: gRPC holds its
        // bytes no more.
        if (held_bytes_ > 0) queues_.service_.pool().ReleaseBytes(held_bytes_);
        Unref();
        return;
      case Kind::kDone: {
        // Cancelled by the client, or its deadline passed, or its
        // connection closed: stop the task (a no-op once it has completed).
        // Its completion finishes the call.
        const bool cancelled = context_.IsCancelled();
        if (cancelled) MarkDelivery(kCancelled);
        if (cancelled && handle_.valid()) {
          WorkerPool& pool = queues_.service_.pool();
          pool.Cancel(handle_, CancelOutcome(pool.clock().Now(), call_.deadline,
                                             call_.timeout));
        }
        Unref();
        return;
      }
    }
  }

 private:
  ~RunCall() {  // only Unref deletes
    queues_.live_calls_.fetch_sub(1, std::memory_order_release);
    queues_.CallEnds();
  }

  void Arrive() {
    call_.context = &context_;
    call_.request = &request_;
    call_.response = &response_;
    call_.parsed = ParseRunRequest(received_, &request_, &payload_);
    call_.payload = payload_.pieces;
    std::optional<grpc::Status> status = queues_.service_.Handle(
        call_, [this](const TaskResult& result) { OnTaskDone(result); },
        &handle_);
    if (status.has_value()) Finish(*status);
  }

  // On the worker (or cancelling) thread that completed the task, or on
  // the queue's thread, within Arrive, for a task run inline.
  void OnTaskDone(const TaskResult& result) {
    // The finish event may be handled, on the queue's thread, before Finish
    // returns: hold the call until it has.
    refs_.fetch_add(1, std::memory_order_relaxed);
    Finish(queues_.service_.Completed(call_, result));
    Unref();
  }

  // No task is running or queued for this call now.
  void Finish(const grpc::Status& status) {
    // One answer per call (checked in debug and sanitizer builds): Handle's
    // status and the task's completion never both finish a call (an inline
    // run answers through its completion; Handle then returns none).
    [[maybe_unused]] const bool answered_before =
        finish_issued_.exchange(true, std::memory_order_relaxed);
    assert(!answered_before);
    // Freed before the answer is sent, not with the call: a large request
    // need not be held while a slow client reads the answer.
    compute::v1::RunRequest().Swap(&request_);
    call_.payload = {};
    payload_.Clear();
    queues_.service_.Answered(call_, status);
    if (status.ok()) {
      grpc::ByteBuffer answer = SerializeRunResponse(response_);
      // A small answer was copied into the buffer: the message goes now,
      // so that only the buffer's bytes, which the budget counts, are held.
      compute::v1::RunResponse().Swap(&response_);
      // Held in the pool's memory budget until the finish event: a client
      // that does not read keeps the answer in memory (see the header).
      // Before Finish, whose event may come at once on the queue's thread.
      held_bytes_ = static_cast<int64_t>(answer.Length());
      queues_.service_.pool().HoldBytes(held_bytes_);
      MarkDelivery(kAnsweredOk);
      responder_.Finish(answer, status, &finished_);
    } else {
      responder_.FinishWithError(status, &finished_);
    }
  }

  // The call's end as far as its answer goes: answered OK, and ended
  // cancelled (done event). The second of the two to be marked, on either
  // thread, reports the answer undelivered: an OK answer issued to a call
  // already cancelled, or one that was issued and then never sent.
  static constexpr uint8_t kAnsweredOk = 1;
  static constexpr uint8_t kCancelled = 2;
  void MarkDelivery(uint8_t mark) {
    constexpr uint8_t kBoth = kAnsweredOk | kCancelled;
    const uint8_t before = delivery_.fetch_or(mark, std::memory_order_relaxed);
    if (before != kBoth && (before | mark) == kBoth) {
      queues_.service_.AnswerUndelivered();
    }
  }

  void Unref() {
    const int before = refs_.fetch_sub(1, std::memory_order_acq_rel);
    assert(before >= 1);
    if (before == 1) delete this;
  }

  RunQueues& queues_;
  RunQueues::Queue& queue_;
  grpc::ServerContext context_;
  grpc::ByteBuffer received_;  // the request's bytes, until parsed
  compute::v1::RunRequest request_;
  ReceivedPayload payload_;  // a large blur's pixels, until Finish
  compute::v1::RunResponse response_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_;
  CallInfo call_;
  // The answer's bytes, held in the pool's budget from Finish to the finish
  // event. Written before Finish is issued, read on the queue's thread when
  // its event arrives (the queue orders the two).
  int64_t held_bytes_ = 0;
  // Written once, on the queue's thread, before that thread can see the
  // done event; read there.
  TaskHandle handle_;
  // The request -> Finish chain's; +1 for the done event once the call has
  // arrived; +1 while a worker issues Finish.
  std::atomic<int> refs_{1};
  std::atomic<bool> finish_issued_{false};
  std::atomic<uint8_t> delivery_{0};  // MarkDelivery's marks
  Event arrived_{this, Kind::kArrived};
  Event finished_{this, Kind::kFinished};
  Event done_{this, Kind::kDone};
};

RunQueues::RunQueues(ComputeService& service, int io_threads,
                     int requests_per_queue, ThreadStarter start_thread)
    : service_(service),
      requests_per_queue_(requests_per_queue),
      start_thread_(std::move(start_thread)) {
  for (int i = 0; i < io_threads; ++i) {
    queues_.push_back(std::make_unique<Queue>());
  }
}

RunQueues::~RunQueues() { Shutdown(); }

void RunQueues::AddTo(grpc::ServerBuilder& builder) {
  builder.RegisterService(&async_);
  for (const std::unique_ptr<Queue>& queue : queues_) {
    queue->cq = builder.AddCompletionQueue();
  }
}

absl::Status RunQueues::Start() {
  started_ = true;
  // Every thread before any request: a request on a queue that nothing
  // polls would keep its call object (and Shutdown waiting) forever.
  for (size_t q = 0; q < queues_.size(); ++q) {
    Queue& queue = *queues_[q];
    std::function<void()> poll = [&queue] { Poll(queue); };
    try {
      queue.thread = start_thread_ ? start_thread_(std::move(poll))
                                   : std::thread(std::move(poll));
    } catch (const std::system_error& e) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot start I/O thread ", q + 1, " of ", queues_.size(), ": ",
          e.what(), " (lower --io_threads, or raise the process's limit)"));
    } catch (const std::bad_alloc&) {  // the thread's state, under RLIMIT_AS
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot start I/O thread ", q + 1, " of ", queues_.size(),
          ": out of memory (lower --io_threads, or raise the process's "
          "limit)"));
    }
    // "compute-io0", ...: named for top, perf and gdb.
    const std::string name = absl::StrCat("compute-io", q);
    pthread_setname_np(queue.thread.native_handle(), name.c_str());
  }
  for (const std::unique_ptr<Queue>& queue : queues_) {
    for (int i = 0; i < requests_per_queue_; ++i) Request(*queue);
  }
  return absl::OkStatus();
}

void RunQueues::Request(Queue& queue) {
  MutexLock lock(&queue.mu);
  if (!queue.accepting) return;
  new RunCall(*this, queue);  // deletes itself after its last event
}

void RunQueues::Poll(Queue& queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue.cq->Next(&tag, &ok)) {
    static_cast<QueueEvent*>(tag)->Handle(ok);
  }
}

void RunQueues::CallBegins() {
  calls_on_queues_.fetch_add(1, std::memory_order_relaxed);
}

void RunQueues::CallEnds() {
  // Sequentially consistent, with Shutdown's store to draining_ and load of
  // the count: either this sees draining_, or Shutdown sees this end.
  if (calls_on_queues_.fetch_sub(1) == 1 && draining_.load()) {
    MutexLock lock(&calls_mu_);
    calls_ended_.SignalAll();
  }
}

void RunQueues::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (const std::unique_ptr<Queue>& queue : queues_) {
    if (queue->cq == nullptr) continue;  // never added to a server
    MutexLock lock(&queue->mu);
    queue->accepting = false;
  }
  if (started_) {
    // gRPC has cancelled or failed every call and request by now; their
    // events may still be on the queues, and the threads handle them.
    draining_.store(true);
    MutexLock lock(&calls_mu_);
    const absl::Time limit = MonotonicNow() + kCallsEndLimit;
    while (calls_on_queues_.load() > 0) {
      if (calls_ended_.WaitWithDeadline(&calls_mu_, limit)) break;
    }
  }
  for (const std::unique_ptr<Queue>& queue : queues_) {
    if (queue->cq != nullptr) queue->cq->Shutdown();
  }
  for (const std::unique_ptr<Queue>& queue : queues_) {
    if (queue->cq == nullptr) continue;
    if (queue->thread.joinable()) {
      queue->thread.join();
    } else {
      Poll(*queue);  // no thread (not started, or refused): drains it here
    }
  }
  // Every call's last event has been handled, and with its finish event
  // each call gave back the bytes its answer held.
  assert(live_calls() == 0);
  assert(service_.pool().held_bytes() == 0);
}

}  // namespace compute::service
