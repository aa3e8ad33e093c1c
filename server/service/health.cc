#include "server/service/health.h"

#include <cassert>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace compute::service {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace {

// NOT_FOUND's message, quoting at most kMaxQuoted bytes of the name (cut at
// a UTF-8 character's start): the whole name went back in grpc-message, so
// a 4 MB name made a 4 MB trailer (eight at once took the server from 21 to
// 102 MiB), and one of 100 KB passed the client's metadata limit, which it
// reported as RESOURCE_EXHAUSTED (a review's finding, 2026-12-06).
std::string UnknownServiceMessage(const std::string& service) {
  constexpr size_t kMaxQuoted = 128;
  if (service.size() <= kMaxQuoted) {
    return absl::StrCat("unknown service: \"", service, "\"");
  }
  size_t cut = kMaxQuoted;
  while (cut > 0 && (static_cast<unsigned char>(service[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return absl::StrCat("unknown service: \"",
                      absl::string_view(service).substr(0, cut), "...\" (",
                      service.size(), " bytes)");
}

// The longest service name a Watch may follow. Its stream keeps the name
// for as long as it is open, and neither the memory budget nor gRPC's
// transport quota counts it: twelve Watches of a 16 MiB name took a
// server from 21 to 244 MB until their clients left (a review's finding,
// 2026-12-07). Service names are a few dozen bytes.
constexpr size_t kMaxWatchedNameBytes = 1024;

}  // namespace

// One Check; see the header.
class CheckCall {
 public:
  enum class Kind { kArrived, kFinished };

  CheckCall(HealthService& health, int q, grpc::ServerCompletionQueue* cq)
      : health_(health), q_(q), responder_(&context_) {
    health_.live_calls_.fetch_add(1, std::memory_order_relaxed);
    health_.queues_->CallBegins();
    health_.async_.RequestCheck(&context_, &request_, &responder_, cq, cq,
                                &arrived_);
  }

  // On the queue's thread.
  void On(Kind kind, bool ok) {
    if (kind == Kind::kFinished || !ok) {  // answered, or shutting down
      delete this;
      return;
    }
    health_.RequestCheck(q_);  // a replacement first
    HealthService::Status status;
    {
      MutexLock lock(&health_.mu_);
      status = health_.StatusOf(request_.service());
    }
    if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       UnknownServiceMessage(request_.service())),
          &finished_);
      return;
    }
    response_.set_status(status);
    responder_.Finish(response_, grpc::Status::OK, &finished_);
  }

 private:
  using Event = CallEvent<CheckCall, Kind>;

  ~CheckCall() {
    health_.live_calls_.fetch_sub(1, std::memory_order_release);
    health_.queues_->CallEnds();
  }

  HealthService& health_;
  const int q_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncResponseWriter<HealthCheckResponse> responder_;
  Event arrived_{this, Kind::kArrived};
  Event finished_{this, Kind::kFinished};
};

// One Watch; see the header.
class WatchCall {
 public:
  enum class Kind { kArrived, kWritten, kFinished, kDone };

  WatchCall(HealthService& health, int q, grpc::ServerCompletionQueue* cq)
      : health_(health), q_(q), writer_(&context_) {
    health_.live_calls_.fetch_add(1, std::memory_order_relaxed);
    health_.queues_->CallBegins();
    context_.AsyncNotifyWhenDone(&done_);
    health_.async_.RequestWatch(&context_, &request_, &writer_, cq, cq,
                                &arrived_);
  }

  const std::string& service() const { return request_.service(); }

  // The status to report now (with the service's mu_ held: it is taken
  // before a call's, and status changes reach each watcher in order).
  // (Not annotated: the analysis cannot tell a watcher's health_ is the
  // service whose mu_ its callers hold.)
  void Update(HealthService::Status status) {
    MutexLock lock(&mu_);
    latest_ = status;
    if (!writing_ && !finish_issued_ && !ending_ && latest_ != sent_) {
      WriteLocked();
    }
  }

