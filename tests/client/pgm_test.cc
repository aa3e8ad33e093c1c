#include "client/pgm.h"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/file.h"

namespace compute::client {
namespace {

using ::testing::HasSubstr;

TEST(PgmTest, RoundTrip) {
  GrayImage image;
  image.width = 3;
  image.height = 2;
  image.pixels = std::string("\x00\x10\x20\x30\x40\xff", 6);
  auto parsed = ParsePgm(EncodePgm(image));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->width, 3u);
  EXPECT_EQ(parsed->height, 2u);
  EXPECT_EQ(parsed->maxval, 255u);
  EXPECT_EQ(parsed->pixels, image.pixels);
}

TEST(PgmTest, CommentsAndWhitespaceInTheHeader) {
  auto parsed = ParsePgm(std::string("P5 # made by hand\n2\t1\n# max\n15\n") +
                         std::string("\x01\x0f", 2));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->width, 2u);
  EXPECT_EQ(parsed->maxval, 15u);
  EXPECT_EQ(parsed->pixels, std::string("\x01\x0f", 2));
}

// Netpbm's rules at the edges: leading zeros are no digits of the value
// (a 10-digit "0000000002" is 2; 10 digits of value are bad), a comment
// ends at a CR too, and a comment right after the maxval, where Netpbm's
// format and its library disagree on where the pixels start, is refused
// by name rather than read one byte off.
TEST(PgmTest, LeadingZerosCommentsAndTheirEdges) {
  auto parsed = ParsePgm(std::string("P5 0000000002 01 #c\r255\n") +
                         std::string("\n\x07", 2));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->width, 2u);
  EXPECT_EQ(parsed->height, 1u);
  EXPECT_EQ(parsed->pixels, std::string("\n\x07", 2));
  EXPECT_THAT(std::string(ParsePgm("P5 1000000000 1 255\n").status().message()),
              HasSubstr("width"));
  EXPECT_THAT(
      std::string(ParsePgm("P5 2 1 255# c\n\n\x07\x08").status().message()),
      HasSubstr("comment right after the maxval"));
}

TEST(PgmTest, BadImagesAreNamed) {
  EXPECT_THAT(std::string(ParsePgm("P2\n1 1\n255\n0").status().message()),
              HasSubstr("P5"));
  EXPECT_THAT(std::string(ParsePgm("P5\n0 1\n255\n").status().message()),
              HasSubstr("width"));
  EXPECT_THAT(std::string(ParsePgm("P5\n1 1\n65535\n").status().message()),
              HasSubstr("maxval"));
  EXPECT_THAT(std::string(ParsePgm("P5\n4 4\n255\nab").status().message()),
              HasSubstr("needs 16 bytes"));
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

// Large enough that ReadPgm takes part of the pixels with the header's
// block and the rest in its own read; pixels that differ by position, so a
// seam in the wrong place shows.
GrayImage Gradient(uint32_t width, uint32_t height, uint32_t maxval) {
  GrayImage image;
  image.width = width;
  image.height = height;
  image.maxval = maxval;
  image.pixels.resize(uint64_t{width} * height);
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<char>((i * 7 + i / 251) % (maxval + 1));
  }
  return image;
}

TEST(PgmTest, FilesRoundTripAcrossTheFirstBlock) {
  for (uint32_t height : {1u, 200u, 1000u}) {
    GrayImage image = Gradient(333, height, 200);
    std::string path = TempPath("gradient.pgm");
    ASSERT_TRUE(WritePgm(path, image).ok());
    auto read = ReadPgm(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->width, 333u);
    EXPECT_EQ(read->height, height);
    EXPECT_EQ(read->maxval, 200u);
    EXPECT_EQ(read->pixels, image.pixels) << "height " << height;
    auto header = ReadPgmHeader(path);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->maxval, 200u);
    EXPECT_EQ(header->pixel_bytes(), uint64_t{333} * height);
  }
}

TEST(PgmTest, WrittenToAStreamAsEncoded) {
  GrayImage image = Gradient(17, 5, 255);
  std::ostringstream out;
  WritePgm(out, image.width, image.height, image.maxval, image.pixels);
  EXPECT_EQ(out.str(), EncodePgm(image));
}

TEST(PgmTest, AFileShorterThanItsHeaderSaysIsNamed) {
  GrayImage image = Gradient(400, 400, 255);
  std::string path = TempPath("short.pgm");
  std::string bytes = EncodePgm(image);
  ASSERT_TRUE(WriteFile(path, bytes.substr(0, 100000)).ok());
  auto read = ReadPgm(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(read.status().message()),
            "cannot read " + path +
                ": PGM: 400x400 needs 160000 bytes of pixels, the file has " +
                std::to_string(100000 - PgmHeaderText(400, 400, 255).size()));
}

// The read end of a pipe as a path (/dev/fd/N), fed by a thread: an input
// with no size, as stdin or `<(command)`. The thread ends once all is
// written or the read end is closed (SIGPIPE blocked: the write fails).
class PipeInput {
 public:
  explicit PipeInput(std::string contents) {
    EXPECT_EQ(pipe(fds_), 0);
    writer_ = std::thread([fd = fds_[1], contents = std::move(contents)] {
      sigset_t pipe_signal;
      sigemptyset(&pipe_signal);
      sigaddset(&pipe_signal, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
      size_t done = 0;
      while (done < contents.size()) {
        ssize_t n = write(fd, contents.data() + done, contents.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      close(fd);
    });
  }
  ~PipeInput() {
    close(fds_[0]);
    writer_.join();
  }
  PipeInput(const PipeInput&) = delete;
  PipeInput& operator=(const PipeInput&) = delete;
  std::string path() const { return "/dev/fd/" + std::to_string(fds_[0]); }

 private:
  int fds_[2] = {-1, -1};
  std::thread writer_;
};

// A pipe's header cannot be checked against a size: one that promises more
// pixels than a blur takes is refused before any memory is taken for them
// (60000x60000 took 3.6 GB, or aborted on bad_alloc).
TEST(PgmTest, MorePixelsThanABlurTakesAreRefused) {
  for (const auto& [size, pixels] :
       {std::pair{"60000 60000", "3600000000"}, {"4097 4096", "16781312"}}) {
    PipeInput in(absl::StrCat("P5\n", size, "\n255\n"));
    auto read = ReadPgm(in.path());
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(read.status().message()),
              absl::StrCat("cannot read ", in.path(), ": PGM: ",
                           absl::StrReplaceAll(size, {{" ", "x"}}), " is ",
                           pixels, " pixels, over the 16777216 a blur takes"));
  }
  // As many as a blur takes, but not there.
  PipeInput in("P5\n4096 4096\n255\nabc");
  auto read = ReadPgm(in.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(std::string(read.status().message()),
            "cannot read " + in.path() +
                ": PGM: 4096x4096 needs 16777216 bytes of pixels, the file "
                "has 3");
}

// From a pipe the pixels are read as they come, in chunks: an image of
// several chunks arrives whole.
TEST(PgmTest, APipeReadsWhole) {
  GrayImage image = Gradient(1500, 1000, 255);
  PipeInput in(EncodePgm(image));
  auto read = ReadPgm(in.path());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->width, 1500u);
  EXPECT_EQ(read->height, 1000u);
  EXPECT_EQ(read->pixels, image.pixels);
}

}  // namespace
}  // namespace compute::client
