// Faults against the real compute-server binary: requests that lie about
// their framing, a SIGKILL and an immediate restart, a flood of connections
// and of streams that never send a body, a slowloris client on the metrics
// port, and a client that never reads its responses. Each test is bounded
// (seconds); each asserts that the server answers what it can with a gRPC
// status, stays up, and keeps serving well-behaved clients.
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "compute/v1/compute.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/raw_http2.h"
#include "tests/e2e/server_process.h"
#include "tests/integration/calls.h"
#include "tests/sanitized.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::testing {
namespace {

using ::compute::metrics::testing::FreeLoopbackPort;
using ::compute::metrics::testing::HttpGet;
using ::compute::metrics::testing::Scrape;

std::vector<std::string> BaseArgs() {
  return {"--address=127.0.0.1", "--port=0", "--metrics_port=0"};
}

// metric(name, labels): the sum of the matching series on the server's
// /metrics now, or -1 if the scrape failed.
auto MetricReader(int metrics_port) {
  return [metrics_port](const std::string& name,
                        const metrics::testing::Labels& labels = {}) {
    auto s = Scrape(metrics_port);
    return s.ok() ? s->Sum(name, labels) : -1.0;
  };
}

std::shared_ptr<grpc::Channel> ChannelTo(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureChannelCredentials());
}

// A Run(fib 10) on `channel` (a fresh one if null) within `deadline`.
grpc::Status CallFib(int port, absl::Duration deadline,
                     std::shared_ptr<grpc::Channel> channel = nullptr) {
  if (channel == nullptr) channel = ChannelTo(port);
  auto stub = compute::v1::Compute::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  compute::v1::RunRequest request = Fib(10);
  compute::v1::RunResponse response;
  return stub->Run(&context, request, &response);
}

// True if a fresh connection gets health SERVING for compute.v1.Compute.
bool HealthServing(int port) {
  auto stub = grpc::health::v1::Health::NewStub(ChannelTo(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("compute.v1.Compute");
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

// The server is up and serves a normal call and a health check.
// A whole Run call on `stream` of a raw HTTP/2 connection: its headers,
// with `timeout` as grpc-timeout, and `request` as its one message.
std::string RunCallFrames(uint32_t stream, const std::string& timeout,
                          const compute::v1::RunRequest& request) {
  return Http2Frame(
             http2::kHeaders, http2::kEndHeaders, stream,
             RunCallHeaders("application/grpc", {{"grpc-timeout", timeout}})) +
         Http2Frame(http2::kData, http2::kEndStream, stream,
                    GrpcMessage(request.SerializeAsString()));
}

// Opens a Run call of `request` on `stream`: its HEADERS, then its body
// within the windows the server grants (SendData), for a request larger
// than the 64 KiB a connection starts with. False if either fails.
bool SendLargeRunCall(RawHttp2Connection& conn, uint32_t stream,
                      const compute::v1::RunRequest& request,
                      const std::string& timeout, absl::Duration within) {
  return conn.Send(Http2Frame(http2::kHeaders, http2::kEndHeaders, stream,
                              RunCallHeaders("application/grpc",
                                             {{"grpc-timeout", timeout}}))) &&
         conn.SendData(stream, GrpcMessage(request.SerializeAsString()),
                       within);
}

void ExpectHealthy(int port) {
  grpc::Status s = CallFib(port, absl::Seconds(5));
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_TRUE(HealthServing(port));
}

// `n` calls spinning `spin` each, all in flight at once on one connection:
// every one succeeds.
void ExpectConcurrentCallsServed(int port, int n, absl::Duration spin,
                                 absl::Duration deadline) {
  auto stub = compute::v1::Compute::NewStub(ChannelTo(port));
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::make_unique<AsyncCall>(*stub, Spin(spin), deadline));
  }
  for (auto& c : calls) {
    grpc::Status s = c->Wait();
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
}

// Open file descriptors of `pid`, or -1.
int OpenFds(pid_t pid) {
  std::error_code error;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/fd"), error);
       !error && it != std::filesystem::directory_iterator();
       it.increment(error)) {
    ++n;
  }
  return error ? -1 : n;
}

// VmRSS of `pid` in KiB, or -1. (Printed, not asserted: glibc keeps
// freed memory, so RSS need not fall back when nothing leaks.)
int64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

absl::Duration Percentile(std::vector<absl::Duration> v, double q) {
  if (v.empty()) return absl::ZeroDuration();
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i];
}

std::string FibBody() { return Fib(10).SerializeAsString(); }

// Reads the server's SETTINGS on `conn` and acknowledges them (as
// ReadUntilEnd does); false if they have not come within 5 s. Waits for
// SETTINGS_MAX_CONCURRENT_STREAMS, which the server always sets (256 unless
// --max_concurrent_streams says otherwise), so it is in the first SETTINGS.
bool ReadServerSettings(RawHttp2Connection& conn) {
  return PollUntil(
      [&] {
        conn.ReadUntilEnd(0x7fffffff, absl::Milliseconds(10));
        return conn.PeerSetting(http2::kSettingsMaxConcurrentStreams)
            .has_value();
      },
      absl::Seconds(5));
}

// Fib tasks the server has counted (any outcome), or -1.
double FibTasks(int metrics_port) {
  auto scrape = Scrape(metrics_port);
  return scrape.ok() ? scrape->Sum("compute_tasks_total", {{"task", "fib"}})
                     : -1;
}

// A request that lies about its framing, sent on stream 1 of a fresh
// connection, and what it must get: a grpc-status on its stream (or, where
// the client also stops writing, the connection closed), and how many
// tasks it may run.
struct LyingRequest {
  std::string name;
  std::string bytes;         // everything after the client preface
  bool shutdown_write;       // then stop writing (EOF to the server)
  int grpc_status;           // expected; -1: the connection closes instead
  std::string message_part;  // expected in grpc-message
  int tasks;                 // fib tasks it runs
};

