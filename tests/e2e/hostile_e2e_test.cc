// The real compute-server binary against clients that lie: decompression
// bombs, and requests gRPC's core itself rejects (its log lines must stay
// JSON).
#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "compute/v1/compute.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/log.h"
#include "tests/e2e/compressed_call.h"
#include "tests/e2e/raw_http2.h"
#include "tests/e2e/server_process.h"
#include "tests/integration/calls.h"
#include "tests/wait_until.h"

namespace compute::testing {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> BaseArgs() {
  return {"--address=127.0.0.1", "--port=0", "--metrics_port=0"};
}

// A field of /proc/PID/status in bytes ("VmRSS", "VmHWM"), or nullopt.
std::optional<int64_t> ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, field + ":")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    int64_t kib = 0;
    if (absl::ConsumeSuffix(&rest, " kB") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) {
      return kib * 1024;
    }
  }
  return std::nullopt;
}

bool FibServes(int port) {
  auto stub = compute::v1::Compute::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  AsyncCall call(*stub, Fib(10), absl::Seconds(10));
  return call.Wait().ok();
}

// gRPC 1.51 inflates a compressed message whole before it compares the
// result with the receive limit, so the server accepts no compressed
// request at all: each bomb is refused from its headers, and the server's
// peak memory does not grow by even one message's worth. (Before: 8 bombs
// took the peak from 21 MB to 473 MB. The limit leaves room for the ASan
// build, whose peak grows ~4 MB for the 8 connections alone.)
TEST(CompressionE2eTest, BombsAreRefusedBeforeAnyInflation) {
  constexpr int64_t kMaxMessageBytes = 16 << 20;
  constexpr uint32_t kBombBytes = 200 << 20;
  constexpr int kBombs = 8;
  std::vector<std::string> args = BaseArgs();
  args.push_back(absl::StrCat("--max_message_bytes=", kMaxMessageBytes));
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());

  std::string gzip = CompressedZerosRequest(kBombBytes, Wrapper::kGzip);
  std::string deflate = CompressedZerosRequest(kBombBytes, Wrapper::kZlib);
  ASSERT_FALSE(gzip.empty());
  ASSERT_FALSE(deflate.empty());
  // A bomb, not a large message: the compressed bodies are far below the
  // receive limit, which gRPC checks before inflating.
  ASSERT_LT(gzip.size(), 1u << 20);
  ASSERT_LT(deflate.size(), 1u << 20);

  // The same client with no compression is served: the refusals below are
  // the compression's.
  {
    compute::v1::RunRequest small;
    small.mutable_sha256()->set_data(std::string(1 << 10, '\0'));
    CallResult r =
        CallWithCompressedBody(*port, small.SerializeAsString(),
                               GRPC_COMPRESS_NONE, absl::Seconds(10));
    ASSERT_TRUE(r.completed);
    EXPECT_EQ(r.code, GRPC_STATUS_OK) << r.message;
  }
  ASSERT_TRUE(FibServes(*port));
  std::optional<int64_t> rss_before = ProcStatusBytes(server.pid(), "VmRSS");
  std::optional<int64_t> peak_before = ProcStatusBytes(server.pid(), "VmHWM");
  ASSERT_TRUE(rss_before.has_value() && peak_before.has_value());

  std::vector<CallResult> results(kBombs);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kBombs; ++i) {
      threads.emplace_back([&, i] {
        bool is_gzip = i % 2 == 0;
        results[i] = CallWithCompressedBody(
            *port, is_gzip ? gzip : deflate,
            is_gzip ? GRPC_COMPRESS_GZIP : GRPC_COMPRESS_DEFLATE,
            absl::Seconds(20));
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (int i = 0; i < kBombs; ++i) {
    const CallResult& r = results[i];
    ASSERT_TRUE(r.completed) << "bomb " << i << " got no answer";
    EXPECT_EQ(r.code, GRPC_STATUS_UNIMPLEMENTED) << r.message;
    EXPECT_THAT(r.message, HasSubstr(i % 2 == 0 ? "'gzip' is disabled"
                                                : "'deflate' is disabled"));
  }
  ASSERT_TRUE(FibServes(*port));
  std::optional<int64_t> rss_after = ProcStatusBytes(server.pid(), "VmRSS");
  std::optional<int64_t> peak_after = ProcStatusBytes(server.pid(), "VmHWM");
  ASSERT_TRUE(rss_after.has_value() && peak_after.has_value());
  std::cout << "bombs: " << kBombs << " x " << gzip.size() << " bytes (gzip) / "
            << deflate.size() << " bytes (deflate), each " << kBombBytes
            << " inflated; server RSS " << *rss_before << " -> " << *rss_after
            << ", peak " << *peak_before << " -> " << *peak_after << "\n";
  EXPECT_LE(*peak_after - *peak_before, kMaxMessageBytes);

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// Opens a plain-text HTTP/2 connection to 127.0.0.1:`port`, sends a gRPC
// call's headers with `content_type` and a PING, and waits up to `timeout`
// for the PING's ACK. True once it came: the server has read the headers
// (and gRPC logged whatever it logs about them). The server's SETTINGS are
// no such sign: gRPC sends them when the connection starts, before it has
// read anything (until 2026-12-07 the first byte counted, so a flood's last
// requests could still be unread at a SIGTERM sent right after). Nor does
// the server end such a stream: it waits for a body.
bool SendHeadersWithContentType(int port, const std::string& content_type,
                                absl::Duration timeout) {
  RawHttp2Connection connection;
  return connection.Connect(port) &&
         connection.Send(Http2Frame(http2::kHeaders, http2::kEndHeaders, 1,
                                    RunCallHeaders(content_type))) &&
         connection.Ping(timeout);
}

// Every line of `text` as a JSON object; fails the test at one that is not.
std::vector<google::protobuf::Struct> JsonLines(const std::string& text) {
  std::vector<google::protobuf::Struct> out;
  for (const std::string& line : std::vector<std::string>(
           absl::StrSplit(text, '\n', absl::SkipEmpty()))) {
    google::protobuf::Struct log;
    if (!google::protobuf::util::JsonStringToMessage(line, &log).ok()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    const auto& f = log.fields();
    EXPECT_TRUE(f.contains("ts") && f.contains("level") && f.contains("msg"))
        << line;
    out.push_back(std::move(log));
  }
  return out;
}

// gRPC's core logs what it rejects below the service (here a request whose
// content-type is not gRPC's) through our logger: every line of stderr is
// one JSON object, gRPC's with its severity, file and line. At debug, gRPC's
// own start-up messages too.
TEST(GrpcLogE2eTest, CoreErrorsAreJsonLines) {
  for (std::string level : {"info", "debug"}) {
    SCOPED_TRACE(level);
    std::vector<std::string> args = BaseArgs();
    args.push_back("--log_level=" + level);
    ServerProcess server(args);
    ASSERT_TRUE(server.Spawn());
    std::optional<int> port = server.WaitServing();
    ASSERT_TRUE(port.has_value());
    // The second is not UTF-8: protobuf would print neither it nor JSON.
    for (std::string content_type : {"text/plain", "text/plain\xff\xfe"}) {
      ASSERT_TRUE(
          SendHeadersWithContentType(*port, content_type, absl::Seconds(5)));
      EXPECT_TRUE(server.WaitForLine("text/plain", absl::Seconds(10)))
          << "gRPC logged nothing about the bad content-type";
    }
    ASSERT_TRUE(FibServes(*port));
    server.Signal(SIGTERM);
    ExitResult exit = server.Wait();
    EXPECT_EQ(exit.code, 0);

    int grpc_errors = 0, grpc_others = 0;
    for (const google::protobuf::Struct& log : JsonLines(exit.stderr_text)) {
      const auto& f = log.fields();
      if (!f.contains("source")) continue;
      EXPECT_EQ(f.at("source").string_value(), "grpc");
      EXPECT_THAT(f.at("file").string_value(), HasSubstr(".cc"));
      EXPECT_GT(f.at("line").number_value(), 0);
      if (f.at("level").string_value() == "error") {
        ++grpc_errors;
        EXPECT_THAT(f.at("msg").string_value(), HasSubstr("content-type"));
      } else {
        ++grpc_others;
        EXPECT_THAT(f.at("level").string_value(),
                    ::testing::AnyOf("debug", "info"));
      }
    }
    EXPECT_GE(grpc_errors, 1) << exit.stderr_text;
    // gRPC's info messages (its epoll fd, its pollers) only at debug.
    if (level == "debug") {
      EXPECT_GE(grpc_others, 1) << exit.stderr_text;
    } else {
      EXPECT_EQ(grpc_others, 0) << exit.stderr_text;
    }
  }
}

// gRPC logs an error line for each request with a bad content-type: a
// flood of them is cut to kLibraryLinesPerSecond a second, and a warning says
// how many were left out (before: one error line per request, 100 for 100).
TEST(GrpcLogE2eTest, AFloodOfBadRequestsDoesNotFloodTheLog) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  // Bursts of bad requests, faster than the budget, until the warning that
  // counts what was left out has come (with the first line written in a
  // later second than the cut).
  int sent = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 0; i < 3 * kLibraryLinesPerSecond; ++i) {
          if (SendHeadersWithContentType(*port, "text/plain",
                                         absl::Seconds(5))) {
            ++sent;
          }
        }
        return server.WaitForLine("gRPC log lines suppressed",
                                  absl::Milliseconds(100));
      },
      absl::Seconds(30)));
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
  std::map<std::string, int> errors_by_second;  // by "ts" to the second
  double suppressed = 0;
  for (const google::protobuf::Struct& log : JsonLines(exit.stderr_text)) {
    const auto& f = log.fields();
    if (!f.contains("source")) continue;
    if (f.contains("suppressed")) {
      suppressed += f.at("suppressed").number_value();
    } else if (f.at("level").string_value() == "error") {
      ++errors_by_second[f.at("ts").string_value().substr(0, 19)];
    }
  }
  EXPECT_GT(suppressed, 0);
  for (const auto& [second, errors] : errors_by_second) {
    EXPECT_LE(errors, kLibraryLinesPerSecond) << second << " of " << sent;
  }
}

