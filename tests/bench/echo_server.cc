// echo_server: the baseline of the end-to-end benchmark (scripts/bench/e2e.sh).
//
// A bare gRPC C++ callback-API server that registers compute.v1.Compute/Run
// and answers every call at once, from the reactor, with the fixed
// RunResponse{fib{value: 1}}: no pool, no thread hop, no validation, no
// metrics. What compute-server adds on top of gRPC itself is its req/s
// measured against this one's, in the same run, with the same load.
//
// A blur request is answered with its own pixels as the result (the same
// width, height and bytes; no kernel), so that moving a large payload in
// and out through gRPC and protobuf alone is measured too
// (scripts/bench/payload.sh). It accepts messages up to 32 MiB, as
// compute-server does.
//
//   echo_server [--port N] [--address A]
//
// --port 0 (the default) asks the kernel for a port; the first line on
// stdout is "port N" (flushed), so scripts can read it. --address defaults to
// 127.0.0.1. SIGTERM or SIGINT shuts the server down and exits 0.
// ECHO_OWN_REACTOR=1 in the environment answers from a reactor object made
// per call (as a service that handles cancels must) instead of gRPC's
// DefaultReactor, to see what that costs. ECHO_API=cq serves on the
// completion-queue API instead: one queue per core (the container-aware
// count compute-server sizes its I/O threads by, so a taskset or CPU
// quota limits both alike; ECHO_THREADS to change), each polled by one thread
// that answers the call itself, with 32 calls requested per queue, as
// compute-server's RunQueues does.
//
// Not a test: CTest never runs it.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/pool/cpu_count.h"

namespace compute::bench {
namespace {

// A reactor object per call, as a service that must hear about cancels
// (OnCancel) needs: what that costs over gRPC's DefaultReactor.
class OwnReactor final : public grpc::ServerUnaryReactor {
 public:
  OwnReactor() { Finish(grpc::Status::OK); }
  void OnCancel() override {}
  void OnDone() override { delete this; }
};

// The echo's answer: for a blur, a result of its size holding `pixels` (its
// own pixels: moved out of the request where the API lets the handler own
// it, copied where the request is const); fib{value: 1} for anything else.
void Answer(const compute::v1::RunRequest& request, std::string pixels,
            compute::v1::RunResponse* response) {
  if (!request.has_blur()) {
    response->mutable_fib()->set_value(1);
    return;
  }
  compute::v1::BlurResult* blur = response->mutable_blur();
  blur->set_width(request.blur().width());
  blur->set_height(request.blur().height());
  blur->set_pixels(std::move(pixels));
}

class EchoService final : public compute::v1::Compute::CallbackService {
 public:
  explicit EchoService(bool own_reactor) : own_reactor_(own_reactor) {}
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                const compute::v1::RunRequest* request,
                                compute::v1::RunResponse* response) override {
    Answer(*request, request->blur().pixels(), response);
    if (own_reactor_) return new OwnReactor();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const bool own_reactor_;
};

// ECHO_API=cq: one call on a completion queue, answered when it arrives.
class CqCall {
 public:
  CqCall(compute::v1::Compute::AsyncService& service,
         grpc::ServerCompletionQueue& cq)
      : service_(service), cq_(cq), responder_(&context_) {
    service_.RequestRun(&context_, &request_, &responder_, &cq_, &cq_, this);
  }
  // On the queue's thread: the request (arrived) or the finish came back.
  void Proceed(bool ok) {
    if (finishing_ || !ok) {
      delete this;
      return;
    }
    new CqCall(service_, cq_);  // keep one requested in its place
    finishing_ = true;
    // (mutable_blur() on another task would make it a blur: only a blur's.)
    std::string pixels;
    if (request_.has_blur())
      pixels.swap(*request_.mutable_blur()->mutable_pixels());
    Answer(request_, std::move(pixels), &response_);
    responder_.Finish(response_, grpc::Status::OK, this);
  }

 private:
  compute::v1::Compute::AsyncService& service_;
  grpc::ServerCompletionQueue& cq_;
  grpc::ServerContext context_;
  compute::v1::RunRequest request_;
  compute::v1::RunResponse response_;
  grpc::ServerAsyncResponseWriter<compute::v1::RunResponse> responder_;
  bool finishing_ = false;
};

void PollQueue(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<CqCall*>(tag)->Proceed(ok);
}

// compute-server's default --max_message_bytes.
constexpr int kMaxMessageBytes = 32 << 20;

struct Flags {
  std::string address = "127.0.0.1";
  int port = 0;
};

// "--name=value" or "--name value"; false (with a message) on anything else.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    if (name != "--port" && name != "--address") {
      std::fprintf(stderr, "echo_server: unknown flag '%s'\n", argv[i]);
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "echo_server: %s needs a value\n", argv[i]);
        return false;
      }
      value = argv[++i];
    }
    if (name == "--address") {
      flags->address = value;
      continue;
    }
    char* end = nullptr;
    errno = 0;
    long port = std::strtol(value.c_str(), &end, 10);
    if (errno != 0 || end == value.c_str() || *end != '\0' || port < 0 ||
        port > 65535) {
      std::fprintf(stderr, "echo_server: --port must be 0..65535 (got '%s')\n",
                   value.c_str());
      return false;
    }
    flags->port = static_cast<int>(port);
  }
  return true;
}

int Main(int argc, char** argv) {
  // As compute-server does: Debian's abseil keeps a lock-order graph for
  // every absl::Mutex gRPC takes, ~10% of a trivial call (server/main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  // Block the stop signals before gRPC starts its threads (they inherit the
  // mask), then wait for one on this thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // ECHO_OWN_REACTOR=1: a reactor object per call instead of DefaultReactor.
  const char* own = std::getenv("ECHO_OWN_REACTOR");
  EchoService service(own != nullptr && std::string_view(own) == "1");
  const char* api = std::getenv("ECHO_API");
  const bool cq_api = api != nullptr && std::string_view(api) == "cq";
  int threads = compute::DetectCpuCount().cpus;
  if (const char* n = std::getenv("ECHO_THREADS")) threads = std::atoi(n);
  threads = std::max(1, threads);
  compute::v1::Compute::AsyncService async_service;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  int selected_port = 0;
  builder.AddListeningPort(flags.address + ":" + std::to_string(flags.port),
                           grpc::InsecureServerCredentials(), &selected_port);
  if (cq_api) {
    builder.RegisterService(&async_service);
    for (int i = 0; i < threads; ++i) {
      queues.push_back(builder.AddCompletionQueue());
    }
  } else {
    builder.RegisterService(&service);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  std::vector<std::thread> pollers;
  for (auto& cq : queues) {
    if (server == nullptr) break;
    for (int i = 0; i < 32; ++i) new CqCall(async_service, *cq);
    pollers.emplace_back(PollQueue, cq.get());
  }
  if (server == nullptr || selected_port == 0) {
    std::fprintf(stderr, "echo_server: cannot listen on %s:%d\n",
                 flags.address.c_str(), flags.port);
    for (auto& cq : queues) {
      cq->Shutdown();
      PollQueue(cq.get());  // drains it
    }
    return 1;
  }
  std::printf("port %d\n", selected_port);
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  // Every call is answered at once; a second is ample, and bounds the exit.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  for (auto& cq : queues) cq->Shutdown();
  for (std::thread& t : pollers) t.join();
  return 0;
}

}  // namespace
}  // namespace compute::bench

int main(int argc, char** argv) { return compute::bench::Main(argc, argv); }
