// RetryBudget: retries are bounded by a window, not by the whole run.
#include "client/retry_budget.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace compute::client {
namespace {

// How many of `calls` first attempts, each refused and retried at once
// until the budget says no (up to `attempts` in all), got retries.
int RetriesInAnOutage(RetryBudget& budget, int calls, int attempts) {
  int retries = 0;
  for (int i = 0; i < calls; ++i) {
    budget.Sent();
    for (int a = 1; a < attempts && budget.TrySpend(); ++a) ++retries;
  }
  return retries;
}

TEST(RetryBudgetTest, AnOutageGetsTheShareOfItsCallsPlusTheCap) {
  RetryBudget budget(0.2, 10);
  // 100 calls refused everywhere, 5 attempts each: 400 retries unbounded.
  const int retries = RetriesInAnOutage(budget, 100, 5);
  EXPECT_LE(retries, 10 + 20);
  EXPECT_GE(retries, 10 + 19);  // the share is earned, not lost
}

TEST(RetryBudgetTest, AHealthyRunDoesNotBankRetriesForALaterOutage) {
  RetryBudget budget(0.2, 10);
  for (int i = 0; i < 10000; ++i) budget.Sent();  // no call failed
  // A count from the start of the run would allow 10 + 0.2 * 10,100 =
  // 2,030 retries now, every one of the outage's 400.
  EXPECT_LE(RetriesInAnOutage(budget, 100, 5), 10 + 20);
}

TEST(RetryBudgetTest, RetriesComeBackAsCallsAreSent) {
  RetryBudget budget(0.5, 2);
  EXPECT_TRUE(budget.TrySpend());
  EXPECT_TRUE(budget.TrySpend());
  EXPECT_FALSE(budget.TrySpend());
  budget.Sent();
  EXPECT_FALSE(budget.TrySpend()) << "half a retry is not one";
  budget.Sent();
  EXPECT_TRUE(budget.TrySpend());
}

// A replica that dies holding more calls than the cap gets every one of
// them back at once: each may be retried, as long as that many were in
// flight while the bucket filled.
TEST(RetryBudgetTest, TheBankGrowsToTheCallsInFlight) {
  RetryBudget budget(0.2, 10);
  for (int i = 0; i < 200; ++i) budget.Sent(/*in_flight=*/30);
  int retries = 0;
  while (budget.TrySpend()) ++retries;
  EXPECT_EQ(retries, 30);
}

// When fewer calls are in flight, the bank shrinks back with the next
// attempt: what a busy phase earned is not spent on a quiet one's outage.
TEST(RetryBudgetTest, TheBankShrinksWhenFewerCallsAreInFlight) {
  RetryBudget budget(0.2, 10);
  for (int i = 0; i < 200; ++i) budget.Sent(/*in_flight=*/30);
  budget.Sent(/*in_flight=*/2);
  int retries = 0;
  while (budget.TrySpend()) ++retries;
  EXPECT_EQ(retries, 10);
}

// Spent from many threads at once (TSan checks the locking), never more
// than it holds.
TEST(RetryBudgetTest, ConcurrentSpendsNeverExceedTheBudget) {
  RetryBudget budget(0.25, 100);
  std::vector<std::thread> threads;
  std::vector<int> spent(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&budget, &spent, t] {
      for (int i = 0; i < 1000; ++i) {
        budget.Sent();
        if (budget.TrySpend()) ++spent[t];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(spent[0] + spent[1] + spent[2] + spent[3], 100 + 4000 / 4);
  EXPECT_GE(spent[0] + spent[1] + spent[2] + spent[3], 4000 / 4);
}

}  // namespace
}  // namespace compute::client