// Each of these gets a gRPC status on its own stream, never a crash or a
// hang, runs at most the one task it asked for, and the server keeps
// serving (a normal call succeeds, health is SERVING) after each.
TEST(FaultE2eTest, LyingRequestsGetAGrpcErrorAndTheServerStaysHealthy) {
  constexpr int kMaxMessageBytes = 1 << 20;
  int metrics_port = FreeLoopbackPort();
  // No load reports: gRPC Huffman-codes their trailers, which the raw
  // client's HPACK decoder does not read (raw_http2.h).
  ServerProcess server({"--address=127.0.0.1", "--port=0",
                        "--metrics_address=127.0.0.1",
                        absl::StrCat("--metrics_port=", metrics_port),
                        absl::StrCat("--max_message_bytes=", kMaxMessageBytes),
                        "--load_report_interval=inf"});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  ExpectHealthy(*port);

  // Oversized: one byte over the receive limit, from a real gRPC client.
  {
    auto stub = compute::v1::Compute::NewStub(ChannelTo(*port));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    compute::v1::RunRequest request;
    request.mutable_sha256()->set_data(std::string(kMaxMessageBytes, 'x'));
    compute::v1::RunResponse response;
    grpc::Status s = stub->Run(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("larger than max"));
    ExpectHealthy(*port);
  }

  using http2::kData;
  using http2::kEndHeaders;
  using http2::kEndStream;
  using http2::kHeaders;
  const std::string headers =
      Http2Frame(kHeaders, kEndHeaders, 1, RunCallHeaders());
  const std::string body = FibBody();
  const std::vector<LyingRequest> cases = {
      // gRPC 1.51 logs the content-type as an error (a JSON line) and
      // serves the call anyway: the body is a well-formed gRPC message.
      {"content-type text/plain",
       Http2Frame(kHeaders, kEndHeaders, 1, RunCallHeaders("text/plain")) +
           Http2Frame(kData, kEndStream, 1, GrpcMessage(body)),
       false, 0, "", 1},
      // The stream ends with 1000 bytes of the message missing.
      {"length prefix beyond the body",
       headers + Http2Frame(kData, kEndStream, 1,
                            GrpcMessage(body, body.size() + 1000)),
       false, 13, "Unable to parse request", 0},
      {"length prefix cut short",
       headers +
           Http2Frame(kData, kEndStream, 1, GrpcMessage(body).substr(0, 3)),
       false, 13, "Unable to parse request", 0},
      // gRPC 1.51 hands a unary handler the first message and drops the
      // rest: answered once, run once.
      {"two messages on a unary call",
       headers + Http2Frame(kData, kEndStream, 1,
                            GrpcMessage(body) + GrpcMessage(body)),
       false, 0, "", 1},
      // A DATA frame whose header promises 100 bytes more than come before
      // the client stops writing, cut inside the gRPC message (frame header
      // + its 5-byte prefix + 2 bytes of the body): the message never
      // completes, so no task can run. (Cut after the whole message, the
      // server could run it before it sees the EOF: a race, not a test.)
      {"a DATA frame cut short, then EOF",
       headers +
           Http2Frame(kData, 0, 1, GrpcMessage(body) + std::string(100, 'x'))
               .substr(0, 9 + 5 + 2),
       true, 14, "", 0},
  };
  for (const LyingRequest& c : cases) {
    SCOPED_TRACE(c.name);
    const double tasks_before = FibTasks(metrics_port);
    ASSERT_GE(tasks_before, 0);
    RawHttp2Connection conn;
    ASSERT_TRUE(conn.Connect(*port));
    ASSERT_TRUE(conn.Send(c.bytes));
    if (c.shutdown_write) conn.ShutdownWrite();
    StreamEnd end = conn.ReadUntilEnd(1, absl::Seconds(5));
    std::cout << c.name << ": grpc-status " << end.grpc_status() << " '"
              << end.fields["grpc-message"] << "'"
              << (end.kind == StreamEnd::Kind::kClosed ? ", connection closed"
                                                       : "")
              << "\n";
    ASSERT_NE(end.kind, StreamEnd::Kind::kBadFrame) << end.error;
    EXPECT_NE(end.kind, StreamEnd::Kind::kTimeout) << "no answer in 5 s";
    if (c.grpc_status >= 0) {
      EXPECT_EQ(end.kind, StreamEnd::Kind::kTrailers);
      EXPECT_EQ(end.grpc_status(), c.grpc_status);
      EXPECT_THAT(end.fields["grpc-message"],
                  ::testing::HasSubstr(c.message_part));
    } else {
      EXPECT_EQ(end.kind, StreamEnd::Kind::kClosed);
    }
    // The task it asked for ran (counted once it completed), no other.
    if (c.tasks > 0) {
      EXPECT_TRUE(PollUntil(
          [&] { return FibTasks(metrics_port) >= tasks_before + c.tasks; },
          absl::Seconds(5)));
    }
    EXPECT_EQ(FibTasks(metrics_port), tasks_before + c.tasks);
    ExpectHealthy(*port);
  }
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// A server killed with SIGKILL leaves its connections to the kernel
// (FIN_WAIT, TIME_WAIT on the server's port); a restart on the same port
// must still bind at once (SO_REUSEADDR, in gRPC's listener and in our own
// port check) and serve. (The time from the kill to the first answer is
// printed, not asserted: the target is 1 s, and spawning a fresh process on
// a loaded machine sets most of it.)
TEST(FaultE2eTest, SigkillThenRestartRebindsTheSamePortAndServes) {
  ServerProcess first(BaseArgs());
  ASSERT_TRUE(first.Spawn());
  std::optional<int> port = first.WaitServing();
  ASSERT_TRUE(port.has_value());
  // Connections open when it dies: one idle after a call, one with a call
  // running, and one whose client neither reads nor closes, which leaves
  // the server's side of it in FIN-WAIT on the port after the kill (a bind
  // without SO_REUSEADDR then fails with EADDRINUSE).
  RawHttp2Connection lingering;
  ASSERT_TRUE(lingering.Connect(*port));
  std::shared_ptr<grpc::Channel> idle = ChannelTo(*port);
  ASSERT_TRUE(CallFib(*port, absl::Seconds(5), idle).ok());
  std::shared_ptr<grpc::Channel> busy = ChannelTo(*port);
  ASSERT_TRUE(busy->WaitForConnected(
      absl::ToChronoTime(absl::Now() + absl::Seconds(5))));
  auto stub = compute::v1::Compute::NewStub(busy);
  auto running = std::make_unique<AsyncCall>(*stub, Spin(absl::Seconds(10)),
                                             absl::Seconds(20));
  first.Signal(SIGKILL);
  ExitResult killed = first.Wait(absl::Seconds(10));
  EXPECT_EQ(killed.code, -1);  // killed by the signal
  const absl::Time killed_at = absl::Now();

  ServerProcess second({"--address=127.0.0.1", absl::StrCat("--port=", *port),
                        "--metrics_port=0"});
  ASSERT_TRUE(second.Spawn());
  std::optional<int> second_port = second.WaitServing(absl::Seconds(10));
  ASSERT_TRUE(second_port.has_value())
      << "the restart did not serve: " << second.Wait().stderr_text;
  EXPECT_EQ(*second_port, *port);
  const absl::Time bound_at = absl::Now();
  bool served =
      PollUntil([&] { return CallFib(*port, absl::Milliseconds(500)).ok(); },
                absl::Seconds(5));
  const absl::Time served_at = absl::Now();
  ASSERT_TRUE(served);
  std::cout << "SIGKILL -> restart on port " << *port << ": serving line after "
            << absl::FormatDuration(bound_at - killed_at)
            << ", first call answered after "
            << absl::FormatDuration(served_at - killed_at) << "\n";
  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait().code, 0);
}

