#include "client/mix.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::client {
namespace {

using ::testing::HasSubstr;

TEST(MixTest, ParsesEntriesWithDefaults) {
  auto mix = ParseMix(
      "greedy:rate=4000,modest:rate=40,ops:rate=100:priority=critical,"
      "closed:concurrency=3:tenant=team-a");
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 4u);
  EXPECT_EQ((*mix)[0].name, "greedy");
  EXPECT_EQ((*mix)[0].tenant, "greedy") << "the name by default";
  EXPECT_EQ((*mix)[0].rate, 4000);
  EXPECT_EQ((*mix)[0].priority, "") << "not sent";
  EXPECT_EQ((*mix)[2].priority, "critical");
  EXPECT_EQ((*mix)[3].rate, 0) << "closed loop";
  EXPECT_EQ((*mix)[3].concurrency, 3);
  EXPECT_EQ((*mix)[3].tenant, "team-a");
}

TEST(MixTest, BadEntriesNameTheEntryAndTheField) {
  struct Case {
    std::string spec;
    std::string error;
  } cases[] = {
      {"", "entry '': needs a name first"},
      {"a:rate=0", "entry 'a:rate=0': rate must be"},
      {"a:rate=1e-300", "rate must be a number of calls per second between"},
      {"a:rate=fast", "rate must be"},
      {"a:concurrency=0", "concurrency must be between 1 and 10000"},
      {"a:priority=urgent", "priority must be critical, default or sheddable"},
      {"a:tenant=", "tenant must not be empty"},
      {"a:colour=red", "unknown field 'colour=red'"},
      {"a:rate=5:concurrency=2", "do not go together"},
      {"a,a", "the name is used twice"},
      {"a:rate=5:rate=7", "entry 'a:rate=5:rate=7': rate= is given twice"},
      {"a:tenant=x:tenant=y", "tenant= is given twice"},
      {"a:colour=red:colour=blue", "unknown field 'colour=red'"},
      {"a:rate=1,,b", "entry '': needs a name first"},
  };
  for (const Case& c : cases) {
    auto mix = ParseMix(c.spec);
    ASSERT_FALSE(mix.ok()) << c.spec;
    EXPECT_EQ(mix.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(mix.status().message()), HasSubstr(c.error))
        << c.spec;
    EXPECT_THAT(std::string(mix.status().message()), HasSubstr("--mix: "));
  }
  // The name is the default tenant, sent as metadata: gRPC takes printable
  // ASCII alone there (it aborted the process on anything else), and the
  // server 128 bytes at most. The entry is quoted escaped.
  const std::string rule =
      "must be at most 128 bytes of printable ASCII (space to ~)";
  struct Tenant {
    std::string spec;
    std::string error;
  } tenants[] = {
      {"caf\xc3\xa9",
       "--mix: entry 'caf\\xc3\\xa9': the name " + rule + " (byte 4 is 0xc3)"},
      {"a:tenant=b\x01", "--mix: entry 'a:tenant=b\\x01': the tenant " + rule +
                             " (byte 2 is 0x01)"},
      {std::string(129, 'n'), "the name " + rule + " (got 129 bytes)"},
  };
  for (const Tenant& c : tenants) {
    auto mix = ParseMix(c.spec);
    ASSERT_FALSE(mix.ok()) << c.spec;
    EXPECT_THAT(std::string(mix.status().message()), HasSubstr(c.error));
  }
  EXPECT_TRUE(ParseMix(std::string(128, 'n')).ok());
  EXPECT_TRUE(ParseMix("a b:tenant=~ok~").ok());

  std::string many = "e0";
  for (int i = 1; i <= kMaxMixEntries; ++i) many += ",e" + std::to_string(i);
  EXPECT_THAT(std::string(ParseMix(many).status().message()),
              HasSubstr("at most 16 entries"));
}

}  // namespace
}  // namespace compute::client
