#include "server/config.h"

#include <net/if.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/compute_service.h"
#include "tests/unit/config/parse_args.h"

namespace compute {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kMi = int64_t{1} << 20;

// `root` prefixes the cgroup files; the default has none: affinity only, no
// memory limit.
absl::StatusOr<Config> Parse(std::vector<std::string> args,
                             std::map<std::string, std::string> env = {},
                             std::string root = "/nonexistent") {
  CpuCountSources cpu;
  cpu.root = root;
  cpu.affinity_cpus = 3;
  return testing::ParseArgs(args, env, cpu);
}

TEST(ConfigTest, DefaultsNeedNoConfiguration) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.port, 50051);
  EXPECT_EQ(c->server.pool.max_workers, 3) << "the CPU count";
  EXPECT_EQ(c->server.pool.min_workers, 3);
  EXPECT_EQ(c->server.pool.queue_capacity, 64u);
  EXPECT_TRUE(c->server.admission);
  EXPECT_EQ(c->metrics_port, 9464);
  EXPECT_EQ(c->drain_timeout, absl::Seconds(20));
  EXPECT_EQ(c->max_inflight_bytes, 512 * kMi) << "no cgroup memory limit";
  EXPECT_EQ(c->max_inflight_bytes_reason, "default (no cgroup memory limit)");
  EXPECT_EQ(c->memory.limit_bytes, std::nullopt);
  EXPECT_EQ(c->server.pool.target_queue_wait, absl::Milliseconds(100));
  EXPECT_EQ(c->server.max_connection_idle, absl::InfiniteDuration());
}

// On a node of more than 256 CPUs without a quota, the I/O threads stay
// within --io_threads' own limit (it started one per CPU); the pool takes
// them all.
TEST(ConfigTest, TheDefaultIoThreadsStayWithinTheFlagsLimit) {
  CpuCountSources cpu;
  cpu.root = "/nonexistent";
  cpu.affinity_cpus = 384;
  auto c = testing::ParseArgs({}, {}, cpu);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.io_threads, 256);
  EXPECT_EQ(c->server.pool.max_workers, 384);
}

// A fake root holding a cgroup v2 memory.max.
class FakeCgroup {
 public:
  explicit FakeCgroup(const std::string& memory_max) {
    std::string tmpl = (fs::temp_directory_path() / "cgroupXXXXXX").string();
    root_ = mkdtemp(tmpl.data());
    Write("proc/self/cgroup", "0::/\n");
    Write("sys/fs/cgroup/memory.max", memory_max);
  }
  ~FakeCgroup() { fs::remove_all(root_); }
  const std::string& root() const { return root_; }
  void Write(const std::string& path, const std::string& text) {
    fs::path p = fs::path(root_) / path;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

 private:
  std::string root_;
};

TEST(ConfigTest,
     MaxInflightBytesIs25ThirtySecondsOfTheCgroupLimitLessAReserve) {
  FakeCgroup cgroup("2147483648\n");
  auto c = Parse({}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->memory.limit_bytes, 2048 * kMi);
  // The budget, plus the process's own 64 MiB, within 80% of the limit.
  EXPECT_EQ(c->max_inflight_bytes, 1550 * kMi);
  EXPECT_EQ(c->server.pool.max_inflight_bytes, 1550 * kMi / 4);
  EXPECT_EQ(c->server.transport_quota_bytes, 1550 * kMi / 4 * 3);
  EXPECT_EQ(c->max_inflight_bytes_reason,
            "25/32 of the cgroup memory limit (2 GiB) less 64 MiB for the "
            "process");
  // "auto" says the same as no flag; "" (a template's variable rendered
  // empty) is refused, as any other flag's empty value.
  auto a = Parse({"--max_inflight_bytes=auto"}, {}, cgroup.root());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->max_inflight_bytes, 1550 * kMi);
  a = Parse({}, {{"COMPUTE_MAX_INFLIGHT_BYTES", ""}}, cgroup.root());
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()),
              HasSubstr("bad value for COMPUTE_MAX_INFLIGHT_BYTES: '': "
                        "expected a whole number of bytes"));
}

TEST(ConfigTest, ACgroupLimitUnderTheReserveGivesTheMinimumBudget) {
  FakeCgroup cgroup("33554432\n");  // 32 MiB
  auto c = Parse({}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 1 * kMi);
}

