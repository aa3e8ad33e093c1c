// The real compute-server binary against clients that lie: decompression
// bombs.
#include <grpc/grpc.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "compute/v1/compute.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/compressed_call.h"
#include "tests/e2e/server_process.h"
#include "tests/integration/calls.h"

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
// peak memory does not grow by even one message's worth.
TEST(CompressionE2eTest, BombsAreRefusedBeforeAnyInflation) {
  constexpr int64_t kMaxMessageBytes = 4 << 20;
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

}  // namespace
}  // namespace compute::testing
