#include "server/config.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Config> Parse(std::vector<std::string> args,
                             std::map<std::string, std::string> env = {}) {
  std::vector<const char*> argv = {"compute-server"};
  for (const auto& a : args) argv.push_back(a.c_str());
  CpuCountSources cpu;
  cpu.root = "/nonexistent";  // no cgroup files: affinity only
  cpu.affinity_cpus = 3;
  return ParseConfig(
      static_cast<int>(argv.size()), argv.data(),
      [&](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      },
      cpu);
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
}

TEST(ConfigTest, FlagsInEveryForm) {
  auto c =
      Parse({"--port=1234", "--workers", "4", "--min_workers=1",
             "--noadmission", "--idle_timeout=250ms", "-queue_capacity=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.port, 1234);
  EXPECT_EQ(c->server.pool.max_workers, 4);
  EXPECT_EQ(c->server.pool.min_workers, 1);
  EXPECT_FALSE(c->server.admission);
  EXPECT_EQ(c->server.pool.idle_timeout, absl::Milliseconds(250));
  EXPECT_EQ(c->server.pool.queue_capacity, 0u);
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
       "--min_workers must be between 0 and 2"},
      {{"--queue_capacity=-1"}, {}, "--queue_capacity must be between 0"},
      {{"--keepalive_time=0s"}, {}, "--keepalive_time must be > 0"},
      {{"--max_message_bytes=10"}, {}, "--max_message_bytes must be between"},
      {{"--tls_client_ca=/ca.pem"}, {}, "--tls_client_ca needs --tls_cert"},
      {{"--frobnicate"}, {}, "unknown flag --frobnicate"},
      {{"stray"}, {}, "unexpected argument 'stray'"},
      {{"--port"}, {}, "flag --port needs a value"},
      {{}, {{"COMPUTE_PORT", "http"}}, "COMPUTE_PORT"},
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
  std::string usage = Usage();
  for (const char* s : {"--queue_capacity", "COMPUTE_QUEUE_CAPACITY",
                        "--drain_timeout", "COMPUTE_DRAIN_TIMEOUT",
                        "default: 64", "--tls_client_ca", "--metrics_port"}) {
    EXPECT_THAT(usage, HasSubstr(s));
  }
}

}  // namespace
}  // namespace compute