TEST(ConfigTest, CgroupMemoryMaxOfMaxMeansTheDefault) {
  FakeCgroup cgroup("max\n");
  auto c = Parse({}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 512 * kMi);
  EXPECT_EQ(c->max_inflight_bytes_reason, "default (no cgroup memory limit)");
}

TEST(ConfigTest, MaxInflightBytesFromTheFlagOrTheEnvironment) {
  FakeCgroup cgroup("2147483648\n");
  auto c = Parse({"--max_inflight_bytes=512Mi"}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 512 * kMi) << "the flag beats the cgroup";
  EXPECT_EQ(c->max_inflight_bytes_reason, "set by --max_inflight_bytes");

  c = Parse({}, {{"COMPUTE_MAX_INFLIGHT_BYTES", "3G"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 3'000'000'000);
  EXPECT_EQ(c->max_inflight_bytes_reason, "set by COMPUTE_MAX_INFLIGHT_BYTES");

  c = Parse({"--max_inflight_bytes", "2097152"},
            {{"COMPUTE_MAX_INFLIGHT_BYTES", "3G"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 2 * kMi);
  EXPECT_EQ(c->max_inflight_bytes_reason, "set by --max_inflight_bytes");

  c = Parse({"--max_inflight_bytes=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 0);
  EXPECT_EQ(c->max_inflight_bytes_reason,
            "no limit (set by --max_inflight_bytes)");

  c = Parse({"--max_inflight_bytes=1Mi"});
  ASSERT_TRUE(c.ok()) << c.status() << ": the minimum itself is allowed";
  EXPECT_EQ(c->max_inflight_bytes, kMi);
}

// The load report's CPU utilisation is against what the quota allows, so
// a replica throttled at a 1.5-CPU quota reports 1, not 0.75; the pool is
// still sized by whole CPUs.
TEST(ConfigTest, TheLoadReportsCpusAreTheQuotaNotItsCeiling) {
  FakeCgroup cgroup("max\n");
  cgroup.Write("sys/fs/cgroup/cpu.max", "50000 100000\n");
  auto c = Parse({}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cpu.cpus, 1);
  EXPECT_EQ(c->server.pool.max_workers, 1);
  EXPECT_DOUBLE_EQ(c->server.cpus, 0.5);
  FakeCgroup unlimited("max\n");
  c = Parse({}, {}, unlimited.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->server.cpus, c->cpu.cpus) << "no quota: the CPUs";
}

// A budget whose pool share cannot hold a largest request and a response
// as large refuses calls the message limit lets through: said at start-up,
// with what to change. The default budget holds the default limit's calls.
TEST(ConfigTest, ABudgetTooSmallForTheMessageLimitIsWarnedOf) {
  auto c = Parse({"--max_inflight_bytes=128Mi", "--max_message_bytes=16Mi"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MemoryBudgetWarning(*c), "") << "32 MiB of pool share fits 2x16";
  c = Parse({"--max_inflight_bytes=128Mi", "--max_message_bytes=17Mi"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MemoryBudgetWarning(*c),
            "calls over 33554432 bytes (request + response; 1/4 of "
            "--max_inflight_bytes 134217728) are refused as too large for "
            "this server, though --max_message_bytes 17825792 lets a request "
            "and a response of that size through: raise --max_inflight_bytes "
            "to 142606336 or lower --max_message_bytes to 16777216");
  c = Parse({"--max_inflight_bytes=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MemoryBudgetWarning(*c), "") << "no budget, nothing refused";
  c = Parse({"--max_inflight_bytes=1Mi"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(MemoryBudgetWarning(*c), HasSubstr("calls over 262144 bytes"));
  // Larger than the transport's share, a request is not even received:
  // gRPC resets it, and no "too large" reaches its client.
  EXPECT_THAT(MemoryBudgetWarning(*c),
              HasSubstr("requests over 786432 bytes (3/4 of "
                        "--max_inflight_bytes: gRPC's transport quota, which "
                        "every connection shares) are reset unread"));
  FakeCgroup cgroup("max\n");
  c = Parse({}, {}, cgroup.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MemoryBudgetWarning(*c), "") << "the defaults fit each other";
  // An auto budget under a 256 MiB limit (150 MiB) is raised by the limit:
  // 391.7 MiB gives a budget of 256 MiB, a pool share of 2 x 32 MiB.
  FakeCgroup small("268435456\n");
  c = Parse({}, {}, small.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(MemoryBudgetWarning(*c),
              HasSubstr(": raise the memory limit to 410706272 (the budget is "
                        "25/32 of it less 67108864) or lower "
                        "--max_message_bytes to "));
  FakeCgroup enough("410706272\n");
  c = Parse({}, {}, enough.root());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MemoryBudgetWarning(*c), "") << "the limit it named is enough";
}

// With mutual TLS every caller's certificate names its tenant, so a
// trusted header is never read: said at start-up.
TEST(ConfigTest, ATenantHeaderUnderMutualTlsIsWarnedOf) {
  auto c = Parse({"--trust_tenant_header"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(TenantHeaderWarning(*c), "");
  c = Parse({"--trust_tenant_header", "--tls_cert=/c.pem", "--tls_key=/k.pem"},
            {{"COMPUTE_TLS_CLIENT_CA", "/ca.pem"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(TenantHeaderWarning(*c),
            "--trust_tenant_header is set with COMPUTE_TLS_CLIENT_CA: every "
            "caller's verified certificate names its tenant, so the "
            "compute-tenant header is never read (calls through a proxy are "
            "all the proxy's tenant)");
  c = Parse({"--tls_cert=/c.pem", "--tls_key=/k.pem", "--tls_client_ca=/ca"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(TenantHeaderWarning(*c), "") << "no header trusted";
}

// One budget for all the bytes of calls: the pool (what it admitted) gets
// 1/4, gRPC's transport quota (bodies being read, and a blur's pixels
// while its call lasts) 3/4, and together never more than the flag says.
TEST(ConfigTest, TheMemoryBudgetIsSplitBetweenThePoolAndTheTransport) {
  auto c = Parse({"--max_inflight_bytes=20Mi"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_bytes, 20 * kMi);
  EXPECT_EQ(c->server.pool.max_inflight_bytes, 5 * kMi);
  EXPECT_EQ(c->server.transport_quota_bytes, 15 * kMi);

  c = Parse({"--max_inflight_bytes=2000003"});  // not a multiple of 4
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.max_inflight_bytes, 500000);
  EXPECT_EQ(c->server.transport_quota_bytes, 1500003);

  c = Parse({"--max_inflight_bytes=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.max_inflight_bytes, 0) << "no limit";
  EXPECT_EQ(c->server.transport_quota_bytes, 0) << "no quota";
}

TEST(ConfigTest, TargetQueueWait) {
  auto c = Parse({"--target_queue_wait=50ms"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.target_queue_wait, absl::Milliseconds(50));
  c = Parse({"--target_queue_wait=inf"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.target_queue_wait, absl::InfiniteDuration())
      << "no overload control";
  c = Parse({}, {{"COMPUTE_TARGET_QUEUE_WAIT", "1s"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.target_queue_wait, absl::Seconds(1));
}

TEST(ConfigTest, InlineMaxCost) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.inline_max_cost, absl::Microseconds(20));
  c = Parse({"--inline_max_cost=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.inline_max_cost, absl::ZeroDuration()) << "never";
  c = Parse({}, {{"COMPUTE_INLINE_MAX_COST", "100us"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.inline_max_cost, absl::Microseconds(100));
  c = Parse({"--inline_max_cost=1s"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("--inline_max_cost must be between 0 and "
                        "10ms (got 1s)"));
}

TEST(ConfigTest, IoThreads) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.io_threads, c->cpu.cpus) << "the CPU count by default";
  c = Parse({"--io_threads=3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.io_threads, 3);
  c = Parse({}, {{"COMPUTE_IO_THREADS", "300"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("COMPUTE_IO_THREADS must be between 0 and 256 (got "
                        "300)"));
}

TEST(ConfigTest, MaxConcurrentStreams) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.max_concurrent_streams, 256);
  c = Parse({}, {{"COMPUTE_MAX_CONCURRENT_STREAMS", "1000"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.max_concurrent_streams, 1000);
  c = Parse({"--max_concurrent_streams", "2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.max_concurrent_streams, 2);
  // 1 is refused too: a client's health Watch held the one stream, and
  // every call from compute-client waited for good.
  for (const char* bad : {"1", "0", "-1"}) {
    c = Parse({absl::StrCat("--max_concurrent_streams=", bad)});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(
        std::string(c.status().message()),
        absl::StrCat("--max_concurrent_streams must be at least 2 (got ", bad,
                     "): a client that watches health holds one stream "
                     "of each connection"));
  }
  c = Parse({"--max_concurrent_streams=many"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("bad value for --max_concurrent_streams: 'many'"));
}

TEST(ConfigTest, TenantMetrics) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tenant_metrics, 0) << "off by default";
  c = Parse({}, {{"COMPUTE_TENANT_METRICS", "20"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tenant_metrics, 20);
  c = Parse({"--tenant_metrics=1001"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("--tenant_metrics must be between 0 and 1000 (got "
                        "1001)"));
}

TEST(ConfigTest, Tenants) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->server.trust_tenant_header);
  EXPECT_TRUE(c->server.tenant_weights.empty());
  EXPECT_EQ(c->server.tenant_ipv6_prefix, 128);
  c = Parse({}, {{"COMPUTE_TENANT_IPV6_PREFIX", "64"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_ipv6_prefix, 64);
  // IPv6 names in --tenant_weights are written as the server writes a
  // peer's tenant, so that any spelling of the address matches; a network
  // of another length than the tenants' would never match.
  c = Parse({"--tenant_ipv6_prefix=64",
             "--tenant_weights=2001:DB8:0:1:0:0:0:5/64=4,gold=2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("2001:db8:0:1::/64"), 4);
  EXPECT_EQ(c->server.tenant_weights.at("gold"), 2);
  // A bare address is written as the server writes a peer's (at /128) or
  // gRPC a certificate's IP SAN: "2001:DB8::5" matches the peer
  // 2001:db8::5. A link-local one keeps its zone.
  c = Parse({"--tenant_ipv6_prefix=64", "--tenant_weights=2001:DB8::5=4"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("2001:db8::5"), 4);
  c = Parse({"--tenant_weights=2001:0DB8:0:0::5=4,FE80::1%2=3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at(
                service::TenantFromPeer("ipv6:[2001:db8::5]:443", 128)),
            4);
  EXPECT_EQ(c->server.tenant_weights.at("fe80::1%2"), 3);
  c = Parse({"--tenant_ipv6_prefix=64", "--tenant_weights=fe80::1%2/64=3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at(
                service::TenantFromPeer("ipv6:[fe80::9:9%2]:443", 64)),
            3);
  // A zone named by its interface is written by its number, as gRPC
  // writes a peer's; an interface the host lacks is a start-up error.
  const std::string loopback = absl::StrCat(if_nametoindex("lo"));
  ASSERT_NE(loopback, "0") << "this test needs the loopback interface";
  c = Parse(
      {"--tenant_ipv6_prefix=64", "--tenant_weights=FE80::1%lo/64=3,gold=2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at(service::TenantFromPeer(
                absl::StrCat("ipv6:[fe80::9:9%", loopback, "]:443"), 64)),
            3);
  c = Parse({"--tenant_weights=fe80::1%lo=3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at(absl::StrCat("fe80::1%", loopback)), 3);
  // Not an IPv6 address: a name, kept as written, a '%' and all.
  c = Parse({"--tenant_weights=urn:team%ops=2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("urn:team%ops"), 2);
  c = Parse({"--tenant_weights=fe80::1%nosuchif9=3"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("'fe80::1%nosuchif9' names the zone 'nosuchif9', but "
                        "this host has no network interface of that name"));
  c = Parse({"--tenant_weights=2001:DB8::0005/128=4"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("2001:db8::5"), 4);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--tenant_weights=2001:db8::/64=4"},
           {"--tenant_ipv6_prefix=64", "--tenant_weights=2001:db8::/48=4"},
           {"--tenant_ipv6_prefix=64", "--tenant_weights=2001:db8::/0=4"}}) {
    c = Parse(args);
    ASSERT_FALSE(c.ok()) << args.back();
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("--tenant_weights"))
        << args.back();
  }
  for (const char* bad : {"0", "129", "-1", "x"}) {
    c = Parse({std::string("--tenant_ipv6_prefix=") + bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("--tenant_ipv6_prefix"))
        << bad;
  }
  c = Parse({"--trust_tenant_header", "--tenant_weights=gold=4,silver=2.5"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->server.trust_tenant_header);
  EXPECT_EQ(c->server.tenant_weights.size(), 2u);
  EXPECT_EQ(c->server.tenant_weights.at("gold"), 4);
  EXPECT_EQ(c->server.tenant_weights.at("silver"), 2.5);
  // Spaces around names and weights (a YAML list, a ConfigMap) are not part
  // of the tenant's name.
  c = Parse({"--tenant_weights= gold = 4, silver=2.5 "});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("gold"), 4);
  EXPECT_EQ(c->server.tenant_weights.at("silver"), 2.5);
  c = Parse({}, {{"COMPUTE_TENANT_WEIGHTS", "a=1"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tenant_weights.at("a"), 1);
  for (const char* bad :
       {"gold", "gold=0", "gold=-1", "gold=1e-9", "=2", "gold=x", "gold=2000",
        "a=1,a=2", "a=1, a=2", " =2"}) {
    c = Parse({std::string("--tenant_weights=") + bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("--tenant_weights"))
        << bad;
  }
}

// Found by config_fuzzer: a value's newline split the one error line.
TEST(ConfigTest, AnErrorIsOneLineWhateverTheValueHolds) {
  auto c = Parse({}, {{"COMPUTE_PORT", "http\n"}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "bad value for COMPUTE_PORT: 'http\\n': expected an integer");
  c = Parse({"--tenant_weights=a=1\r\x01"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("'a=1\\r\\x01'"));
}

TEST(ConfigTest, LogLevel) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  c = Parse({"--log_level=debug"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  c = Parse({}, {{"COMPUTE_LOG_LEVEL", "warning"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_level, LogLevel::kWarning);
  c = Parse({"--log_level", "error"}, {{"COMPUTE_LOG_LEVEL", "debug"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_level, LogLevel::kError);
  c = Parse({"--log_level=loud"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "bad value for --log_level: 'loud': one of debug, info, warning, "
            "error");
  c = Parse({}, {{"COMPUTE_LOG_LEVEL", "INFO"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("COMPUTE_LOG_LEVEL: 'INFO'"));
}

TEST(ConfigTest, FlagsInEveryForm) {
  auto c = Parse({"--port=1234", "--workers", "4", "--min_workers=1",
                  "--noadmission", "--idle_timeout=250ms", "-queue_capacity=0",
                  "--max_connection_idle=5m"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.port, 1234);
  EXPECT_EQ(c->server.pool.max_workers, 4);
  EXPECT_EQ(c->server.pool.min_workers, 1);
  EXPECT_FALSE(c->server.admission);
  EXPECT_EQ(c->server.pool.idle_timeout, absl::Milliseconds(250));
  EXPECT_EQ(c->server.pool.queue_capacity, 0u);
  EXPECT_EQ(c->server.max_connection_idle, absl::Minutes(5));
}

TEST(ConfigTest, EnvironmentIsReadAndTheFlagWins) {
  auto c = Parse({"--queue_capacity=5"}, {{"COMPUTE_QUEUE_CAPACITY", "9"},
                                          {"COMPUTE_WORKERS", "2"},
                                          {"COMPUTE_ADMISSION", "false"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.queue_capacity, 5u);
  EXPECT_EQ(c->server.pool.max_workers, 2);
  EXPECT_FALSE(c->server.admission);
}

// Checked at start-up, after parsing (an address of this host, a PEM
// file): the error names where the value came from.
TEST(ConfigTest, AddressesAndFilesKeepTheNameTheyWereSetBy) {
  auto c = Parse({"--metrics_address=127.0.0.1", "--tls_key=/key.pem"},
                 {{"COMPUTE_ADDRESS", "127.0.0.1"},
                  {"COMPUTE_METRICS_ADDRESS", "0.0.0.0"},
                  {"COMPUTE_TLS_CERT", "/cert.pem"},
                  {"COMPUTE_TLS_KEY", "/other.pem"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.address_name, "COMPUTE_ADDRESS");
  EXPECT_EQ(c->metrics_address_name, "--metrics_address") << "the flag won";
  EXPECT_EQ(c->server.tls_cert_name, "COMPUTE_TLS_CERT");
  EXPECT_EQ(c->server.tls_key_name, "--tls_key");
  EXPECT_EQ(c->server.tls_key, "/key.pem");
  EXPECT_EQ(c->server.tls_client_ca_name, "--tls_client_ca") << "not set";
}

// A byte size, as --help says byte sizes are written (it was an int, and
// "32Mi" was refused).
TEST(ConfigTest, MaxMessageBytesIsAByteSize) {
  EXPECT_EQ(Parse({})->server.max_message_bytes, 32 << 20);
  EXPECT_EQ(Parse({"--max_message_bytes=16Mi"})->server.max_message_bytes,
            16 << 20);
  EXPECT_EQ(Parse({"--max_message_bytes=1048576"})->server.max_message_bytes,
            1 << 20);
  EXPECT_EQ(Parse({"--max_message_bytes=1Gi"})->server.max_message_bytes,
            1 << 30);
  EXPECT_EQ(Parse({"--max_message_bytes=4Ki"})->server.max_message_bytes, 4096);
}

TEST(ConfigTest, EachParseStartsFromTheDefaults) {
  ASSERT_TRUE(Parse({"--queue_capacity=5"}).ok());
  EXPECT_EQ(Parse({})->server.pool.queue_capacity, 64u);
}

TEST(ConfigTest, BadValuesNameTheFlagOrVariable) {
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"--port=x"}, {}, "--port"},
      {{"--port=-1"}, {}, "--port must be between 0 and 65535 (got -1)"},
      {{"--workers=5000"}, {}, "--workers must be between 0 and 4096"},
      {{"--workers=2", "--min_workers=3"},
       {},
       "--min_workers must be between 0 and 2, --workers (got 3)"},
      {{"--min_workers=5000"},
       {},
       "the container-aware CPU count (--workers is 0) (got 5000)"},
      {{"--max_message_bytes=2Gi"},
       {},
       "--max_message_bytes must be between 4Ki and 1Gi (got 2Gi)"},
      {{"--max_message_bytes=lots"},
       {},
       "bad value for --max_message_bytes: 'lots'"},
      {{"--port=9000", "--metrics_port=9000"},
       {},
       "--port and --metrics_port are both 9000: give them different ports"},
      {{"--queue_capacity=-1"}, {}, "--queue_capacity must be between 0"},
      {{"--keepalive_time=0s"}, {}, "--keepalive_time must be > 0"},
      {{"--max_connection_age=500us"},
       {},
       "--max_connection_age must be at least 1ms, gRPC counts whole "
       "milliseconds (got 500us)"},
      {{"--keepalive_timeout=0.5ms"},
       {},
       "--keepalive_timeout must be at least 1ms"},
      // Pings milliseconds apart crashed the server inside gRPC 1.51.
      {{"--keepalive_timeout=1ms"},
       {},
       "--keepalive_timeout must be at least 1s: gRPC 1.51's keepalive "
       "failed with pings milliseconds apart (got 1ms)"},
      {{},
       {{"COMPUTE_KEEPALIVE_TIME", "999ms"}},
       "COMPUTE_KEEPALIVE_TIME must be at least 1s"},
      {{"--max_connection_age=720h"},
       {},
       "--max_connection_age must be inf or under 596h, gRPC counts "
       "milliseconds in an int (got 720h)"},
      {{"--max_connection_idle=0s"}, {}, "--max_connection_idle must be > 0"},
      {{},
       {{"COMPUTE_MAX_CONNECTION_IDLE", "720h"}},
       "COMPUTE_MAX_CONNECTION_IDLE must be inf or under 596h"},
      {{"--max_message_bytes=10"}, {}, "--max_message_bytes must be between"},
      {{"--tls_client_ca=/ca.pem"}, {}, "--tls_client_ca needs --tls_cert"},
      {{},
       {{"COMPUTE_TLS_CLIENT_CA", "/ca.pem"}},
       "COMPUTE_TLS_CLIENT_CA needs --tls_cert"},
      {{},
       {{"COMPUTE_TLS_CERT", "/cert.pem"}},
       "COMPUTE_TLS_CERT and --tls_key must be given together"},
      // Set but empty (a template's variable that rendered empty) is not
      // "no TLS": it served plaintext, or TLS without client certificates.
      {{"--tls_cert=/c.pem", "--tls_key=/k.pem"},
       {{"COMPUTE_TLS_CLIENT_CA", ""}},
       "COMPUTE_TLS_CLIENT_CA is empty: give a PEM file, or leave it unset "
       "(for no TLS)"},
      {{},
       {{"COMPUTE_TLS_CERT", ""}, {"COMPUTE_TLS_KEY", ""}},
       "COMPUTE_TLS_CERT is empty"},
      {{"--tls_key="}, {}, "--tls_key is empty"},
      {{"--frobnicate"}, {}, "unknown flag --frobnicate"},
      {{"stray"}, {}, "unexpected argument 'stray'"},
      {{"--port"}, {}, "flag --port needs a value"},
      {{}, {{"COMPUTE_PORT", "http"}}, "COMPUTE_PORT"},
      {{"--max_inflight_bytes=lots"},
       {},
       "bad value for --max_inflight_bytes: 'lots': expected a whole number "
       "of bytes"},
      {{"--max_inflight_bytes=1.5Gi"}, {}, "--max_inflight_bytes: '1.5Gi'"},
      {{"--max_inflight_bytes=-1Mi"},
       {},
       "bad value for --max_inflight_bytes: '-1Mi': must not be negative"},
      {{"--max_inflight_bytes=99999999999Ti"}, {}, "too large"},
      {{"--max_inflight_bytes=1000"},
       {},
       "--max_inflight_bytes must be 0 (no limit) or at least 1Mi (got 1000)"},
      {{"--max_inflight_bytes=512Ki"}, {}, "at least 1Mi (got 512Ki)"},
      {{},
       {{"COMPUTE_MAX_INFLIGHT_BYTES", "512mb"}},
       "bad value for COMPUTE_MAX_INFLIGHT_BYTES: '512mb'"},
      {{"--target_queue_wait=0"}, {}, "--target_queue_wait must be > 0"},
      {{"--target_queue_wait=-5ms"}, {}, "--target_queue_wait must be > 0"},
      {{"--target_queue_wait=soon"}, {}, "--target_queue_wait"},
      // A value from the environment is named by its variable, which is
      // what an operator finds in the manifest.
      {{},
       {{"COMPUTE_WORKERS", "5000"}},
       "COMPUTE_WORKERS must be between 0 and 4096 (got 5000)"},
      {{},
       {{"COMPUTE_TARGET_QUEUE_WAIT", "0s"}},
       "COMPUTE_TARGET_QUEUE_WAIT must be > 0"},
      {{},
       {{"COMPUTE_KEEPALIVE_TIME", "720h"}},
       "COMPUTE_KEEPALIVE_TIME must be inf or under 596h"},
      {{"--keepalive_timeout=596h"},
       {},
       "--keepalive_timeout must be inf or under 596h"},
      {{},
       {{"COMPUTE_MAX_INFLIGHT_BYTES", "1000"}},
       "COMPUTE_MAX_INFLIGHT_BYTES must be 0 (no limit) or at least 1Mi"},
      {{},
       {{"COMPUTE_TENANT_WEIGHTS", "gold"}},
       "COMPUTE_TENANT_WEIGHTS: 'gold' is not name=weight"},
      {{},
       {{"COMPUTE_INLINE_MAX_COST", "1s"}},
       "COMPUTE_INLINE_MAX_COST must be between 0 and 10ms"},
      {{},
       {{"COMPUTE_DRAIN_TIMEOUT", "-1s"}},
       "COMPUTE_DRAIN_TIMEOUT must be >= 0"},
      // The flag wins over the variable, and so names the error.
      {{"--workers=5000"},
       {{"COMPUTE_WORKERS", "4"}},
       "--workers must be between 0 and 4096"},
  };
  for (const Case& c : cases) {
    auto r = Parse(c.args, c.env);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.expect));
    EXPECT_EQ(std::string(r.status().message()).find('\n'), std::string::npos)
        << "one line";
  }
}

TEST(ConfigTest, HelpListsEveryFlagWithItsEnvironmentName) {
  auto c = Parse({"--help"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->help);
  // Every spelling absl takes (-help and --help=true were unknown flags).
  for (const char* arg : {"-h", "-help", "--helpfull", "--help=true"}) {
    auto h = Parse({arg});
    ASSERT_TRUE(h.ok()) << arg << ": " << h.status();
    EXPECT_TRUE(h->help) << arg;
  }
  std::string usage = Usage();
  for (const char* s :
       {"--queue_capacity", "COMPUTE_QUEUE_CAPACITY", "--drain_timeout",
        "COMPUTE_DRAIN_TIMEOUT", "default: 64", "--tls_client_ca",
        "--metrics_port", "--max_inflight_bytes", "COMPUTE_MAX_INFLIGHT_BYTES",
        "default: auto", "--target_queue_wait", "COMPUTE_TARGET_QUEUE_WAIT",
        "default: 100ms"}) {
    EXPECT_THAT(usage, HasSubstr(s));
  }
  // The integer flags' ranges, as their checks apply them.
  EXPECT_THAT(usage, HasSubstr("default: 64 (0 to 1048576)\n"));
  EXPECT_THAT(usage, HasSubstr("default: 128 (1 to 128)\n"));
  EXPECT_THAT(usage, HasSubstr("default: 256 (at least 2)\n"));
  EXPECT_FALSE(Parse({"--queue_capacity=1048577"}).ok());
}

// A bool flag takes its value as the next argument too, and a bad value
// says what a good one looks like, in the same words as compute-client.
TEST(ConfigTest, FlagValueSyntaxAndMessages) {
  auto off = Parse({"--admission", "false", "--port", "0"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->server.admission);
  EXPECT_EQ(off->server.port, 0);
  auto on = Parse({"--admission", "--port=0"});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->server.admission);
  auto yes = Parse({"--noadmission", "--admission", "yes"});
  ASSERT_TRUE(yes.ok()) << yes.status();
  EXPECT_TRUE(yes->server.admission);

  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--drain_timeout", "5"},
       {},
       "bad value for --drain_timeout: '5': expected a duration such as "
       "250ms, 10s, 1m or inf"},
      {{},
       {{"COMPUTE_DRAIN_TIMEOUT", "soon"}},
       "bad value for COMPUTE_DRAIN_TIMEOUT: 'soon': expected a duration "
       "such as 250ms, 10s, 1m or inf"},
      {{"--workers=two"},
       {},
       "bad value for --workers: 'two': expected an integer"},
      // An integer past int's range says the flag's own range, not
      // "expected an integer" nor int's range (until 2026-12-06).
      {{"--workers=99999999999"},
       {},
       "bad value for --workers: '99999999999': must be between 0 and 4096"},
      {{},
       {{"COMPUTE_MAX_CONCURRENT_STREAMS", "-99999999999"}},
       "bad value for COMPUTE_MAX_CONCURRENT_STREAMS: '-99999999999': must be "
       "between 2 and 2147483647"},
      {{"--admission=maybe"},
       {},
       "bad value for --admission: 'maybe': expected true or false (or "
       "yes/no, 1/0)"},
      // Not a bool, so not the flag's value: the server takes no arguments.
      {{"--admission", "maybe"},
       {},
       "unexpected argument 'maybe' (see --help)"},
      // --no negates a bool only: --noport is no flag (it was one that
      // "needs a value", and took the next argument as it).
      {{"--noport"}, {}, "unknown flag --noport (see --help)"},
      {{"--noport", "5"}, {}, "unknown flag --noport (see --help)"},
      // The negated form is a flag, but takes no value.
      {{"--noadmission=false"},
       {},
       "--noadmission takes no value (write --admission=true or "
       "--admission=false)"},
  };
  for (const Case& c : cases) {
    auto r = Parse(c.args, c.env);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().message(), c.message);
  }
}

// The flag wins over its variable, a bad value of the variable included;
// --help is shown whatever the variables hold. A bad variable alone still
// stops start-up.
TEST(ConfigTest, AFlagWinsOverItsVariablesBadValue) {
  const std::map<std::string, std::string> bad = {{"COMPUTE_PORT", "abc"}};
  auto c = Parse({"--port=5"}, bad);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.port, 5);
  c = Parse({"--help"}, bad);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->help);
  c = Parse({"--workers=2"}, bad);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "bad value for COMPUTE_PORT: 'abc': expected an integer");
}

// --min_workers equal to --workers is a fixed-size pool.
TEST(ConfigTest, MinWorkersMayEqualWorkers) {
  auto c = Parse({"--workers=4", "--min_workers=4"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.pool.max_workers, 4);
  EXPECT_EQ(c->server.pool.min_workers, 4);
  auto cpus = Parse({"--min_workers=3"});  // --workers 0: the CPU count, 3
  ASSERT_TRUE(cpus.ok()) << cpus.status();
  EXPECT_EQ(cpus->server.pool.min_workers, 3);
}

}  // namespace
}  // namespace compute