// A flood just before the server stops: the lines left out are counted in
// the exit's notice, since no later line carries the count (before, they
// went unreported). Every bad request is in the log, written or counted.
TEST(GrpcLogE2eTest, AFloodJustBeforeExitIsCounted) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  int sent = 0;
  for (int i = 0; i < 3 * kLibraryLinesPerSecond; ++i) {
    if (SendHeadersWithContentType(*port, "text/plain", absl::Seconds(5))) {
      ++sent;
    }
  }
  ASSERT_GT(sent, kLibraryLinesPerSecond);
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
  double in_the_log = 0;  // written, or counted as suppressed
  for (const google::protobuf::Struct& log : JsonLines(exit.stderr_text)) {
    const auto& f = log.fields();
    if (!f.contains("source")) continue;
    if (f.contains("suppressed")) {
      in_the_log += f.at("suppressed").number_value();
    } else if (absl::StrContains(f.at("msg").string_value(), "content-type")) {
      ++in_the_log;
    }
  }
  EXPECT_GE(in_the_log, sent) << exit.stderr_text;
}

// A Health check whose service name is not UTF-8, as raw bytes (a
// generated stub would not send it): field 1, 5 bytes. Its status.
grpc::Status CheckWithAServiceNameThatIsNotUtf8(grpc::GenericStub& stub) {
  const std::string body =
      "\x0a\x05"
      "bad\xff\xfe";
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

// protobuf logs an error for each request it will not parse, through a log
// handler of its own: here Health checks whose service name is not UTF-8
// (reflection's file names do the same). Its lines are JSON too, with
// "source":"protobuf", and a flood of them is cut to the budget, like
// gRPC's. Before: protobuf's own text line on stderr for every such
// request, written by the I/O thread itself, with no limit (2,000 lines in
// 88 ms from one connection); with a log reader that stalled, the I/O
// threads blocked on the full pipe and the server neither answered nor
// drained.
TEST(GrpcLogE2eTest, ProtobufsLinesAreJsonLinesWithinTheBudget) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  grpc::GenericStub stub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", *port), grpc::InsecureChannelCredentials()));
  int sent = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 0; i < 3 * kLibraryLinesPerSecond; ++i) {
          EXPECT_FALSE(CheckWithAServiceNameThatIsNotUtf8(stub).ok());
          ++sent;
        }
        return server.WaitForLine("protobuf log lines suppressed",
                                  absl::Milliseconds(100));
      },
      absl::Seconds(30)));
  EXPECT_TRUE(FibServes(*port));
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
  std::map<std::string, int> errors_by_second;  // by "ts" to the second
  double suppressed = 0;
  for (const google::protobuf::Struct& log : JsonLines(exit.stderr_text)) {
    const auto& f = log.fields();
    if (!f.contains("source") || f.at("source").string_value() != "protobuf") {
      continue;
    }
    if (f.contains("suppressed")) {
      suppressed += f.at("suppressed").number_value();
      continue;
    }
    EXPECT_EQ(f.at("level").string_value(), "error");
    EXPECT_THAT(f.at("msg").string_value(), HasSubstr("UTF-8"));
    EXPECT_THAT(f.at("file").string_value(), HasSubstr(".cc"));
    ++errors_by_second[f.at("ts").string_value().substr(0, 19)];
  }
  EXPECT_FALSE(errors_by_second.empty()) << exit.stderr_text;
  EXPECT_GT(suppressed, 0);
  for (const auto& [second, errors] : errors_by_second) {
    EXPECT_LE(errors, kLibraryLinesPerSecond) << second << " of " << sent;
  }
}

