#include "server/service/server.h"

#include <algorithm>
#include <cassert>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/base/net.h"
#include "server/base/pem.h"
#include "server/service/call_interceptor.h"

namespace compute::service {
namespace {

// "tls_cert: cannot read PATH: reason". A certificate not valid now, or a
// server certificate without serverAuth, is added to *warnings (pem.h says
// why not an error).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerConfig& config, std::vector<std::string>* warnings) {
  if (config.tls_cert.empty() && config.tls_key.empty()) {
    if (!config.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          "tls_client_ca needs tls_cert and tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (config.tls_cert.empty() || config.tls_key.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key go together");
  }
  auto cert = ReadPemFile(config.tls_cert_name, config.tls_cert,
                          PemKind::kCertificates);
  if (!cert.ok()) return cert.status();
  auto key = ReadPemFile(config.tls_key_name, config.tls_key, PemKind::kKey);
  if (!key.ok()) return key.status();
  absl::Status pair =
      CheckKeyMatchesCertificate(config.tls_cert_name, config.tls_cert, *cert,
                                 config.tls_key_name, config.tls_key, *key);
  if (!pair.ok()) return pair;
  const absl::Time now = absl::Now();
  auto check_validity = [&](const std::string& name, const std::string& path,
                            const std::string& pem) {
    std::string problem = CertificateValidityProblem(name, path, pem, now);
    if (!problem.empty()) warnings->push_back(std::move(problem));
  };
  check_validity(config.tls_cert_name, config.tls_cert, *cert);
  if (std::string problem = ServerCertificatePurposeProblem(
          config.tls_cert_name, config.tls_cert, *cert);
      !problem.empty()) {
    warnings->push_back(std::move(problem));
  }
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.tls_client_ca.empty()) {
    // Empty, it would refuse every client certificate, with one gRPC log
    // line per handshake as the only sign.
    auto ca = ReadPemFile(config.tls_client_ca_name, config.tls_client_ca,
                          PemKind::kCertificates);
    if (!ca.ok()) return ca.status();
    check_validity(config.tls_client_ca_name, config.tls_client_ca, *ca);
    if (std::string problem = ClientCaProblem(config.tls_client_ca_name,
                                              config.tls_client_ca, *ca);
        !problem.empty()) {
      warnings->push_back(std::move(problem));
    }
    options.pem_root_certs = *ca;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// Calls each completion queue keeps requested: enough that a burst finds
// one waiting while the queue's thread handles the last.
constexpr int kRequestsPerQueue = 32;

// Threads gRPC may run synchronous services (reflection) on: see its use.
constexpr int kSyncServiceThreads = 8;

// The most one read from a connection takes (see its use).
constexpr int kMaxReadChunkBytes = 256 * 1024;

int Millis(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return INT_MAX;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ComputeServer>> ComputeServer::Start(
    const ServerConfig& config) {
  std::vector<std::string> warnings;
  auto credentials = Credentials(config, &warnings);
  if (!credentials.ok()) return credentials.status();
  auto pool = WorkerPool::Create(config.pool);
  if (!pool.ok()) return pool.status();

  std::unique_ptr<ComputeServer> server(new ComputeServer());
  server->start_warnings_ = std::move(warnings);
  server->quiet_period_ = config.drain_quiet_period;
  server->quiet_wait_limit_ = config.drain_quiet_wait_limit;
  server->pool_ = std::move(*pool);
  server->service_ = std::make_unique<ComputeService>(
      *server->pool_,
      ComputeServiceOptions{.admission = config.admission,
                            .trust_tenant_header = config.trust_tenant_header,
                            .tenant_ipv6_prefix = config.tenant_ipv6_prefix,
                            .tenant_weights = config.tenant_weights,
                            .observer = config.observer,
                            .tenant_observer = config.tenant_observer,
                            .run_task = config.run_task,
                            .load_report_interval = config.load_report_interval,
                            .cpus = config.cpus,
                            .max_message_bytes = config.max_message_bytes});

  // Health on our own queues (health.h says why not gRPC's).
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (config.observer != nullptr) {
    // Health and reflection calls are counted too (ComputeService counts
    // its own).
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(std::make_unique<CallInterceptorFactory>(
        config.observer, compute::v1::Compute::service_full_name()));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  // Before gRPC tries: its own failure logs a multi-line error of its own.
  if (absl::Status s =
          CheckListenAddress(config.address_name, config.address, config.port,
                             /*ipv4_only=*/false, config.port_name);
      !s.ok()) {
    return s;
  }
  std::string address = HostPort(config.address, config.port);
  builder.AddListeningPort(address, *credentials, &server->port_);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would
  // quietly share the calls with the first. A port taken is an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->queues_ = std::make_unique<RunQueues>(
      *server->service_, std::max(1, config.io_threads), kRequestsPerQueue,
      config.start_io_thread);
  server->queues_->AddTo(builder);
  server->health_ = std::make_unique<HealthService>();
  server->health_->AddTo(builder);
  grpc::ResourceQuota quota("compute-transport");
  // Reflection is a synchronous service in gRPC 1.51: each open stream
  // holds a thread of gRPC's pool while it waits for the client, and the
  // pool had no bound (a client that opened 5,000 streams and sent nothing
  // made 5,000 threads, 374 MiB). Past this many, a new stream is answered
  // RESOURCE_EXHAUSTED ("Server Threadpool Exhausted") at once. Run and
  // health are served on threads of their own (RunQueues), not these.
  quota.SetMaxThreads(kSyncServiceThreads);
  if (config.transport_quota_bytes > 0) {
    // The pool's memory budget charges a call only once its request has
    // been received and parsed; below the handler, gRPC's own buffers (the
    // bodies being read) are bounded by its resource quota, which shrinks
    // the HTTP/2 flow-control windows it grants as the quota fills (which
    // did not hold back a burst of large bodies in our measurements: they
    // arrived nearly at once), and at the limit resets streams (RST_STREAM,
    // ENHANCE_YOUR_CALM: the client sees RESOURCE_EXHAUSTED without
    // pushback) or closes idle connections. Its share of the budget is
    // sized for that (SplitMemoryBudget, server/config.cc).
    quota.Resize(static_cast<size_t>(config.transport_quota_bytes));
  }
  builder.SetResourceQuota(quota);
  // Compressed requests are refused, from their headers, with
  // UNIMPLEMENTED "Compression algorithm 'gzip' is disabled". gRPC 1.51
  // inflates a message whole and only then compares it with the receive
  // limit below (it checks only the compressed size first), so 200 KB of
  // gzip'd zeros made the server hold 200 MiB for one call; 1,000x
  // amplification. No option bounds the inflation. Turning gRPC's
  // decompression off (GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION) inflates
  // nothing either, but hands the service bytes it cannot parse: an empty
  // UNIMPLEMENTED. Accepting gzip safely would need the service to inflate
  // the raw bytes itself, stopping at the limit. Identity cannot be
  // disabled. Responses are never compressed.
  for (int a = GRPC_COMPRESS_NONE + 1; a < GRPC_COMPRESS_ALGORITHMS_COUNT;
       ++a) {
    builder.SetCompressionAlgorithmSupportStatus(
        static_cast<grpc_compression_algorithm>(a), false);
  }
  // Streams one connection may hold open. gRPC 1.51 sets no bound of its
  // own, and a stream whose headers arrived holds a call (12-13 KB
  // measured) until its body has: nothing times out a body that never
  // comes, the resource quota does not count these calls, and they never
  // reach our code (gRPC reads the body before it publishes the call). A
  // client that opens more than this is a connection error: gRPC ends every
  // stream on it and closes it. gRPC clients wait for a free stream
  // instead. Two gaps this cannot close (README, "Reliability and
  // security"): gRPC enforces the limit only once the client has
  // acknowledged our SETTINGS, and there is no cap on connections.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config.max_concurrent_streams);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             Millis(config.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             Millis(config.max_connection_age_grace));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             Millis(config.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             Millis(config.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             Millis(config.keepalive_timeout));
  // Let clients keep idle connections alive with pings (no GOAWAY storm).
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // How much one read from a connection may take at once. gRPC parses all
  // of a read before the streams it opened and closed are freed, and by
  // default a read takes whatever the socket holds: a client that opens and
  // resets streams faster than the server reads them (HTTP/2 "rapid
  // reset") made it hold ~13 KB per stream, 1.3 GB for 100,000 streams on
  // a server that shares its core (scripts/bench/rapid_reset.sh). At
  // 256 KiB a read holds at most a few thousand such streams (peak 33 MiB
  // for the same flood); a 16 MiB request is 64 reads, and its round trip
  // did not measurably change. It does not bound the streams opened and
  // not yet taken by an I/O thread: with one I/O thread, or a flood on
  // several connections, those peaked at 254-434 MiB (docs/reliability.md,
  // "Transport limits"); gRPC 1.51 has nothing that bounds them.
  builder.AddChannelArgument(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE,
                             kMaxReadChunkBytes);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    // Taken since the check above?
    if (absl::Status s =
            CheckListenAddress(config.address_name, config.address, config.port,
                               /*ipv4_only=*/false, config.port_name);
        !s.ok()) {
      return s;
    }
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     " (in use, or not an address of this host)"));
  }
  // (Refused, the server drains what it started as it is destroyed.)
  if (absl::Status s = server->queues_->Start(); !s.ok()) return s;
  // Serving before the first health call is taken: one already waiting
  // since the port opened was answered NOT_FOUND (a review's finding).
  server->health_->SetServing("", true);
  server->health_->SetServing(compute::v1::Compute::service_full_name(), true);
  server->health_->Start(*server->queues_);
  return server;
}

