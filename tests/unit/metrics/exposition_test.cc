// The test parser itself: what it accepts and what it refuses.
#include "tests/unit/metrics/exposition.h"

#include <cmath>
#include <fstream>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace compute::metrics::testing {
namespace {

TEST(ExpositionTest, ParsesSamplesLabelsAndTypes) {
  auto e = ParseExposition(
      "# HELP a_total Help.\n"
      "# TYPE a_total counter\n"
      "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n"
      "b 1.5e-3 1700000000\n"
      "c_bucket{le=\"+Inf\"} +Inf\n"
      "\n");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->types["a_total"], "counter");
  ASSERT_EQ(e->samples.size(), 3u);
  EXPECT_EQ(e->Value("a_total", {{"x", "1"}, {"y", "q\"\\\n"}}), 3);
  EXPECT_FALSE(e->Value("a_total", {{"x", "1"}}).has_value())
      << "Value wants the exact label set";
  EXPECT_EQ(e->All("a_total", {{"x", "1"}}).size(), 1u);
  EXPECT_DOUBLE_EQ(*e->Value("b"), 0.0015);
  EXPECT_TRUE(std::isinf(*e->Value("c_bucket", {{"le", "+Inf"}})));
}

TEST(ExpositionTest, RefusesMalformedLines) {
  for (const char* bad : {"a{x=\"1\" 3\n", "a{x=1} 3\n", "a\n", "a 1 2 3\n",
                          "a{x=\"1\",x=\"2\"} 1\n", "{x=\"1\"} 1\n", "a x\n"}) {
    EXPECT_FALSE(ParseExposition(bad).ok()) << bad;
  }
}

// Prometheus fails the scrape ("invalid label value"), so must the tests.
TEST(ExpositionTest, RefusesALabelValueThatIsNotUtf8) {
  EXPECT_TRUE(
      ParseExposition("a{x=\"Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80\"} 1\n")
          .ok());
  for (const char* bad :
       {"a{x=\"bad\xff\xfe\"} 1\n", "a{x=\"\xc3\"} 1\n",
        "a{x=\"\xe2\x82\"} 1\n", "a{x=\"\xc0\xaf\"} 1\n",
        "a{x=\"\xed\xa0\x80\"} 1\n", "a{x=\"\xf4\x90\x80\x80\"} 1\n",
        "a{x=\"\x80\"} 1\n"}) {
    auto e = ParseExposition(bad);
    EXPECT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("not UTF-8"), std::string::npos)
        << e.status();
  }
}

// The ports handed to child servers: distinct, bindable, and outside the
// range the kernel takes ports from for outgoing connections and port 0
// (where that range leaves room).
TEST(FreeLoopbackPortTest, DistinctPortsOutsideTheEphemeralRange) {
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  const bool room = low > 11'024 || high <= 55'535;
  std::set<int> ports;
  for (int i = 0; i < 3; ++i) {
    const int port = FreeLoopbackPort();
    EXPECT_GT(port, 1024);
    if (room) {
      EXPECT_TRUE(port < low || port > high) << port;
    }
    ports.insert(port);
  }
  EXPECT_EQ(ports.size(), 3u);
}

}  // namespace
}  // namespace compute::metrics::testing
