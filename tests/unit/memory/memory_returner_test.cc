// MemoryReturner: when the allocator's freed pages go back to the system.
// Each rule is driven tick by tick with made-up times and hooks; the last
// test runs the returner's own thread.
#include "server/memory_returner.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"

namespace compute {
namespace {

using Action = MemoryReturner::Action;

constexpr int64_t kMiB = int64_t{1} << 20;

// Hooks over plain fields the test sets between ticks.
struct FakeServer {
  int64_t kept = 0;
  uint64_t events = 0;
  bool idle = true;
  int returns = 0;
  std::vector<Action> told;  // what the `returned` hook heard

  MemoryReturner::Hooks Hooks() {
    return {[this] { return kept; },
            [this] {
              ++returns;
              kept = 0;
            },
            [this] {
              return MemoryReturner::Activity{events, idle};
            },
            [this](Action action) { told.push_back(action); }};
  }
};

MemoryReturner::Options TestOptions() {
  MemoryReturner::Options options;
  options.interval = absl::Milliseconds(250);
  options.quiet = absl::Seconds(1);
  options.cap_bytes = 128 * kMiB;
  options.min_bytes = 1 * kMiB;
  return options;
}

const absl::Time kStart = absl::FromUnixSeconds(1000);

absl::Time At(int ms) { return kStart + absl::Milliseconds(ms); }

TEST(MemoryReturnerTest, ReturnsAtOnceWhatPassesTheCapEvenWhileBusy) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.idle = false;
  server.kept = 128 * kMiB + 1;
  EXPECT_EQ(returner.Tick(At(0)), Action::kOverCap);
  EXPECT_EQ(server.returns, 1);
  EXPECT_EQ(server.kept, 0);
  EXPECT_EQ(server.told, std::vector<Action>{Action::kOverCap});
}

TEST(MemoryReturnerTest, KeepsWhatIsUnderTheCapWhileTasksComeAndGo) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.kept = 128 * kMiB;  // at the cap, not past it
  for (int ms = 0; ms <= 10000; ms += 250) {
    ++server.events;  // a task came or went since the last check
    EXPECT_EQ(returner.Tick(At(ms)), Action::kNone) << "at " << ms << " ms";
  }
  EXPECT_EQ(server.returns, 0);
}

TEST(MemoryReturnerTest, ReturnsOnceAfterASecondOfIdlenessThenOncePerSpell) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.kept = 40 * kMiB;
  EXPECT_EQ(returner.Tick(At(0)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(500)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(999)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(1000)), Action::kQuiet);
  EXPECT_EQ(server.returns, 1);

  // Still idle: what is freed meanwhile waits for the next spell (or the
  // cap), so an idle server does not walk its arenas four times a second.
  server.kept = 2 * kMiB;
  EXPECT_EQ(returner.Tick(At(1250)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(5000)), Action::kNone);
  EXPECT_EQ(server.returns, 1);

  // Work, then a new idle spell: returned again a second after it.
  ++server.events;
  server.kept = 40 * kMiB;
  EXPECT_EQ(returner.Tick(At(5250)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(6000)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(6250)), Action::kQuiet);
  EXPECT_EQ(server.returns, 2);
  EXPECT_EQ(server.told, (std::vector<Action>{Action::kQuiet, Action::kQuiet}));
}

TEST(MemoryReturnerTest, NotIdleWhileSomethingIsQueuedRunningOrHeld) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.kept = 40 * kMiB;
  server.idle = false;  // e.g. one long task running, no new events
  for (int ms = 0; ms <= 5000; ms += 250) {
    EXPECT_EQ(returner.Tick(At(ms)), Action::kNone) << "at " << ms << " ms";
  }
  server.idle = true;  // it finished; its event count did not move
  EXPECT_EQ(returner.Tick(At(5250)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(6250)), Action::kQuiet);
}

TEST(MemoryReturnerTest, LessThanTheMinimumIsNotWorthAReturn) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.kept = 1 * kMiB - 1;
  EXPECT_EQ(returner.Tick(At(0)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(2000)), Action::kNone);
  EXPECT_EQ(server.returns, 0);
}

TEST(MemoryReturnerTest, AnAllocatorThatCannotSayIsNeverAsked) {
  FakeServer server;
  MemoryReturner returner(server.Hooks(), TestOptions());
  server.kept = -1;
  EXPECT_EQ(returner.Tick(At(0)), Action::kNone);
  EXPECT_EQ(returner.Tick(At(5000)), Action::kNone);
  EXPECT_EQ(server.returns, 0);
  EXPECT_TRUE(server.told.empty());
}

// The thread: it checks on its own, and the destructor stops it.
TEST(MemoryReturnerTest, ItsThreadChecksUntilDestroyed) {
  std::atomic<int> returns{0};
  Notification returned;
  MemoryReturner::Options options = TestOptions();
  options.interval = absl::Milliseconds(1);
  {
    MemoryReturner returner(
        {[] { return 256 * kMiB; },  // always past the cap
         [&] { returns.fetch_add(1); },
         [] {
           return MemoryReturner::Activity{0, false};
         },
         [&](Action action) {
           if (action == Action::kOverCap && !returned.HasBeenNotified()) {
             returned.Notify();
           }
         }},
        options);
    ASSERT_TRUE(returner.Start().ok());
    ASSERT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(30)));
  }
  // Joined by the destructor (else std::thread's would have terminated).
  EXPECT_GE(returns.load(), 1);
}

// A thread the system refuses (pids.max, RLIMIT_NPROC) is an error the
// server logs and serves on without, not an exception: before, start-up
// ended in std::terminate (exit 134) with its port already open.
TEST(MemoryReturnerTest, AThreadTheSystemRefusesIsAnErrorNotACrash) {
  FakeServer server;
  MemoryReturner::Options options = TestOptions();
  options.start_thread = [](std::function<void()>) -> std::thread {
    throw std::system_error(EAGAIN, std::generic_category(), "pthread_create");
  };
  MemoryReturner returner(server.Hooks(), options);
  absl::Status started = returner.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(started.message().find("memory returner"), std::string::npos);
  server.kept = 256 * kMiB;  // and it still works when ticked by hand
  EXPECT_EQ(returner.Tick(At(0)), Action::kOverCap);
}

}  // namespace
}  // namespace compute
