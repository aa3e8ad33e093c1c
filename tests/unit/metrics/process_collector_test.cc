#include "server/metrics/process_collector.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

using testing::Exposition;

Exposition Parse(const ProcessCollector& collector) {
  auto e = testing::SerializeAndParse(collector.Collect());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Exposition();
}

class FakeProc {
 public:
  FakeProc() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "fakeprocXXXXXX").string();
    root_ = mkdtemp(tmpl.data());
    std::filesystem::create_directories(root_ / "self" / "fd");
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  void Write(const std::string& relative, const std::string& text) {
    std::ofstream(root_ / relative) << text;
  }
  ProcessCollector::Source Source() const {
    ProcessCollector::Source s;
    s.self = (root_ / "self").string();
    s.stat = (root_ / "stat").string();
    s.ticks_per_second = 100;
    s.page_size = 4096;
    return s;
  }

 private:
  std::filesystem::path root_;
};

TEST(ProcessCollectorTest, ReadsAFakeProc) {
  FakeProc proc;
  // Fields from 1: pid (comm) state ppid ... utime(14)=250 stime(15)=50
  // num_threads(20)=17 starttime(22)=12345 vsize(23)=1000000 rss(24)=300.
  // The command name holds spaces and parentheses.
  proc.Write("self/stat",
             "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
             "17 0 12345 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 "
             "0 0 0 17 1 0 0 0 0 0\n");
  proc.Write("self/limits",
             "Limit                     Soft Limit           Hard Limit    "
             "       Units     \n"
             "Max cpu time              unlimited            unlimited     "
             "       seconds   \n"
             "Max open files            1024                 524288        "
             "       files     \n");
  proc.Write("stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 9\n");
  for (int i = 0; i < 3; ++i) proc.Write(absl::StrCat("self/fd/", i), "");

  Exposition e = Parse(ProcessCollector(proc.Source()));
  EXPECT_EQ(e.types["process_cpu_seconds_total"], "counter");
  EXPECT_DOUBLE_EQ(*e.Value("process_cpu_seconds_total"), 3.0);
  EXPECT_EQ(e.Value("process_threads"), 17);
  EXPECT_EQ(e.Value("process_virtual_memory_bytes"), 1000000);
  EXPECT_EQ(e.Value("process_resident_memory_bytes"), 300 * 4096);
  EXPECT_EQ(e.Value("process_open_fds"), 3);
  EXPECT_EQ(e.Value("process_max_fds"), 1024);
  EXPECT_DOUBLE_EQ(*e.Value("process_start_time_seconds"), 1700000000 + 123.45);
  for (std::string gauge : {"process_threads", "process_virtual_memory_bytes",
                            "process_resident_memory_bytes", "process_open_fds",
                            "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_EQ(e.types[gauge], "gauge") << gauge;
  }
  EXPECT_EQ(e.samples.size(), 7u);
}

TEST(ProcessCollectorTest, MissingFilesDropOnlyTheirSeries) {
  FakeProc proc;
  proc.Write("self/limits", "Max open files  4096  4096  files\n");
  Exposition e = Parse(ProcessCollector(proc.Source()));
  EXPECT_EQ(e.Value("process_max_fds"), 4096);
  EXPECT_EQ(e.Value("process_open_fds"), 0);
  EXPECT_FALSE(e.Value("process_cpu_seconds_total").has_value());
  EXPECT_FALSE(e.Value("process_start_time_seconds").has_value());
  EXPECT_EQ(e.samples.size(), 2u);
}

// The kernel's boot time follows the wall clock (NTP steps and slews move
// it by a second or more): the start time is the one first read, or every
// move would read as a restart to the ComputeRestarting alert.
TEST(ProcessCollectorTest, TheStartTimeStaysWhenTheBootTimeMoves) {
  FakeProc proc;
  // starttime(22) = 500 ticks after boot.
  proc.Write("self/stat",
             "7 (x) S 1 7 7 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 500 1 1\n");
  const ProcessCollector collector(proc.Source());
  // No boot time to read yet: no start time, and nothing is kept.
  EXPECT_FALSE(Parse(collector).Value("process_start_time_seconds"));
  proc.Write("stat", "btime 1700000000\n");
  EXPECT_EQ(Parse(collector).Value("process_start_time_seconds"),
            1700000000 + 5);
  for (const char* moved : {"btime 1700000001\n", "btime 1699999999\n"}) {
    proc.Write("stat", moved);
    EXPECT_EQ(Parse(collector).Value("process_start_time_seconds"),
              1700000000 + 5)
        << moved;
  }
}

TEST(ProcessCollectorTest, ReadsThisProcess) {
  // At least 50 ms of CPU time, so that the count cannot be 0 however fast
  // the machine: the kernel counts user and system time each in whole ticks
  // of 10 ms, so at least 30 ms of it shows.
  const std::clock_t cpu_start = std::clock();
  volatile uint64_t spin = 0;
  while (std::clock() - cpu_start < CLOCKS_PER_SEC / 20) spin = spin + 1;
  Exposition e = Parse(ProcessCollector());
  EXPECT_EQ(e.samples.size(), 7u);
  EXPECT_GE(*e.Value("process_threads"), 1);
  EXPECT_GT(*e.Value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(*e.Value("process_virtual_memory_bytes"),
            *e.Value("process_resident_memory_bytes"));
  EXPECT_GE(*e.Value("process_open_fds"), 3);
  EXPECT_GE(*e.Value("process_max_fds"), *e.Value("process_open_fds"));
  EXPECT_GE(*e.Value("process_cpu_seconds_total"), 0.03);
  double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  double start = *e.Value("process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600) << "this test started within the hour";
}

}  // namespace
}  // namespace compute::metrics
