#include "server/base/file.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
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

// A write that fails (here past a file size limit, as on a full disk)
// leaves the file as it was, and nothing beside it: until 2026-12-06 it was
// truncated and half written (`run blur --out`: a PGM header over part of
// its pixels, the old image gone).
TEST(FileTest, AFailedWriteLeavesTheOldFile) {
  const std::string path = TempPath("file_test_old.txt");
  ASSERT_TRUE(WriteFile(path, "old").ok());
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 1000;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status failed = WriteFile(path, {"new ", std::string(4000, 'x')});
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, saved_handler);
  EXPECT_THAT(std::string(failed.message()),
              ::testing::StartsWith("cannot write " + path + ": "));
  EXPECT_EQ(ReadFile(path).value_or("?"), "old");
  int beside = 0;
  for (const auto& entry : fs::directory_iterator(::testing::TempDir())) {
    beside +=
        entry.path().filename().string().starts_with("file_test_old.txt.");
  }
  EXPECT_EQ(beside, 0) << "a temporary file was left";
  // One that succeeds replaces it whole, with its permissions.
  ASSERT_TRUE(WriteFile(path, "new").ok());
  EXPECT_EQ(ReadFile(path).value_or("?"), "new");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

// What is not a regular file is written in place (a rename would replace
// it): a character device, and a symbolic link's target.
TEST(FileTest, DevicesAndLinksAreWrittenInPlace) {
  EXPECT_TRUE(WriteFile("/dev/null", "abc").ok());
  const std::string target = TempPath("file_test_target.txt");
  const std::string link = TempPath("file_test_link.txt");
  ASSERT_TRUE(WriteFile(target, "old").ok());
  fs::remove(link);
  fs::create_symlink(target, link);
  ASSERT_TRUE(WriteFile(link, "new").ok());
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(ReadFile(target).value_or("?"), "new");
  // A link to nothing yet makes its target, as an open for writing does.
  fs::remove(target);
  ASSERT_TRUE(WriteFile(link, "made").ok());
  EXPECT_EQ(ReadFile(target).value_or("?"), "made");
}

// What WriteFile would refuse, CheckWritable refuses first (a caller checks
// before the work whose result it writes).
TEST(FileTest, CheckWritableRefusesWhatCannotBeWritten) {
  const std::string file = TempPath("file_test_check.txt");
  ASSERT_TRUE(WriteFile(file, "x").ok());
  EXPECT_TRUE(CheckWritable(file).ok());
  EXPECT_TRUE(CheckWritable(TempPath("file_test_new.txt")).ok());
  EXPECT_TRUE(CheckWritable("/dev/null").ok());
  const std::string link = TempPath("file_test_dir_link");
  fs::remove(link);
  fs::create_directory_symlink(::testing::TempDir(), link);
  for (const std::string& bad : {::testing::TempDir(), link, file + "/",
                                 file + "/x", TempPath("no-such-dir/x.pgm")}) {
    absl::Status checked = CheckWritable(bad);
    EXPECT_FALSE(checked.ok()) << bad;
    EXPECT_FALSE(WriteFile(bad, "x").ok()) << bad;
    EXPECT_THAT(std::string(checked.message()),
                ::testing::StartsWith("cannot write " + bad + ": "));
  }
}

}  // namespace
}  // namespace compute
