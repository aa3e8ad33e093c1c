#include "server/base/file.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  return (fs::path(::testing::TempDir()) / name).string();
}

TEST(FileTest, AFileReadsWhole) {
  const std::string path = TempPath("file_test.txt");
  const std::string text(200000, 'x');  // more than one read's first guess
  ASSERT_TRUE(WriteFile(path, text).ok());
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);

  ASSERT_TRUE(WriteFile(path, "").ok());
  read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

// A directory read as a stream is empty, with no error: `--ca /tmp` was an
// empty CA (the system's roots trusted instead), `run sha256 --file /tmp`
// hashed nothing.
TEST(FileTest, ADirectoryIsAnError) {
  const std::string dir = ::testing::TempDir();
  absl::StatusOr<std::string> read = ReadFile(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(), "cannot read " + dir + ": Is a directory");
}

TEST(FileTest, AMissingFileIsNotFound) {
  const std::string path = TempPath("no-such-file");
  absl::StatusOr<std::string> read = ReadFile(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(),
            "cannot read " + path + ": No such file or directory");
}

// Pipes have no size (stdin, /dev/stdin, `<(command)`): read to their end.
TEST(FileTest, APipeReadsToItsEnd) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const std::string text = "through a pipe";
  ASSERT_EQ(write(fds[1], text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  close(fds[1]);
  absl::StatusOr<std::string> read =
      ReadFile("/dev/fd/" + std::to_string(fds[0]));
  close(fds[0]);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);
}

TEST(FileTest, AtMostMaxBytesAreRead) {
  absl::StatusOr<std::string> zeros = ReadFile("/dev/zero", 100001);
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  EXPECT_EQ(*zeros, std::string(100001, '\0'));

  const std::string path = TempPath("file_test_short.txt");
  ASSERT_TRUE(WriteFile(path, "abc").ok());
  EXPECT_EQ(ReadFile(path, 2).value_or("?"), "ab");
  EXPECT_EQ(ReadFile(path, 3).value_or("?"), "abc");
  EXPECT_EQ(ReadFile(path, 4).value_or("?"), "abc");
}

}  // namespace
}  // namespace compute