void ComputeServer::Drain(absl::Duration timeout) {
  {
    MutexLock lock(&drain_mu_);
    if (drain_begun_) {
      // Another caller drains: return once it has, not before (the
      // destructor's Drain would free what that one still uses).
      while (!drain_done_) drain_done_cv_.Wait(&drain_mu_);
      return;
    }
    drain_begun_ = true;
  }
  DrainOnce(timeout);
  // Under the lock: a waiter may destroy this server as soon as it sees
  // drain_done_, and must not find this thread still in SignalAll.
  MutexLock lock(&drain_mu_);
  drain_done_ = true;
  drain_done_cv_.SignalAll();
}

void ComputeServer::AwaitCallsStopArriving(absl::Time deadline) {
  // The monotonic clock, not the pool's (a test's SimulatedClock would never
  // end the wait) nor the wall clock (a step back would stretch it).
  const absl::Time start = MonotonicNow();
  const absl::Time limit =
      start + std::min(quiet_wait_limit_, deadline - pool_->clock().Now());
  uint64_t seen = service_->ArrivalCount();
  for (absl::Time now = start;
       now < limit && !end_drain_now_.load(std::memory_order_acquire);
       now = MonotonicNow()) {
    absl::SleepFor(std::min(quiet_period_, limit - now));
    const uint64_t now_seen = service_->ArrivalCount();
    if (now_seen == seen) return;  // a quiet period: clients have gone
    seen = now_seen;
  }
}

