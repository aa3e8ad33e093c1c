#include "client/flags.h"

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Bound {
  int n = 3;
  bool json = false;
  std::string target = "localhost:50051";
  absl::Duration time = absl::Seconds(10);
  double rate = 0;
};

FlagSet Make(Bound* b) {
  FlagSet flags("test");
  flags.Add("n", &b->n, "a number");
  flags.Add("json", &b->json, "json");
  flags.Add("target", &b->target, "where");
  flags.Add("time", &b->time, "how long");
  flags.Add("rate", &b->rate, "how fast");
  return flags;
}

TEST(FlagSetTest, ParsesEveryForm) {
  Bound b;
  FlagSet flags = Make(&b);
  std::vector<std::string> positional;
  ASSERT_TRUE(flags
                  .Parse({"fib", "--n", "40", "-json", "--target=x:1", "--time",
                          "250ms", "extra", "--rate=2.5", "--", "--n"},
                         &positional)
                  .ok());
  EXPECT_EQ(b.n, 40);
  EXPECT_TRUE(b.json);
  EXPECT_EQ(b.target, "x:1");
  EXPECT_EQ(b.time, absl::Milliseconds(250));
  EXPECT_EQ(b.rate, 2.5);
  EXPECT_THAT(positional, ElementsAre("fib", "extra", "--n"));
  EXPECT_TRUE(flags.Given("time"));
  EXPECT_FALSE(flags.Given("missing"));
}

// batch's arguments may be negative numbers and durations: values passed
// on (to be refused with their reason), not unknown flags.
TEST(FlagSetTest, NegativeValuesArePositional) {
  Bound b;
  FlagSet flags = Make(&b);
  std::vector<std::string> positional;
  ASSERT_TRUE(
      flags.Parse({"spin", "-1", "-1s", "-.5s", "-inf", "-Inf"}, &positional)
          .ok());
  EXPECT_THAT(positional,
              ElementsAre("spin", "-1", "-1s", "-.5s", "-inf", "-Inf"));
  EXPECT_FALSE(flags.Parse({"-info"}, &positional).ok()) << "a flag's name";
}

TEST(FlagSetTest, NegatedBoolAndHelp) {
  Bound b;
  b.json = true;
  FlagSet flags = Make(&b);
  std::vector<std::string> positional;
  ASSERT_TRUE(flags.Parse({"--nojson", "--help"}, &positional).ok());
  EXPECT_FALSE(b.json);
  EXPECT_TRUE(flags.help());
  EXPECT_THAT(flags.Usage(), HasSubstr("--time  how long (default 10s)"));
  // The negated form takes no value (it was "unknown flag --nojson").
  EXPECT_EQ(flags.Parse({"--nojson=false"}, &positional).message(),
            "--nojson takes no value (write --json=true or --json=false)");
}

// A flag whose empty value would downgrade something (a TLS file: no TLS,
// or the system's roots) refuses it, in either form; others take it.
TEST(FlagSetTest, AnEmptyValueIsRefusedWhereItWouldMeanNotGiven) {
  Bound b;
  FlagSet flags = Make(&b);
  flags.RefuseEmpty("target", "give host:port");
  std::vector<std::string> positional;
  absl::Status joined = flags.Parse({"--target="}, &positional);
  EXPECT_EQ(joined.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(joined.message(), "--target is empty: give host:port");
  absl::Status separate = flags.Parse({"--target", ""}, &positional);
  EXPECT_EQ(separate.message(), "--target is empty: give host:port");
  EXPECT_EQ(b.target, "localhost:50051") << "left as it was";
  ASSERT_TRUE(flags.Parse({"--target", "x:1"}, &positional).ok());
  EXPECT_EQ(b.target, "x:1");
}

TEST(FlagSetTest, ErrorsAreOneLineNamingTheFlag) {
  Bound b;
  std::vector<std::string> positional;
  for (auto [args, want] : {std::pair<std::vector<std::string>, std::string>{
                                {"--bogus"}, "--bogus"},
                            {{"--n", "x"}, "--n"},
                            {{"--n"}, "--n needs a value"},
                            {{"--time=5"}, "duration"},
                            {{"--json=maybe"}, "--json"}}) {
    FlagSet flags = Make(&b);
    absl::Status s = flags.Parse(args, &positional);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << want;
    EXPECT_THAT(std::string(s.message()), HasSubstr(want));
    EXPECT_EQ(std::string(s.message()).find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace compute::client