// Raises this process's open-file limit to its hard limit (the server it
// spawns inherits it); returns the soft limit now in force.
rlim_t RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// Many connections opened at once (each sends the HTTP/2 preface, so gRPC
// sets up a transport for it), plus 200 streams whose headers arrive but
// whose body never does: a well-behaved client on its own connection is
// still served during it (it finishes calls while the whole flood is held),
// and once the flood is dropped the server's open fds return to what they
// were.
TEST(FaultE2eTest, ConnectionFloodAndBodylessStreamsLeaveOthersServed) {
  rlim_t fd_limit = RaiseFdLimit();
  // The test holds each connection once, the server once; keep room for
  // both processes' own fds.
  const int connections = static_cast<int>(
      std::min<rlim_t>(1000, fd_limit > 400 ? fd_limit - 200 : 0));
  ASSERT_GE(connections, 200) << "open-file limit " << fd_limit;
  constexpr int kBodylessStreams = 200;
  constexpr int kStreamsPerConnection = 100;
  constexpr int kCalls = 200;
  // Calls the well-behaved client must finish while the whole flood is held.
  constexpr int kCallsWhileHeld = 20;

  ServerProcess server(
      {"--address=127.0.0.1", "--port=0", "--metrics_port=0", "--workers=2"});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  std::shared_ptr<grpc::Channel> good = ChannelTo(*port);
  auto timed_calls = [&] {
    std::vector<absl::Duration> latencies;
    for (int i = 0; i < kCalls; ++i) {
      absl::Time start = absl::Now();
      grpc::Status s = CallFib(*port, absl::Seconds(5), good);
      EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
      latencies.push_back(absl::Now() - start);
    }
    return latencies;
  };
  ASSERT_TRUE(CallFib(*port, absl::Seconds(5), good).ok());  // connects
  absl::Duration unloaded_p99 = Percentile(timed_calls(), 0.99);
  const int baseline = OpenFds(server.pid());
  ASSERT_GT(baseline, 0);
  const int64_t rss_before = RssKib(server.pid());

  // The well-behaved client calls all through the flood: while it opens,
  // while it is held, and while it is dropped (at least kCalls calls).
  std::atomic<bool> flooding{true};
  std::atomic<int> ok_calls{0};  // the well-behaved client's, so far
  std::vector<absl::Duration> loaded;
  std::thread well_behaved([&] {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while ((flooding.load() || static_cast<int>(loaded.size()) < kCalls) &&
           absl::Now() < give_up) {
      absl::Time start = absl::Now();
      grpc::Status s = CallFib(*port, absl::Seconds(5), good);
      EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
      if (s.ok()) ok_calls.fetch_add(1);
      loaded.push_back(absl::Now() - start);
    }
  });
  struct StopAndJoin {  // also when an ASSERT below returns early
    std::atomic<bool>& flag;
    std::thread& thread;
    ~StopAndJoin() {
      flag.store(false);
      if (thread.joinable()) thread.join();
    }
  } stop_and_join{flooding, well_behaved};
  std::vector<int> flood;
  for (int i = 0; i < connections; ++i) {
    int fd = ConnectLoopback(*port);
    if (fd < 0) break;
    flood.push_back(fd);
  }
  ASSERT_EQ(static_cast<int>(flood.size()), connections);
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                              Http2Frame(http2::kSettings, 0, 0, "");
  for (int fd : flood) {
    ASSERT_EQ(send(fd, preface.data(), preface.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(preface.size()));
  }
  std::vector<std::unique_ptr<RawHttp2Connection>> bodyless;
  for (int c = 0; c < kBodylessStreams / kStreamsPerConnection; ++c) {
    auto conn = std::make_unique<RawHttp2Connection>();
    ASSERT_TRUE(conn->Connect(*port));
    std::string frames;
    for (uint32_t s = 0; s < kStreamsPerConnection; ++s) {
      // No END_STREAM, no grpc-timeout: the body is promised and never sent.
      frames += Http2Frame(http2::kHeaders, http2::kEndHeaders, 2 * s + 1,
                           RunCallHeaders());
    }
    ASSERT_TRUE(conn->Send(frames));
    bodyless.push_back(std::move(conn));
  }
  // The flood reached the server: it holds (about) one fd per connection.
  int peak = 0;
  EXPECT_TRUE(PollUntil(
      [&] {
        peak = std::max(peak, OpenFds(server.pid()));
        return peak >= baseline + connections;
      },
      absl::Seconds(10)))
      << "server fds " << peak << ", baseline " << baseline;
  const int ok_at_peak = ok_calls.load();
  const int64_t rss_flooded = RssKib(server.pid());
  // Nothing in the flood ended a body-less stream: they are still open.
  for (auto& conn : bodyless) {
    StreamEnd end = conn->ReadUntilEnd(1, absl::Milliseconds(100));
    EXPECT_EQ(end.kind, StreamEnd::Kind::kTimeout);
  }
  // Served, not starved: with the whole flood held, the well-behaved client
  // still finishes calls. The flood is held until it has finished
  // kCallsWhileHeld since the peak (a call held back until the flood was
  // gone would finish none of them); the bound only ends a starved test.
  EXPECT_TRUE(
      PollUntil([&] { return ok_calls.load() - ok_at_peak >= kCallsWhileHeld; },
                absl::Seconds(30)))
      << "the well-behaved client finished " << ok_calls.load() - ok_at_peak
      << " calls while the flood was held";
  const int calls_while_held = ok_calls.load() - ok_at_peak;

  for (int fd : flood) close(fd);
  bodyless.clear();
  int after = -1;
  EXPECT_TRUE(PollUntil(
      [&] {
        after = OpenFds(server.pid());
        return after <= baseline;
      },
      absl::Seconds(10)))
      << "server fds stayed at " << after << ", baseline " << baseline;
  flooding.store(false);
  well_behaved.join();
  absl::Duration loaded_p99 = Percentile(loaded, 0.99);
  std::cout << connections << " connections + " << kBodylessStreams
            << " body-less streams: server fds " << baseline << " -> " << peak
            << " -> " << after << "; well-behaved fib p99 "
            << absl::FormatDuration(unloaded_p99) << " unloaded, "
            << absl::FormatDuration(loaded_p99) << " during the flood ("
            << loaded.size() << " calls, " << calls_while_held
            << " finished while it was held); RSS " << rss_before << " KiB -> "
            << rss_flooded << " KiB -> " << RssKib(server.pid()) << " KiB\n";
  // The p99s are printed, not asserted: the 5x target is a
  // benchmark number, and on a loaded 2-core machine the other processes,
  // not the server, set them (unloaded 0.4-8.7 ms, during the flood
  // 0.4-25 ms, with three busy loops beside the test). Being served during
  // the flood is asserted above, as calls finished while it was held.
  ExpectHealthy(*port);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// --max_concurrent_streams reaches gRPC: the server announces it; a client
// that opens one stream more than it allows has its connection closed (so
// the body-less streams it held are freed, each ended UNAVAILABLE); a gRPC
// client with more calls than that on one connection has them wait on its
// side, and all are served. (gRPC 1.51 enforces the limit only once the
// client has acknowledged the server's SETTINGS, as this one does: README,
// "Reliability and security".)
TEST(FaultE2eTest, StreamsPastTheLimitCloseTheConnection) {
  constexpr uint32_t kLimit = 8;
  // No load reports: the raw client does not decode their trailer.
  ServerProcess server({"--address=127.0.0.1", "--port=0", "--metrics_port=0",
                        "--workers=2", "--load_report_interval=inf",
                        absl::StrCat("--max_concurrent_streams=", kLimit)});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());

  RawHttp2Connection conn;
  ASSERT_TRUE(conn.Connect(*port));
  // Reads the server's SETTINGS and acknowledges them.
  ASSERT_TRUE(PollUntil(
      [&] {
        conn.ReadUntilEnd(0x7fffffff, absl::Milliseconds(10));
        return conn.PeerSetting(http2::kSettingsMaxConcurrentStreams)
            .has_value();
      },
      absl::Seconds(5)));
  EXPECT_EQ(conn.PeerSetting(http2::kSettingsMaxConcurrentStreams), kLimit);
  std::string frames;
  for (uint32_t s = 0; s < kLimit; ++s) {
    frames += Http2Frame(http2::kHeaders, http2::kEndHeaders, 2 * s + 1,
                         RunCallHeaders());
  }
  ASSERT_TRUE(conn.Send(frames));
  EXPECT_EQ(conn.ReadUntilEnd(1, absl::Milliseconds(200)).kind,
            StreamEnd::Kind::kTimeout)
      << "within the limit: the streams wait for their bodies";
  ASSERT_TRUE(conn.Send(Http2Frame(http2::kHeaders, http2::kEndHeaders,
                                   2 * kLimit + 1, RunCallHeaders())));
  // One stream past the limit is an error of the connection: gRPC ends
  // every stream on it (UNAVAILABLE "Failed parsing HTTP/2") and closes it.
  StreamEnd first = conn.ReadUntilEnd(1, absl::Seconds(5));
  EXPECT_EQ(first.kind, StreamEnd::Kind::kTrailers);
  EXPECT_EQ(first.grpc_status(), 14) << first.fields["grpc-message"];
  std::cout << "a stream past the limit: stream 1 ended grpc-status "
            << first.grpc_status() << " '" << first.fields["grpc-message"]
            << "'\n";
  EXPECT_EQ(conn.ReadUntilEnd(0x7fffffff, absl::Seconds(5)).kind,
            StreamEnd::Kind::kClosed);

  ExpectConcurrentCallsServed(*port, static_cast<int>(3 * kLimit),
                              absl::Milliseconds(5), absl::Seconds(10));
  ExpectHealthy(*port);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// True if the server has closed none of `fds` (no FIN or error pending on
// any): read without consuming anything.
bool NoneClosedByPeer(const std::vector<int>& fds) {
  for (int fd : fds) {
    pollfd p{fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) != 0) return false;  // closed, or an error
  }
  return true;
}

// A slowloris client: connections that send the start of an HTTP request
// and then one byte at a time, each holding one of the metrics endpoint's
// threads for as long as it trickles. With many scrapes in parallel too, a
// scrape from a fresh connection must still be answered, and gRPC calls
// too (the two share nothing but the CPU).
//
// What it proves is that scrapes are answered while every slow connection
// is still open, so only scrapes that end before the server drops any of
// them (its 5 s request timeout) count for that, and at least one must;
// how long the scrapes take is not asserted (each has 20 s), so a slow
// machine that finishes the phase after the drop does not fail it.
TEST(FaultE2eTest, MetricsEndpointSurvivesSlowlorisAndParallelScrapes) {
  constexpr int kSlowConnections = 4;
#if COMPUTE_TEST_SANITIZED
  // A sanitized server renders each page several times slower: 200 scrapes
  // at once took past 3 s for a sixth of them on 2 shared cores (one CI run
  // of five), before the slow connections' 5 s were up.
  constexpr int kParallelScrapes = 100;
#else
  constexpr int kParallelScrapes = 200;
#endif
  const absl::Duration kTrickle = absl::Milliseconds(250);
  const absl::Duration kSlowlorisFor = absl::Seconds(15);
  int metrics_port = FreeLoopbackPort();
  ServerProcess server({"--address=127.0.0.1", "--port=0",
                        "--metrics_address=127.0.0.1",
                        absl::StrCat("--metrics_port=", metrics_port)});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  absl::Time start = absl::Now();
  ASSERT_TRUE(Scrape(metrics_port).ok());
  absl::Duration unloaded = absl::Now() - start;

  // Each slow connection sends a request line, then one header byte every
  // kTrickle, until the server closes it or kSlowlorisFor passes; it
  // records how long the server kept it.
  std::vector<int> slow;
  for (int i = 0; i < kSlowConnections; ++i) {
    int fd = ConnectLoopback(metrics_port);
    ASSERT_GE(fd, 0);
    const std::string line = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    ASSERT_EQ(send(fd, line.data(), line.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(line.size()));
    slow.push_back(fd);
  }
  std::atomic<int> slow_closed{0};
  std::vector<absl::Duration> held(kSlowConnections);
  std::thread trickle([&] {
    absl::Time began = absl::Now();
    std::vector<bool> open(kSlowConnections, true);
    while (absl::Now() - began < kSlowlorisFor &&
           slow_closed.load() < kSlowConnections) {
      absl::SleepFor(kTrickle);  // the attack's pace, not a synchronization
      for (int i = 0; i < kSlowConnections; ++i) {
        if (!open[i]) continue;
        char c;
        bool closed = recv(slow[i], &c, 1, MSG_DONTWAIT) == 0 ||
                      send(slow[i], "X", 1, MSG_NOSIGNAL) < 0;
        if (closed) {
          open[i] = false;
          held[i] = absl::Now() - began;
          slow_closed.fetch_add(1);
        }
      }
    }
    for (int i = 0; i < kSlowConnections; ++i) {
      if (open[i]) held[i] = absl::Now() - began;
    }
  });

  // Scrapes, one after another, each from a fresh connection and each
  // answered (200): the first before the parallel ones start, the others
  // while they run. Counted as made under the attack if no slow connection
  // had been dropped when it was answered.
  constexpr int kFreshScrapes = 10;
  const absl::Duration kScrapeTimeout = absl::Seconds(20);
  int fresh_under_attack = 0;
  absl::Duration fresh_latency;
  auto fresh_scrape = [&] {
    const absl::Time began = absl::Now();
    auto fresh = HttpGet("127.0.0.1", metrics_port, "/metrics", kScrapeTimeout);
    fresh_latency = std::max(fresh_latency, absl::Now() - began);
    EXPECT_TRUE(fresh.ok() && fresh->status == 200)
        << "a scrape from a fresh connection: " << fresh.status();
    if (fresh.ok() && fresh->status == 200 && NoneClosedByPeer(slow)) {
      ++fresh_under_attack;
    }
  };
  fresh_scrape();
  std::atomic<int> scrapes_ok{0};
  std::vector<std::thread> scrapers;
  for (int i = 0; i < kParallelScrapes; ++i) {
    scrapers.emplace_back([&] {
      auto scrape =
          HttpGet("127.0.0.1", metrics_port, "/metrics", kScrapeTimeout);
      if (scrape.ok() && scrape->status == 200) scrapes_ok.fetch_add(1);
    });
  }
  for (int i = 1; i < kFreshScrapes; ++i) fresh_scrape();
  for (std::thread& t : scrapers) t.join();
  EXPECT_GE(fresh_under_attack, 1)
      << "no scrape was answered while all slow connections were open";
  for (int i = 0; i < 10; ++i) {
    grpc::Status s = CallFib(*port, absl::Seconds(20));
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
  trickle.join();
  for (int fd : slow) close(fd);
  std::cout << kSlowConnections << " slowloris connections + "
            << kParallelScrapes << " parallel scrapes: " << scrapes_ok.load()
            << " scrapes answered; " << kFreshScrapes
            << " fresh scrapes took at most "
            << absl::FormatDuration(fresh_latency) << " (unloaded "
            << absl::FormatDuration(unloaded) << "), " << fresh_under_attack
            << " of them answered with every slow connection open; slow "
               "connections held";
  for (absl::Duration d : held) std::cout << " " << absl::FormatDuration(d);
  std::cout << "\n";
  EXPECT_EQ(scrapes_ok.load(), kParallelScrapes);
  // The server drops a request that has not arrived in its request timeout
  // (5 s), however steadily it trickles: within 10 s (the trickle goes on
  // to 15 s, so that a drop a little late is seen as late, not as never).
  for (absl::Duration d : held) EXPECT_LT(d, absl::Seconds(10));
  server.Signal(SIGTERM);
  start = absl::Now();
  EXPECT_EQ(server.Wait(absl::Seconds(20)).code, 0);
  std::cout << "SIGTERM to exit: " << absl::FormatDuration(absl::Now() - start)
            << "\n";
}

// A client that sends requests and never reads the answers: its streams'
// receive window is 0 and it never opens it, so no response byte can be
// sent to it. The tasks still run and the workers are freed (the server
// writes asynchronously; a worker never waits on a slow reader), and other
// clients are served meanwhile.
TEST(FaultE2eTest, ClientThatNeverReadsBlocksNoWorker) {
  constexpr int kCalls = 40;
  constexpr int kWorkers = 2;
  int metrics_port = FreeLoopbackPort();
  // --drain_timeout=1s: the answers the client never reads keep the drain
  // waiting (TheDrainWaitsForAnAnswerASlowClientIsStillTaking), by default
  // for 20 s; the exit after SIGTERM below need not take that long.
  ServerProcess server({"--address=127.0.0.1", "--port=0",
                        absl::StrCat("--workers=", kWorkers),
                        "--drain_timeout=1s", "--metrics_address=127.0.0.1",
                        absl::StrCat("--metrics_port=", metrics_port)});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());

  // 32x32 blurs: 1 KiB in and out each, so the 40 requests fit in the
  // server's initial 64 KiB receive windows and need no flow control from
  // this client.
  compute::v1::RunRequest blur;
  blur.mutable_blur()->set_width(32);
  blur.mutable_blur()->set_height(32);
  blur.mutable_blur()->set_pixels(std::string(32 * 32, '\x7f'));
  blur.mutable_blur()->set_radius(2);
  RawHttp2Connection reader_that_never_reads;
  ASSERT_TRUE(reader_that_never_reads.Connect(*port, /*initial_window=*/0));
  // Answers the server's SETTINGS, so the window of 0 is in force.
  ASSERT_TRUE(ReadServerSettings(reader_that_never_reads));
  std::string frames;
  for (uint32_t i = 0; i < kCalls; ++i) {
    frames += Http2Frame(http2::kHeaders, http2::kEndHeaders, 2 * i + 1,
                         RunCallHeaders("application/grpc",
                                        {{"grpc-timeout", "30S"}})) +
              Http2Frame(http2::kData, http2::kEndStream, 2 * i + 1,
                         GrpcMessage(blur.SerializeAsString()));
  }
  ASSERT_TRUE(reader_that_never_reads.Send(frames));

  // Every task ran and every worker is free again, though no response has
  // been read.
  std::optional<metrics::testing::Exposition> scrape;
  bool all_ran = PollUntil(
      [&] {
        auto s = Scrape(metrics_port);
        if (!s.ok()) return false;
        scrape = *s;
        return s->Sum("compute_tasks_total", {{"task", "blur"}}) >= kCalls &&
               s->Value("compute_pool_workers_busy") == std::optional(0.0);
      },
      absl::Seconds(10));
  ASSERT_TRUE(scrape.has_value());
  EXPECT_TRUE(all_ran)
      << "blur tasks " << scrape->Sum("compute_tasks_total", {{"task", "blur"}})
      << ", busy workers "
      << scrape->Value("compute_pool_workers_busy").value_or(-1);
  // Others are served, on more than one call at a time.
  ExpectConcurrentCallsServed(*port, 2 * kWorkers, absl::Milliseconds(20),
                              absl::Seconds(5));
  // Still nothing came back to the client that does not read: its
  // answers wait for a window it never opens.
  StreamEnd end =
      reader_that_never_reads.ReadUntilEnd(1, absl::Milliseconds(200));
  EXPECT_EQ(end.kind, StreamEnd::Kind::kTimeout);
  ExpectHealthy(*port);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Seconds(30)).code, 0);
}

