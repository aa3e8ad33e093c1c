// LogSink: lines reach the fd whole and in order; a reader that stops
// reading (its pipe full) never blocks a thread that logs, and the lines it
// costs are counted and said; an error line waits until it is written,
// unless the writer is stalled.
#include "server/log_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"

namespace compute {
namespace {

std::string Notice(uint64_t n) { return absl::StrCat("dropped ", n, "\n"); }

// A pipe whose write end the sink writes; 4 KiB, so that a reader that
// does not read stalls the writer soon.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    EXPECT_GE(fcntl(write_fd_, F_SETPIPE_SZ, 4096), 4096);
  }
  ~Pipe() {
    if (reader_.joinable()) {
      CloseWriteEnd();
      reader_.join();
    }
    if (write_fd_ >= 0) close(write_fd_);
    close(read_fd_);
  }
  int write_fd() const { return write_fd_; }
  // Fills the pipe to the last byte, as a reader that stopped long ago
  // leaves it: every write(2) from now on blocks until StartReading.
  // Returns the bytes written ('p's), which the reader will read first.
  size_t Fill() {
    const int flags = fcntl(write_fd_, F_GETFL);
    fcntl(write_fd_, F_SETFL, flags | O_NONBLOCK);
    size_t filled = 0;
    const std::string chunk(256, 'p');
    for (size_t size = chunk.size(); size > 0;) {
      const ssize_t n = write(write_fd_, chunk.data(), size);
      if (n > 0) {
        filled += static_cast<size_t>(n);
      } else {
        size /= 2;  // the last bytes, down to one
      }
    }
    fcntl(write_fd_, F_SETFL, flags);
    return filled;
  }

  // What the pipe holds now (never waits).
  std::string ReadAvailable() {
    std::string out;
    char buf[4096];
    pollfd p{read_fd_, POLLIN, 0};
    while (poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) {
      const ssize_t n = read(read_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // From now on a thread reads everything, until the write end closes
  // (again: nothing).
  void StartReading() {
    if (reader_.joinable()) return;
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n;
      while ((n = read(read_fd_, buf, sizeof(buf))) > 0) {
        MutexLock lock(&mu_);
        read_.append(buf, static_cast<size_t>(n));
      }
    });
  }
  // After the sink is gone: everything the reader read.
  std::string CloseAndCollect() {
    CloseWriteEnd();
    if (reader_.joinable()) reader_.join();
    MutexLock lock(&mu_);
    return read_;
  }

 private:
  void CloseWriteEnd() {
    if (write_fd_ >= 0) close(write_fd_);
    write_fd_ = -1;
  }
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread reader_;
  Mutex mu_;
  std::string read_ ABSL_GUARDED_BY(mu_);
};

std::string Line(int i) {
  // 100 bytes with the newline.
  std::string line = absl::StrCat("line ", i, " ");
  line.resize(99, 'x');
  return line + "\n";
}

TEST(LogSinkTest, BeforeStartTheCallerWrites) {
  Pipe pipe;
  LogSink sink(pipe.write_fd(), 1 << 20, &Notice);
  sink.Write(Line(1));
  EXPECT_EQ(pipe.ReadAvailable(), Line(1));  // already there
  EXPECT_TRUE(sink.Flush(absl::Seconds(1)));
}

TEST(LogSinkTest, LinesArriveWholeAndInOrder) {
  Pipe pipe;
  pipe.StartReading();
  std::string expected;
  {
    LogSink sink(pipe.write_fd(), 1 << 20, &Notice);
    ASSERT_TRUE(sink.Start().ok());
    for (int i = 0; i < 2000; ++i) {
      sink.Write(Line(i));
      expected += Line(i);
    }
    EXPECT_TRUE(sink.Flush(absl::Seconds(60)));
    EXPECT_EQ(sink.dropped(), 0u);
  }
  EXPECT_EQ(pipe.CloseAndCollect(), expected);
}

// Before: each write(2) of a line blocked once the pipe was full, and with
// it the thread that logged (gRPC's, main's drain).
TEST(LogSinkTest, AReaderThatStopsReadingBlocksNoWriterAndTheLossIsSaid) {
  Pipe pipe;  // nobody reads it yet, and it is full: write(2) blocks
  const size_t filled = pipe.Fill();
  auto sink = std::make_unique<LogSink>(pipe.write_fd(), 8192, &Notice);
  // However the test ends, the sink's writer can finish before it goes.
  absl::Cleanup read_before_the_sink_goes = [&] { pipe.StartReading(); };
  ASSERT_TRUE(sink->Start().ok());
  constexpr int kLines = 1000;  // 100 KB: 8 times what pipe and sink hold
  Notification wrote_all;
  std::thread logger([&] {
    for (int i = 0; i < kLines; ++i) sink->Write(Line(i));
    wrote_all.Notify();
  });
  const bool returned =
      wrote_all.WaitForNotificationWithTimeout(absl::Seconds(60));
  pipe.StartReading();  // unblocks a logger that did block, to end the test
  logger.join();
  ASSERT_TRUE(returned) << "a logging thread blocked on the full pipe";
  const uint64_t dropped = sink->dropped();
  // The buffer (8 KiB) and the batch the writer is blocked on (8 KiB at
  // most) hold ~160 of the 1000 lines.
  EXPECT_GE(dropped, 800u);
  // The last lines were dropped with no line after them: Flush says so.
  EXPECT_TRUE(sink->Flush(absl::Seconds(60)));
  sink.reset();
  std::string out = pipe.CloseAndCollect();
  ASSERT_EQ(out.substr(0, filled), std::string(filled, 'p'));
  out.erase(0, filled);

  // Whole lines, in order; a notice after each spell of drops, before the
  // next line written (or at Flush), with that spell's count; the counts
  // add up.
  std::vector<absl::string_view> lines =
      absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u);
  int last = -1;
  uint64_t said = 0;
  size_t written = 0;
  for (absl::string_view line : lines) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
    ASSERT_GE(words.size(), 2u) << line;
    int n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(words[1], &n)) << line;
    if (words[0] == "dropped") {
      said += static_cast<uint64_t>(n);
      continue;
    }
    ASSERT_EQ(line.size(), 99u) << line;
    EXPECT_GT(n, last);
    last = n;
    ++written;
  }
  EXPECT_EQ(said, dropped);
  EXPECT_EQ(written + dropped, static_cast<size_t>(kLines));
  // When the last lines were dropped, the notice comes last (from Flush).
  // (Usually so; but a writer thread that took its first batch late, as
  // under TSan, empties the buffer for the last lines, after the drops.)
  if (last < kLines - 1) {
    EXPECT_TRUE(absl::StartsWith(lines.back(), "dropped ")) << lines.back();
  }
}