  // Ends the stream with `status` once the write in flight is done.
  void End(const grpc::Status& status) {
    MutexLock lock(&mu_);
    if (ending_) return;
    ending_ = true;
    end_status_ = status;
    if (!writing_ && !finish_issued_) FinishLocked();
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
        health_.RequestWatch(q_);                       // a replacement first
        if (request_.service().size() > kMaxWatchedNameBytes) {
          const size_t size = request_.service().size();
          HealthCheckRequest().Swap(&request_);  // its bytes go now
          End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           absl::StrCat("service: a name of ", size,
                                        " bytes, over the limit of ",
                                        kMaxWatchedNameBytes, " for a Watch")));
          return;
        }
        health_.AddWatcher(this);  // sends the status, or ends at once
        return;
      case Kind::kWritten: {
        MutexLock lock(&mu_);
        writing_ = false;
        if (!ok) {  // the stream is over: the client has gone
          gone_ = true;
          if (!ending_) {  // else End's status: a drain's UNAVAILABLE
            ending_ = true;
            // Not OK, the default: the interceptor counts what is sent.
            end_status_ = grpc::Status(grpc::StatusCode::CANCELLED,
                                       "the client has gone");
          }
        }
        // The latest status goes out before the end: a drain sets
        // NOT_SERVING and ends the stream at once, maybe while the write
        // of SERVING is still in flight, and a balancer must see it.
        if (!gone_ && latest_ != sent_) {
          WriteLocked();
        } else if (ending_ && !finish_issued_) {
          FinishLocked();
        }
        return;
      }
      case Kind::kFinished:
        Unref();
        return;
      case Kind::kDone:
        // The call is over (the client cancelled, or it was finished): no
        // more updates, and a Finish if none was issued.
        health_.RemoveWatcher(this);
        {
          MutexLock lock(&mu_);
          gone_ = true;  // nothing more can reach the client
        }
        End(grpc::Status(grpc::StatusCode::CANCELLED, "the client has gone"));
        Unref();
        return;
    }
  }

 private:
  using Event = CallEvent<WatchCall, Kind>;

  ~WatchCall() {
    health_.live_calls_.fetch_sub(1, std::memory_order_release);
    health_.queues_->CallEnds();
  }

  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    assert(!writing_ && !finish_issued_);
    response_.set_status(latest_);
    sent_ = latest_;
    writing_ = true;
    writer_.Write(response_, &written_);
  }

  void FinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    assert(!writing_ && !finish_issued_);
    finish_issued_ = true;
    writer_.Finish(end_status_, &finished_);
  }

  void Unref() {
    const int before = refs_.fetch_sub(1, std::memory_order_acq_rel);
    assert(before >= 1);
    if (before == 1) delete this;
  }

  HealthService& health_;
  const int q_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;  // what the write in flight sends
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  Mutex mu_;
  // The status to report, and the last one written.
  HealthService::Status latest_ ABSL_GUARDED_BY(mu_) =
      HealthCheckResponse::UNKNOWN;
  HealthService::Status sent_ ABSL_GUARDED_BY(mu_) =
      HealthCheckResponse::UNKNOWN;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // a Write in flight
  bool ending_ ABSL_GUARDED_BY(mu_) = false;   // Finish once none is
  bool gone_ ABSL_GUARDED_BY(mu_) = false;  // the call is over: no more writes
  bool finish_issued_ ABSL_GUARDED_BY(mu_) = false;  // no op after it
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  // The request -> write -> Finish chain's; +1 for the done event once the
  // call has arrived.
  std::atomic<int> refs_{1};
  Event arrived_{this, Kind::kArrived};
  Event written_{this, Kind::kWritten};
  Event finished_{this, Kind::kFinished};
  Event done_{this, Kind::kDone};
};

HealthService::~HealthService() { assert(live_calls() == 0); }

void HealthService::Start(RunQueues& queues) {
  queues_ = &queues;
  for (int q = 0; q < queues.io_threads(); ++q) {
    RequestCheck(q);
    RequestWatch(q);
  }
}

void HealthService::RequestCheck(int q) {
  queues_->RequestOn(q, [this, q](grpc::ServerCompletionQueue* cq) {
    new CheckCall(*this, q, cq);  // deletes itself after its last event
  });
}

void HealthService::RequestWatch(int q) {
  queues_->RequestOn(q, [this, q](grpc::ServerCompletionQueue* cq) {
    new WatchCall(*this, q, cq);  // deletes itself after its last event
  });
}

HealthService::Status HealthService::StatusOf(
    const std::string& service) const {
  // Unknown first: a name never served stays unknown through the shutdown
  // too (NOT_FOUND for a Check, no NOT_SERVING sent to its Watch).
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  if (shut_down_) return HealthCheckResponse::NOT_SERVING;
  return it->second ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING;
}

void HealthService::NotifyWatchersLocked() {
  for (WatchCall* watcher : watchers_) {
    watcher->Update(StatusOf(watcher->service()));  // no write if unchanged
  }
}

void HealthService::SetServing(const std::string& service, bool serving) {
  MutexLock lock(&mu_);
  if (shut_down_) return;
  serving_[service] = serving;
  NotifyWatchersLocked();
}

void HealthService::SetAllNotServing() {
  MutexLock lock(&mu_);
  if (shut_down_) return;
  for (auto& [service, serving] : serving_) serving = false;
  NotifyWatchersLocked();
}

void HealthService::Shutdown() {
  MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  NotifyWatchersLocked();  // NOT_SERVING, then the end
  const grpc::Status ending(grpc::StatusCode::UNAVAILABLE,
                            "the server is shutting down");
  for (WatchCall* watcher : watchers_) watcher->End(ending);
}

void HealthService::AddWatcher(WatchCall* watcher) {
  MutexLock lock(&mu_);
  if (shut_down_) {
    watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "the server is shutting down"));
    return;
  }
  watchers_.insert(watcher);
  watcher->Update(StatusOf(watcher->service()));
}

void HealthService::RemoveWatcher(WatchCall* watcher) {
  MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

}  // namespace compute::service