// A passed deadline stops a running task by the server's own clock. This
// client never resets the stream: gRPC's own clients do, at their copy of
// the deadline, so a test through them cannot tell the server's deadline
// from a client's cancel (ServiceTest.DeadlineWhileRunningStopsTheTask
// accepts either). The call ends DEADLINE_EXCEEDED, its task is counted
// deadline_exceeded, and its worker is free while the stream is open.
TEST(FaultE2eTest, TheServersOwnDeadlineStopsARunningTask) {
  int metrics_port = FreeLoopbackPort();
  // Without admission, which would refuse a 30 s sleep with 2 s left. No
  // load reports: their binary trailer is Huffman-coded, which the raw
  // client does not decode (when the service's answer, which carries one,
  // beat gRPC's own at the deadline, which does not: 2 runs of 20 here).
  ServerProcess server({"--address=127.0.0.1", "--port=0", "--workers=1",
                        "--admission=false", "--metrics_address=127.0.0.1",
                        absl::StrCat("--metrics_port=", metrics_port),
                        "--load_report_interval=inf"});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  RawHttp2Connection raw;
  ASSERT_TRUE(raw.Connect(*port));
  // 2 s, not less: under ASan on a loaded machine a call has reached the
  // handler after a 300 ms deadline had passed (expired_on_arrival).
  ASSERT_TRUE(raw.Send(RunCallFrames(1, "2S", Sleep(absl::Seconds(30)))));
  const StreamEnd end = raw.ReadUntilEnd(1, absl::Seconds(10));
  EXPECT_EQ(end.grpc_status(), 4)
      << "DEADLINE_EXCEEDED; ended kind " << static_cast<int>(end.kind)
      << ", reset code " << end.reset_code << ", goaway " << end.goaway
      << ", error '" << end.error << "'";
  std::optional<metrics::testing::Exposition> scrape;
  // For the failure message: the last scrape's sum, -1 without one.
  auto Count = [&](const std::string& name,
                   const metrics::testing::Labels& labels) {
    return scrape ? scrape->Sum(name, labels) : -1;
  };
  EXPECT_TRUE(PollUntil(
      [&] {
        auto e = Scrape(metrics_port);
        if (!e.ok()) return false;
        scrape = *e;
        return e->Value("compute_pool_workers_busy") == std::optional(0.0) &&
               e->Sum("compute_tasks_total",
                      {{"task", "sleep"}, {"outcome", "deadline_exceeded"}}) ==
                   1;
      },
      absl::Seconds(10)))
      << "the task still runs, or ended otherwise: busy "
      << Count("compute_pool_workers_busy", {}) << ", tasks by outcome: ok "
      << Count("compute_tasks_total", {{"outcome", "ok"}})
      << ", deadline_exceeded "
      << Count("compute_tasks_total", {{"outcome", "deadline_exceeded"}})
      << ", cancelled "
      << Count("compute_tasks_total", {{"outcome", "cancelled"}})
      << "; refused on arrival "
      << Count("compute_tasks_rejected_total",
               {{"reason", "expired_on_arrival"}});
  ExpectHealthy(*port);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Seconds(30)).code, 0);
}