// A log collector that goes away (its end of the server's stderr closed)
// costs the lines written after it, not the server: each line then meets a
// pipe with no reader, whose SIGPIPE would end the process. Here with
// --metrics_port=0, since the metrics server's library happens to ignore
// SIGPIPE for the whole process. Before: a request with a bad content-type
// (gRPC logs an error line for it) killed the server, exit by SIGPIPE, and
// with it every call in flight; so did the "draining" line on SIGTERM.
TEST(GrpcLogE2eTest, ALogReaderThatGoesAwayDoesNotStopTheServer) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  server.CloseLog();
  auto stub = compute::v1::Compute::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", *port), grpc::InsecureChannelCredentials()));
  // In flight across the bad request and the drain: long enough to still
  // run at the SIGTERM however slow the machine, and known to have reached
  // the server before it (a call answered on the same connection after it
  // was sent: before, a call still connecting at the SIGTERM could be
  // refused by the drain, and a 300 ms spin could end before it).
  AsyncCall running(*stub, Sleep(absl::Seconds(2)), absl::Seconds(30));
  {
    AsyncCall after(*stub, Fib(10), absl::Seconds(10));
    EXPECT_TRUE(after.Wait().ok());
  }
  EXPECT_TRUE(
      SendHeadersWithContentType(*port, "text/plain", absl::Seconds(5)));
  EXPECT_TRUE(FibServes(*port));
  server.Signal(SIGTERM);
  EXPECT_TRUE(running.Wait().ok());
  EXPECT_EQ(server.Wait().code, 0);
}