void ComputeServer::DrainOnce(absl::Duration timeout) {
  absl::Time deadline = pool_->clock().Now() + timeout;
  if (server_ == nullptr) {  // Start failed before serving
    pool_->Shutdown(deadline);
    return;
  }
  // Health first: probes and clients stop choosing us while we finish.
  health_->SetAllNotServing();
  AwaitCallsStopArriving(deadline);
  service_->StartDraining();
  // Then the GOAWAY (server.h, step 2), through gRPC's core: its C++ API
  // sends it only from grpc::Server::Shutdown, which also waits for every
  // call and cancels what is left at its deadline, and cannot be hurried by
  // a second signal once it waits. The core's shutdown may be started more
  // than once, each start notified when it completes; this one only sends
  // the GOAWAY, closes the listener and fails the service's requests for
  // calls not yet arrived (RunCall and the health calls then make no
  // more). Calls in progress go on; Shutdown below waits for them.
  // (A core queue: a C++ one takes only its own API's tags.)
  grpc_completion_queue* goaway_done =
      grpc_completion_queue_create_for_next(nullptr);
  grpc_server_shutdown_and_notify(server_->c_server(), goaway_done,
                                  goaway_done);
  // Every accepted call is completed (and its Finish issued) by this.
  pool_->Shutdown(deadline);
  // And its answer taken by its client, within the same deadline: gRPC's
  // Shutdown below would cancel an answer still on its way (a large one to
  // a slow reader) after its grace. (A second signal ends this wait too.)
  if (!pool_->AwaitHeldBytesReleased()) {
    untaken_answer_bytes_.store(pool_->held_bytes(), std::memory_order_release);
  }
  // What remains are calls in flight in gRPC itself (answered UNAVAILABLE by
  // the draining service); give them a moment, then cancel. (Unless the
  // drain was ended: gRPC's Shutdown cannot be hurried once it waits.)
  const auto grace = end_drain_now_.load(std::memory_order_acquire)
                         ? std::chrono::seconds(0)
                         : std::chrono::seconds(1);
  // Open Watch streams end now: gRPC's Shutdown would wait for them.
  health_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  // The GOAWAY's shutdown completed with Shutdown's: take its
  // notification, then the queue's own end.
  grpc_completion_queue_shutdown(goaway_done);
  for (;;) {
    grpc_event event = grpc_completion_queue_next(
        goaway_done, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr);
    if (event.type == GRPC_QUEUE_SHUTDOWN) break;
    assert(event.type == GRPC_OP_COMPLETE && event.tag == goaway_done);
  }
  grpc_completion_queue_destroy(goaway_done);
  // Then the queues, in that order: every call object is freed as they
  // drain.
  queues_->Shutdown();
}

void ComputeServer::EndDrainNow() {
  end_drain_now_.store(true, std::memory_order_release);
  service_->StartDraining();
  // Brings the deadline of the pool's Shutdown that Drain waits in (or will
  // call) forward to now, and waits for the pool to stop.
  pool_->Shutdown(pool_->clock().Now());
}

ComputeServer::~ComputeServer() { Drain(absl::ZeroDuration()); }

}  // namespace compute::service