// A large blur of width x height pixels (radius 2), its pixels mid-grey.
compute::v1::RunRequest BlurOf(int width, int height) {
  compute::v1::RunRequest blur;
  blur.mutable_blur()->set_width(width);
  blur.mutable_blur()->set_height(height);
  blur.mutable_blur()->set_pixels(
      std::string(static_cast<size_t>(width) * height, '\x7f'));
  blur.mutable_blur()->set_radius(2);
  return blur;
}

// The answers of a client that never reads stay in the server's memory for
// as long as it stays connected. They are held in the same budget as the
// calls running (--max_inflight_bytes): while the client keeps them, a new
// large call is refused (RESOURCE_EXHAUSTED, reason memory) and a small
// one is served; once it disconnects, the budget is whole again.
//
// Sizes: 1 MiB blurs (1 MiB in and out, so 2 MiB charged while one runs)
// under an 8 MiB pool budget (1/4 of --max_inflight_bytes=32Mi). The client
// sends kUnread of them one after the other, each admitted (4 MiB held + 2 MiB
// <= 8 MiB for the last), and keeps 5 MiB of answers; a 2 MiB blur (4 MiB while
// it runs) then no longer fits. Without the answers in the budget it would:
// nothing runs.
TEST(FaultE2eTest, UnreadAnswersAreHeldInTheMemoryBudget) {
  constexpr int kSide = 1024;
  constexpr int kUnread = 5;
  constexpr int64_t kAnswer = int64_t{kSide} * kSide;  // pixels, no framing
  int metrics_port = FreeLoopbackPort();
  ServerProcess server({"--address=127.0.0.1", "--port=0", "--workers=2",
                        "--max_inflight_bytes=32Mi",
                        "--metrics_address=127.0.0.1",
                        absl::StrCat("--metrics_port=", metrics_port)});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto metric = MetricReader(metrics_port);

  // The flag's split, as an operator sees it.
  EXPECT_EQ(metric("compute_pool_inflight_bytes_limit"), 8 << 20);
  EXPECT_EQ(metric("compute_transport_quota_bytes"), 24 << 20);

  RawHttp2Connection non_reader;
  ASSERT_TRUE(non_reader.Connect(*port, /*initial_window=*/0));
  ASSERT_TRUE(ReadServerSettings(non_reader));
  const compute::v1::RunRequest blur = BlurOf(kSide, kSide);
  for (int i = 0; i < kUnread; ++i) {
    const uint32_t stream = 2 * i + 1;
    ASSERT_TRUE(
        SendLargeRunCall(non_reader, stream, blur, "60S", absl::Seconds(10)));
    // Ran; its answer is now held (its hold follows the task's count).
    ASSERT_TRUE(PollUntil(
        [&] {
          return metric("compute_tasks_total",
                        {{"task", "blur"}, {"outcome", "ok"}}) == i + 1 &&
                 metric("compute_pool_inflight_bytes") >= (i + 1) * kAnswer;
        },
        absl::Seconds(10)))
        << "blur " << i << ": tasks "
        << metric("compute_tasks_total", {{"task", "blur"}})
        << ", in-flight bytes " << metric("compute_pool_inflight_bytes");
  }
  // Nothing reached the client; its answers are all held, and only they
  // (a few dozen bytes of each answer are not pixels).
  EXPECT_EQ(non_reader.ReadUntilEnd(1, absl::Milliseconds(100)).kind,
            StreamEnd::Kind::kTimeout);
  const double held = metric("compute_pool_inflight_bytes");
  EXPECT_GE(held, kUnread * kAnswer);
  EXPECT_LE(held, kUnread * (kAnswer + 64));

  auto stub = compute::v1::Compute::NewStub(ChannelTo(*port));
  auto run = [&](const compute::v1::RunRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    compute::v1::RunResponse response;
    return stub->Run(&context, request, &response);
  };
  const compute::v1::RunRequest large = BlurOf(kSide, 2 * kSide);
  grpc::Status refused = run(large);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("memory budget"));
  EXPECT_EQ(metric("compute_tasks_rejected_total", {{"reason", "memory"}}), 1);
  grpc::Status small = run(Fib(10));
  EXPECT_TRUE(small.ok()) << small.error_code() << " " << small.error_message();

  // Gone: gRPC cancels its streams, each finish event gives its bytes back.
  non_reader.Close();
  EXPECT_TRUE(
      PollUntil([&] { return metric("compute_pool_inflight_bytes") == 0; },
                absl::Seconds(10)))
      << "in-flight bytes " << metric("compute_pool_inflight_bytes");
  grpc::Status served = run(large);
  EXPECT_TRUE(served.ok()) << served.error_code() << " "
                           << served.error_message();
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// SIGTERM while a client is still taking a large answer: the drain waits
// for it (within --drain_timeout) instead of letting gRPC's shutdown
// cancel it after its grace of 1 s. The task ran; its answer must arrive.
// A server for the drain tests: 2 workers, /metrics on `metrics_port`, no
// load reports (their trailers are Huffman-coded: raw_http2.h).
std::vector<std::string> DrainTestArgs(int metrics_port,
                                       const std::string& drain_timeout) {
  return {"--address=127.0.0.1",
          "--port=0",
          "--workers=2",
          "--drain_timeout=" + drain_timeout,
          "--load_report_interval=inf",
          "--metrics_address=127.0.0.1",
          absl::StrCat("--metrics_port=", metrics_port)};
}