// A log collector that stops reading but keeps its end open (a hung
// runtime shim, a full log disk) fills the pipe. Before: the next line's
// write blocked the thread that logged it, gRPC's for a bad request's error
// line and main's for "draining" on SIGTERM, so the server never drained
// and never exited. Now lines wait in the log writer's buffer (or are
// dropped and counted) and the server drains and exits on its own.
TEST(GrpcLogE2eTest, ALogReaderThatStopsReadingDoesNotStallTheServer) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  ASSERT_TRUE(server.ShrinkLogPipe(4096));
  // From here on nobody reads the server's stderr, until Wait below. Bad
  // requests (an error line each, up to kLibraryLinesPerSecond a second) until
  // the pipe is half full; the next lines meet a full pipe.
  // Half full is the mark, not nearly full: the writer writes what waits as
  // one batch, and a pipe takes a write of up to 4 KiB whole or not at all,
  // so the pipe can stop short of full (3,385 of 4,096 bytes in CI, with the
  // writer blocked). The 2 x kLibraryLinesPerSecond requests below then
  // bring more lines than the rest of the pipe holds.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 0; i < 5; ++i) {
          SendHeadersWithContentType(*port, "text/plain", absl::Seconds(1));
        }
        return server.UnreadLogBytes() >= 2048;
      },
      absl::Seconds(60)))
      << server.UnreadLogBytes() << " bytes unread";
  for (int i = 0; i < 2 * kLibraryLinesPerSecond; ++i) {
    SendHeadersWithContentType(*port, "text/plain", absl::Seconds(5));
  }
  EXPECT_TRUE(FibServes(*port));
  server.Signal(SIGTERM);
  // The exit waits up to 1.5 s for a reader to take the last lines.
  EXPECT_TRUE(server.ExitsUnread(absl::Seconds(30)))
      << "the server did not drain with its log reader stalled";
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
}

// --log_level=error: a server that cannot start (its port is taken) prints
// its one error line, and none of the info lines before it.
TEST(GrpcLogE2eTest, ErrorLevelPrintsOnlyErrors) {
  ServerProcess first(BaseArgs());
  ASSERT_TRUE(first.Spawn());
  std::optional<int> port = first.WaitServing();
  ASSERT_TRUE(port.has_value());
  ServerProcess second({"--address=127.0.0.1", absl::StrCat("--port=", *port),
                        "--metrics_port=0", "--log_level=error"});
  ASSERT_TRUE(second.Spawn());
  ExitResult exit = second.Wait(absl::Seconds(15));
  EXPECT_EQ(exit.code, 2);
  std::vector<google::protobuf::Struct> lines = JsonLines(exit.stderr_text);
  ASSERT_EQ(lines.size(), 1u) << exit.stderr_text;
  EXPECT_EQ(lines[0].fields().at("level").string_value(), "error");
  EXPECT_EQ(lines[0].fields().at("msg").string_value(), "cannot start");
  first.Signal(SIGTERM);
  EXPECT_EQ(first.Wait().code, 0);
}

}  // namespace
}  // namespace compute::testing