TEST(LogSinkTest, AnErrorLineWaitsUntilWritten) {
  Pipe pipe;
  LogSink sink(pipe.write_fd(), 1 << 20, &Notice);
  ASSERT_TRUE(sink.Start().ok());
  sink.Write(Line(1), absl::Seconds(60));
  EXPECT_EQ(pipe.ReadAvailable(), Line(1));  // in the pipe on return
  EXPECT_FALSE(sink.stalled());
}

// With the reader stalled, the first error line's wait runs out; the next
// ones do not wait (a client that provokes gRPC's error lines would
// otherwise hold a gRPC thread for every one); the first line written
// ends the stall.
TEST(LogSinkTest, ErrorLinesDoNotWaitOnAStalledWriter) {
  Pipe pipe;
  const size_t filled = pipe.Fill();  // the writer's first write blocks
  auto sink = std::make_unique<LogSink>(pipe.write_fd(), 1 << 20, &Notice);
  absl::Cleanup read_before_the_sink_goes = [&] { pipe.StartReading(); };
  ASSERT_TRUE(sink->Start().ok());
  sink->Write(Line(0), absl::Milliseconds(50));  // the wait runs out
  ASSERT_TRUE(sink->stalled());
  Notification returned;
  std::thread logger([&] {
    sink->Write(Line(1), absl::Hours(1));
    returned.Notify();
  });
  const bool did_return =
      returned.WaitForNotificationWithTimeout(absl::Seconds(60));
  pipe.StartReading();
  logger.join();
  EXPECT_TRUE(did_return) << "an error line waited on a stalled writer";
  EXPECT_TRUE(sink->Flush(absl::Seconds(60)));
  EXPECT_FALSE(sink->stalled());  // the first line written ends the stall
  sink.reset();
  EXPECT_EQ(pipe.CloseAndCollect(),
            std::string(filled, 'p') + Line(0) + Line(1));
}

}  // namespace
}  // namespace compute