constexpr uint32_t kHeldStream = 1;

// Connects `client` with its flow-control window shut, sends a blur of
// side x side on kHeldStream and waits until it has run: its answer then
// waits in the server, held in the memory budget.
::testing::AssertionResult HoldAnAnswer(RawHttp2Connection& client, int port,
                                        int metrics_port, int side) {
  if (!client.Connect(port, /*initial_window=*/0) ||
      !ReadServerSettings(client)) {
    return ::testing::AssertionFailure() << "no HTTP/2 connection";
  }
  if (!SendLargeRunCall(client, kHeldStream, BlurOf(side, side), "120S",
                        absl::Seconds(10))) {
    return ::testing::AssertionFailure() << "the blur was not sent";
  }
  auto metric = MetricReader(metrics_port);
  if (!PollUntil(
          [&] {
            return metric("compute_tasks_total",
                          {{"task", "blur"}, {"outcome", "ok"}}) == 1 &&
                   metric("compute_pool_inflight_bytes") >= side * side;
          },
          absl::Seconds(10))) {
    return ::testing::AssertionFailure()
           << "the blur did not run, or its answer is not held";
  }
  return ::testing::AssertionSuccess();
}

TEST(FaultE2eTest, TheDrainWaitsForAnAnswerASlowClientIsStillTaking) {
  constexpr int kSide = 1024;
  int metrics_port = FreeLoopbackPort();
  ServerProcess server(DrainTestArgs(metrics_port, "60s"));
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  RawHttp2Connection slow;
  ASSERT_TRUE(HoldAnAnswer(slow, *port, metrics_port, kSide));

  server.Signal(SIGTERM);
  ASSERT_TRUE(server.WaitForLine("\"msg\":\"draining\""));
  // Longer than gRPC's grace: before, the call was cancelled here
  // (RST_STREAM) although its answer was ready.
  StreamEnd meanwhile =
      slow.ReadUntilEnd(kHeldStream, absl::Milliseconds(2500));
  EXPECT_EQ(meanwhile.kind, StreamEnd::Kind::kTimeout)
      << "the stream ended while its answer waited: reset code "
      << meanwhile.reset_code;

  // The client opens its windows (the stream's and the connection's) and
  // takes the answer: all of it, then grpc-status 0.
  ASSERT_TRUE(slow.Send(WindowUpdateFrame(0, 0x7fff0000) +
                        WindowUpdateFrame(kHeldStream, 0x7fff0000)));
  StreamEnd end = slow.ReadUntilEnd(kHeldStream, absl::Seconds(20));
  EXPECT_EQ(end.kind, StreamEnd::Kind::kTrailers) << end.error;
  EXPECT_EQ(end.grpc_status(), 0);
  EXPECT_EQ(server.Wait().code, 0);
}

// A client that never takes its answer (its flow-control window shut) holds
// the drain to --drain_timeout: the "stopped" line says how many bytes of
// answers were left untaken, so an operator sees why the drain took its
// whole timeout (before, nothing said so; a review's finding).
TEST(FaultE2eTest, ADrainThatAnswersWaitedForUntilItsTimeoutSaysSo) {
  constexpr int kSide = 64;
  int metrics_port = FreeLoopbackPort();
  ServerProcess server(DrainTestArgs(metrics_port, "1s"));
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  RawHttp2Connection never_reads;
  ASSERT_TRUE(HoldAnAnswer(never_reads, *port, metrics_port, kSide));

  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
  std::optional<google::protobuf::Struct> stopped =
      LogLine(exit.stderr_text, "stopped");
  ASSERT_TRUE(stopped.has_value()) << exit.stderr_text;
  const auto& f = stopped->fields();
  ASSERT_TRUE(f.contains("answers_untaken_bytes")) << exit.stderr_text;
  // The answer: its pixels and a few dozen bytes of framing.
  EXPECT_GE(f.at("answers_untaken_bytes").number_value(), kSide * kSide);
  EXPECT_LE(f.at("answers_untaken_bytes").number_value(), kSide * kSide + 64);

  // A drain whose answers were all taken says nothing of them.
  ServerProcess quiet(
      {"--address=127.0.0.1", "--port=0", "--metrics_port=0", "--workers=2"});
  ASSERT_TRUE(quiet.Spawn());
  ASSERT_TRUE(quiet.WaitServing().has_value());
  quiet.Signal(SIGTERM);
  ExitResult quiet_exit = quiet.Wait();
  std::optional<google::protobuf::Struct> quiet_stopped =
      LogLine(quiet_exit.stderr_text, "stopped");
  ASSERT_TRUE(quiet_stopped.has_value()) << quiet_exit.stderr_text;
  EXPECT_FALSE(quiet_stopped->fields().contains("answers_untaken_bytes"));
}

