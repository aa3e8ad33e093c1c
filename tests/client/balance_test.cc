// Load balancing over an address list: round_robin (the default) spreads
// calls evenly over three servers; pick_first would pin one.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

class BalanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = "ipv4:";
    for (int i = 0; i < 3; ++i) {
      servers_.push_back(StartServer(LocalConfig(1, 64)));
      ASSERT_NE(servers_.back(), nullptr);
      absl::StrAppend(&target_, i == 0 ? "" : ",",
                      "127.0.0.1:", servers_.back()->port());
    }
  }
  uint64_t Accepted(int i) { return servers_[i]->pool().Stats().accepted; }

  std::vector<std::unique_ptr<service::ComputeServer>> servers_;
  std::string target_;
};

TEST_F(BalanceTest, RoundRobinGivesEachServerAboutAThird) {
  constexpr int kCalls = 600;
  CommandResult r = RunClient({"bench", "--target", target_, "--task", "fib",
                               "--n", "1", "--concurrency", "3", "--requests",
                               absl::StrCat(kCalls), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Object(ParseJson(r.out), "status").fields().at("OK").number_value(),
            kCalls);
  // Exactly a third once all three connections are up; the first few calls
  // may all go to whichever server connected first.
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(Accepted(i), kCalls / 4) << "server " << i;
    EXPECT_LE(Accepted(i), kCalls * 5 / 12) << "server " << i;
  }
  EXPECT_EQ(Accepted(0) + Accepted(1) + Accepted(2), uint64_t{kCalls});
}

TEST_F(BalanceTest, PickFirstPinsTheFirstAddress) {
  CommandResult r =
      RunClient({"bench", "--target", target_, "--lb", "pick_first", "--task",
                 "fib", "--n", "1", "--requests", "60", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Accepted(0), 60u);
  EXPECT_EQ(Accepted(1) + Accepted(2), 0u);
}

}  // namespace
}  // namespace compute::testing