// An answer the client never took (its window shut, then its connection
// closed; the answer is larger than the window, 0 here, so gRPC still held
// it) is counted in compute_answers_undelivered_total, while
// grpc_server_handled_total counts the call OK, as go-grpc-prometheus does;
// an answer taken is not. Before 2026-12-07 nothing told the two apart (a
// review's finding).
TEST(FaultE2eTest, AnAnswerTheClientNeverTookIsCountedUndelivered) {
  constexpr int kSide = 64;
  int metrics_port = FreeLoopbackPort();
  ServerProcess server(DrainTestArgs(metrics_port, "10s"));
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto metric = MetricReader(metrics_port);
  ASSERT_TRUE(CallFib(*port, absl::Seconds(10)).ok());  // taken
  {
    // Cancelled by its client while it runs: answered CANCELLED, and not
    // counted (no answer was lost that anyone waited for).
    auto stub = compute::v1::Compute::NewStub(ChannelTo(*port));
    AsyncCall running(*stub, Spin(absl::Seconds(30)));
    ASSERT_TRUE(
        PollUntil([&] { return metric("compute_pool_workers_busy") == 1; },
                  absl::Seconds(10)));
    running.Cancel();
    EXPECT_EQ(running.Wait().error_code(), grpc::StatusCode::CANCELLED);
    // Its done event has been handled once its task completed cancelled.
    ASSERT_TRUE(PollUntil(
        [&] {
          return metric("compute_tasks_total", {{"outcome", "cancelled"}}) == 1;
        },
        absl::Seconds(10)));
  }
  RawHttp2Connection never_reads;
  ASSERT_TRUE(HoldAnAnswer(never_reads, *port, metrics_port, kSide));
  EXPECT_EQ(metric("compute_answers_undelivered_total"), 0)
      << "counted while its answer may still be taken";
  never_reads.Close();
  EXPECT_TRUE(PollUntil(
      [&] { return metric("compute_answers_undelivered_total") == 1; },
      absl::Seconds(10)))
      << metric("compute_answers_undelivered_total");
  EXPECT_EQ(metric("grpc_server_handled_total",
                   {{"grpc_method", "Run"}, {"grpc_code", "OK"}}),
            2);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// A client that stops reading its socket (a stalled or stopped process)
// while a large answer is being written holds the connection's last write,
// and gRPC 1.51 closes a connection only once that write ends: when the
// kernel gives up on it, --keepalive_timeout later (gRPC's
// TCP_USER_TIMEOUT), or never with keepalive off. The drain does not wait
// for it past its bound: --drain_timeout + 12 s, or 2 s after a second
// signal. Before, the exit came that long after the stall (about 20 s by
// default, whatever --drain_timeout), and a second signal did not hurry it
// (a black-box review's finding).
TEST(FaultE2eTest, AClientThatStoppedReadingCannotHoldTheExitPastItsBound) {
  for (const bool second_signal : {false, true}) {
    SCOPED_TRACE(second_signal ? "a second signal" : "one signal");
    int metrics_port = FreeLoopbackPort();
    // Keepalive's timeout past the test's wait: the kernel keeps the write.
    ServerProcess server(
        {"--address=127.0.0.1", "--port=0", "--workers=1",
         second_signal ? "--drain_timeout=60s" : "--drain_timeout=0s",
         "--keepalive_timeout=300s", "--load_report_interval=inf",
         "--metrics_address=127.0.0.1",
         absl::StrCat("--metrics_port=", metrics_port)});
    ASSERT_TRUE(server.Spawn());
    std::optional<int> port = server.WaitServing();
    ASSERT_TRUE(port.has_value());
    auto metric = MetricReader(metrics_port);

    // Windows wide open, so the server writes the 16 MiB answer at once,
    // more than the loopback's socket buffers hold; then never a read.
    RawHttp2Connection stalled;
    ASSERT_TRUE(stalled.Connect(*port, /*initial_window=*/0x7fffffff));
    ASSERT_TRUE(ReadServerSettings(stalled));
    ASSERT_TRUE(stalled.Send(WindowUpdateFrame(0, 0x7fff0000)));
    constexpr uint32_t kStream = 1;
    ASSERT_TRUE(SendLargeRunCall(stalled, kStream, BlurOf(4096, 4096), "120S",
                                 absl::Seconds(20)));
    ASSERT_TRUE(PollUntil(
        [&] {
          return metric("compute_tasks_total",
                        {{"task", "blur"}, {"outcome", "ok"}}) == 1 &&
                 metric("compute_pool_inflight_bytes") > 0;
        },
        absl::Seconds(20)))
        << "the blur ran and its answer is on its way";

    server.Signal(SIGTERM);
    ASSERT_TRUE(server.WaitForLine("\"msg\":\"draining\""));
    if (second_signal) {
      // Past the window in which the same stop sent twice is one request.
      absl::SleepFor(absl::Milliseconds(400));
      server.Signal(SIGTERM);
    }
    // Within its bound (12.5 s; 2 s after the second signal stopped the
    // pool), with room for a loaded machine; far from the keepalive
    // timeout's 300 s.
    ASSERT_TRUE(server.ExitsUnread(second_signal ? absl::Seconds(10)
                                                 : absl::Seconds(20)))
        << "the exit waits for the stalled client";
    ExitResult exit = server.Wait();
    EXPECT_EQ(exit.code, second_signal ? 128 + SIGTERM : 0);
    EXPECT_THAT(
        exit.stderr_text,
        ::testing::HasSubstr("\"msg\":\"drain past its bound: exiting without "
                             "gRPC\""));
  }
}

// --keepalive_time and --keepalive_timeout: a peer that never answers the
// server's PING (gone without a FIN: a host that died, a NAT that forgot
// the flow) is dropped, so its connection and what it holds do not stay.
TEST(FaultE2eTest, APeerThatNeverAnswersPingsIsDropped) {
  ServerProcess server({"--address=127.0.0.1", "--port=0", "--metrics_port=0",
                        "--keepalive_time=1s", "--keepalive_timeout=1s"});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  RawHttp2Connection mute;
  ASSERT_TRUE(mute.Connect(*port));
  // Reads what the server sends (its SETTINGS, PINGs), answering nothing,
  // until it closes the connection: EOF or a reset.
  bool closed = false;
  // Within 10 s: about 2 s (a PING after 1 s idle, 1 s for its answer),
  // not the default timeout's 20 s.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  int pings = 0;
  std::string bytes;
  std::string ended_by = "nothing";  // for a failure's message
  while (!closed && absl::Now() < give_up) {
    pollfd p{mute.fd(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = recv(mute.fd(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      bytes.append(buffer, static_cast<size_t>(n));
    } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;  // nothing ended: read again
    } else {
      // EOF, or an error on the socket (a reset): the connection is gone.
      // (Until 2026-12-07 only ECONNRESET counted, and one ASan run failed
      // on another error, without saying which.)
      ended_by = n == 0 ? "EOF" : strerror(errno);
      closed = true;
    }
  }
  // The frames read: at least one PING (type 6) went unanswered.
  for (size_t i = 0; i + 9 <= bytes.size();) {
    const size_t length = (static_cast<uint8_t>(bytes[i]) << 16) |
                          (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                          static_cast<uint8_t>(bytes[i + 2]);
    if (bytes[i + 3] == http2::kPing) ++pings;
    i += 9 + length;
  }
  EXPECT_TRUE(closed) << "the connection stayed open for 10 s";
  EXPECT_GE(pings, 1) << "read " << bytes.size() << " bytes, ended by "
                      << ended_by;
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// A burst of large calls that fills gRPC's transport quota (sized from
// --max_inflight_bytes) is answered, call by call, and the server lives
// on. The received bytes belong to that quota; when the server dropped
// the last reference to some of them on its own threads (a worker
// finishing a call, an I/O thread parsing one) while the quota was under
// pressure, gRPC 1.51 woke the quota's reclaimer through an execution
// context that thread did not have, and the process died of a null
// dereference (grpc_core::ExecCtx::Run), 2 bursts in 3 at this scale of
// 64 x 16 MiB against an 80 MiB budget. Here: 1 MiB blurs under a 16 MiB
// budget (4 MiB for the pool, a 12 MiB quota), 48 at once from 4 connections,
// three bursts. Each call ends OK, refused (RESOURCE_EXHAUSTED), or UNAVAILABLE
// when the quota, full, makes gRPC close a connection (GOAWAY: its way of
// freeing memory below the handler, which a client retries); after each burst a
// small call and then a large one are served, and SIGTERM ends the server
// cleanly.
TEST(FaultE2eTest, BurstsOfLargeCallsThatFillTheTransportQuotaAreAnswered) {
  ServerProcess server({"--address=127.0.0.1", "--port=0", "--workers=2",
                        "--max_inflight_bytes=16Mi", "--metrics_port=0"});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  constexpr int kConnections = 4;
  constexpr int kCallsPerConnection = 12;
  std::vector<std::unique_ptr<compute::v1::Compute::Stub>> stubs;
  for (int c = 0; c < kConnections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection each
    stubs.push_back(compute::v1::Compute::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", *port),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  const compute::v1::RunRequest blur = BlurOf(1024, 1024);
  for (int burst = 0; burst < 3; ++burst) {
    std::vector<grpc::Status> statuses(kConnections * kCallsPerConnection);
    std::vector<std::thread> callers;
    for (size_t i = 0; i < statuses.size(); ++i) {
      callers.emplace_back([&, i] {
        grpc::ClientContext context;
        context.set_deadline(
            absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
        compute::v1::RunResponse response;
        statuses[i] = stubs[i % kConnections]->Run(&context, blur, &response);
      });
    }
    for (std::thread& t : callers) t.join();
    int ok = 0;
    for (const grpc::Status& s : statuses) {
      EXPECT_TRUE(s.ok() ||
                  s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                  s.error_code() == grpc::StatusCode::UNAVAILABLE)
          << "burst " << burst << ": " << s.error_code() << " "
          << s.error_message();
      ok += s.ok() ? 1 : 0;
    }
    // How many of the burst ran is the race between the pool's one place
    // and the quota's resets (a reset connection takes its admitted call
    // with it): printed, not asserted. CI saw a burst with none, twice.
    std::cout << "burst " << burst << ": " << ok << " of " << statuses.size()
              << " OK\n";
    // Still serving: a small call after the burst.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    compute::v1::RunResponse response;
    grpc::Status after = stubs[0]->Run(&context, Fib(10), &response);
    ASSERT_TRUE(after.ok())
        << "after burst " << burst << ": " << after.error_code() << " "
        << after.error_message();
    // And large calls too, once the burst's bytes are freed: polled, since
    // the budget releases the last answers' bytes as gRPC finishes sending
    // them, a moment after their clients have them.
    grpc::Status large;
    EXPECT_TRUE(PollUntil(
        [&] {
          grpc::ClientContext large_context;
          large_context.set_deadline(
              absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
          compute::v1::RunResponse large_response;
          large = stubs[1]->Run(&large_context, blur, &large_response);
          return large.ok();
        },
        absl::Seconds(20)))
        << "a large call after burst " << burst << ": " << large.error_code()
        << " " << large.error_message();
  }
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Seconds(30)).code, 0);
}

// Every call counted once: a mixed storm (calls that run OK, calls a full
// queue refuses, bad input, calls whose deadline passed before they
// arrived, client cancels, deadlines too short for the work), then one
// scrape must account for each handled Run in exactly one of
// compute_tasks_total (its task completed) and compute_tasks_rejected_total
// (it never became a task), and every started call must be handled.
void StormAndCount(bool admission) {
  SCOPED_TRACE(admission ? "admission on" : "admission off");
  int metrics_port = FreeLoopbackPort();
  // One I/O thread that runs cheap calls itself (below); no load reports,
  // whose Huffman-coded trailers the raw client cannot read.
  ServerProcess server(
      {"--address=127.0.0.1", "--port=0", "--workers=1", "--queue_capacity=2",
       "--io_threads=1", "--inline_max_cost=10ms", "--load_report_interval=inf",
       absl::StrCat("--admission=", admission ? "true" : "false"),
       "--metrics_address=127.0.0.1",
       absl::StrCat("--metrics_port=", metrics_port)});
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = compute::v1::Compute::NewStub(ChannelTo(*port));

  // OK.
  constexpr int kOk = 20;
  for (int i = 0; i < kOk; ++i) {
    grpc::Status s = CallFib(*port, absl::Seconds(10), ChannelTo(*port));
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  // A burst into 1 worker + 2 queue places: the rest are refused.
  std::vector<std::unique_ptr<AsyncCall>> burst;
  for (int i = 0; i < 12; ++i) {
    burst.push_back(
        std::make_unique<AsyncCall>(*stub, Spin(absl::Milliseconds(100))));
  }
  int refused = 0;
  for (auto& c : burst) {
    grpc::Status s = c->Wait();
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
  }
  EXPECT_GT(refused, 0);
  // Bad input.
  constexpr int kInvalid = 5;
  for (int i = 0; i < kInvalid; ++i) {
    grpc::ClientContext context;
    compute::v1::RunResponse r;
    EXPECT_EQ(stub->Run(&context, Fib(51), &r).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Expired on arrival: a call with a 1 ms deadline (gRPC's resolution)
  // sent in one write behind a 4 ms sleep, which the one I/O thread runs
  // itself (its cost is under --inline_max_cost) before it gets to the
  // call. (A sleep, which no call before has taught a rate: the burst's
  // 100 ms spins, descheduled at their end on a loaded machine, raised
  // spin's learned rate, and an 8 ms spin's estimate passed 10 ms after two
  // such; it then went to the worker, and the late call was admitted in
  // time. A 4 ms spin was the same risk, smaller.) gRPC itself drops a call
  // whose deadline passes before it has read the body (the service never sees
  // it; the client gets no answer), so the body comes at once; still, a few in
  // a hundred are dropped.
  constexpr int kExpired = 5;
  RawHttp2Connection raw;
  ASSERT_TRUE(raw.Connect(*port));
  for (uint32_t i = 0; i < kExpired; ++i) {
    const uint32_t blocker = 4 * i + 1, late = 4 * i + 3;
    ASSERT_TRUE(
        raw.Send(RunCallFrames(blocker, "10S", Sleep(absl::Milliseconds(4))) +
                 RunCallFrames(late, "1m", Fib(10))));
    EXPECT_EQ(raw.ReadUntilEnd(blocker, absl::Seconds(10)).grpc_status(), 0);
    StreamEnd end = raw.ReadUntilEnd(late, absl::Seconds(3));
    if (end.kind != StreamEnd::Kind::kTimeout) {
      EXPECT_EQ(end.grpc_status(), 4) << "DEADLINE_EXCEEDED";
    }
  }
  // A deadline too short for its work: refused by admission, or expired.
  {
    AsyncCall call(*stub, Sleep(absl::Seconds(30)), absl::Seconds(2));
    grpc::StatusCode code = call.Wait().error_code();
    EXPECT_EQ(code, admission ? grpc::StatusCode::RESOURCE_EXHAUSTED
                              : grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // Client cancels: one running, one queued.
  {
    AsyncCall running(*stub, Spin(absl::Seconds(20)));
    AsyncCall queued(*stub, Spin(absl::Seconds(20)));
    ASSERT_TRUE(PollUntil(
        [&] {
          auto s = Scrape(metrics_port);
          return s.ok() &&
                 s->Value("compute_pool_workers_busy") == std::optional(1.0) &&
                 s->Value("compute_pool_queue_depth") == std::optional(1.0);
        },
        absl::Seconds(10)));
    queued.Cancel();
    running.Cancel();
    EXPECT_EQ(queued.Wait().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_EQ(running.Wait().error_code(), grpc::StatusCode::CANCELLED);
  }

  const metrics::testing::Labels run = {{"grpc_service", "compute.v1.Compute"},
                                        {"grpc_method", "Run"}};
  std::optional<metrics::testing::Exposition> e;
  // The client sees its cancel before the server has handled it, and a
  // scrape reads the task counters before the call counters, so one taken
  // while a call completes can show it handled but not its task: wait
  // until a scrape shows every started call handled and accounted for (a
  // call that is not never will, and the checks below say which).
  EXPECT_TRUE(PollUntil(
      [&] {
        auto s = Scrape(metrics_port);
        if (!s.ok()) return false;
        e = *s;
        const double handled = e->Sum("grpc_server_handled_total", run);
        return e->Sum("grpc_server_started_total", run) == handled &&
               e->Sum("compute_tasks_total") +
                       e->Sum("compute_tasks_rejected_total") ==
                   handled;
      },
      absl::Seconds(10)));
  ASSERT_TRUE(e.has_value());
  const double started = e->Sum("grpc_server_started_total", run);
  const double handled = e->Sum("grpc_server_handled_total", run);
  const double tasks = e->Sum("compute_tasks_total");
  const double rejected = e->Sum("compute_tasks_rejected_total");
  std::cout << "storm (admission " << (admission ? "on" : "off")
            << "): started " << started << ", handled " << handled << ", tasks "
            << tasks << ", rejected " << rejected << "\n";
  EXPECT_EQ(started, handled);
  EXPECT_EQ(handled, tasks + rejected);
  // The late calls that reached the service (the rest gRPC dropped): each
  // one refused expired_on_arrival, none ran.
  const double late = handled - (kOk + 12 + kInvalid + kExpired + 1 + 2);
  EXPECT_GE(late, 1);
  EXPECT_LE(late, kExpired);
  EXPECT_EQ(e->Value("compute_tasks_rejected_total",
                     {{"reason", "expired_on_arrival"}}),
            late);
  EXPECT_EQ(e->Sum("compute_tasks_total", {{"outcome", "ok"}}),
            kOk + (12 - refused) + kExpired);
  EXPECT_EQ(e->Value("compute_tasks_rejected_total", {{"reason", "invalid"}}),
            kInvalid);
  // The burst's refusals: queue_full, or overload once the queue stands.
  EXPECT_EQ(rejected, refused + kInvalid + late + (admission ? 1 : 0));
  // The two cancels, and with admission off the short deadline (which the
  // server counts cancelled when the client's RST_STREAM beats its own
  // deadline; see the status table).
  EXPECT_EQ(
      e->Sum("compute_tasks_total", {{"outcome", "cancelled"}}) +
          e->Sum("compute_tasks_total", {{"outcome", "deadline_exceeded"}}),
      admission ? 2 : 3);
  auto code = [&](const std::string& c) {
    return e
        ->Value("grpc_server_handled_total",
                {{"grpc_service", "compute.v1.Compute"},
                 {"grpc_method", "Run"},
                 {"grpc_type", "unary"},
                 {"grpc_code", c}})
        .value_or(-1);
  };
  EXPECT_EQ(code("DeadlineExceeded") + code("Canceled"),
            late + (admission ? 2 : 3));
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Seconds(30)).code, 0);
}

TEST(FaultE2eTest, EveryCallIsCountedOnceWithAdmissionOn) {
  StormAndCount(/*admission=*/true);
}

TEST(FaultE2eTest, EveryCallIsCountedOnceWithAdmissionOff) {
  StormAndCount(/*admission=*/false);
}

}  // namespace
}  // namespace compute::testing
