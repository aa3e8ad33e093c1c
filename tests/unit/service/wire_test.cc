#include "server/service/wire.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace compute::service {
namespace {

using compute::v1::RunRequest;
using compute::v1::RunResponse;

grpc::ByteBuffer Bytes(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

RunResponse Blur(size_t pixels) {
  RunResponse r;
  r.mutable_blur()->set_width(static_cast<uint32_t>(pixels));
  r.mutable_blur()->set_height(1);
  std::string p(pixels, '\0');
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(i * 7);
  r.mutable_blur()->set_pixels(p);
  r.mutable_queue_time()->set_nanos(1234);
  r.mutable_run_time()->set_seconds(2);
  r.set_worker(3);
  return r;
}

TEST(WireTest, ParsesARequestAndFreesItsBytes) {
  RunRequest sent;
  sent.mutable_sha256()->set_data(std::string(100000, 'x'));
  grpc::ByteBuffer bytes = Bytes(sent.SerializeAsString());
  RunRequest got;
  ASSERT_TRUE(ParseRunRequest(bytes, &got).ok());
  EXPECT_EQ(got.sha256().data(), sent.sha256().data());
  EXPECT_EQ(bytes.Length(), 0u);
}

// gRPC hands a large request over in many slices, cut anywhere: inside a
// tag, a length, a field. Every cut must parse to the same request (the
// parser reads across slices and backs up into one at the end).
TEST(WireTest, ParsesARequestCutIntoSlicesAnywhere) {
  RunRequest sent;
  sent.mutable_blur()->set_width(300);
  sent.mutable_blur()->set_height(1);
  std::string pixels(300, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i);
  sent.mutable_blur()->set_pixels(pixels);
  sent.mutable_blur()->set_radius(2);
  const std::string wire = sent.SerializeAsString();
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{16},
                     size_t{17}, size_t{100}, wire.size() - 1}) {
    std::vector<grpc::Slice> slices;
    for (size_t at = 0; at < wire.size(); at += cut) {
      slices.emplace_back(wire.substr(at, cut));
      slices.emplace_back();  // empty slices happen too
    }
    grpc::ByteBuffer bytes(slices.data(), slices.size());
    RunRequest got;
    ASSERT_TRUE(ParseRunRequest(bytes, &got).ok()) << "cut " << cut;
    EXPECT_EQ(got.SerializeAsString(), wire) << "cut " << cut;
    EXPECT_EQ(bytes.Length(), 0u);
  }
}

TEST(WireTest, NotARequestIsInvalidArgumentNamingTheSize) {
  grpc::ByteBuffer bytes = Bytes(std::string("\x0a\x64\x08\x01", 4));
  RunRequest got;
  absl::Status status = ParseRunRequest(bytes, &got);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "the request is not a compute.v1.RunRequest (4 bytes that do not "
            "parse as one)");
  EXPECT_EQ(got.task_case(), RunRequest::TASK_NOT_SET);

  grpc::ByteBuffer none;  // no message at all
  status = ParseRunRequest(none, &got);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "no request message: the stream ended before a whole message");
}

TEST(WireTest, AnEmptyMessageParsesAsARequestWithoutATask) {
  grpc::ByteBuffer bytes = Bytes("");
  RunRequest got;
  EXPECT_TRUE(ParseRunRequest(bytes, &got).ok());
  EXPECT_EQ(got.task_case(), RunRequest::TASK_NOT_SET);
}

// Byte for byte what protobuf writes, around the zero-copy threshold and
// for results without pixels.
TEST(WireTest, SerializesAsProtobufDoes) {
  std::vector<RunResponse> responses;
  for (size_t n :
       {size_t{0}, size_t{1}, kZeroCopyMinBytes - 1, kZeroCopyMinBytes,
        kZeroCopyMinBytes + 1, size_t{16} << 20}) {
    responses.push_back(Blur(n));
  }
  RunResponse fib;
  fib.mutable_fib()->set_value(55);
  fib.set_worker(1);
  responses.push_back(fib);
  responses.push_back(RunResponse());
  RunResponse no_trailer = Blur(kZeroCopyMinBytes * 2);
  no_trailer.clear_queue_time();
  no_trailer.clear_run_time();
  no_trailer.clear_worker();
  responses.push_back(no_trailer);
  for (RunResponse& response : responses) {
    SCOPED_TRACE(response.blur().pixels().size());
    const std::string expected = response.SerializeAsString();
    const std::string got = Flatten(SerializeRunResponse(response));
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected);
    RunResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(got));
  }
}

TEST(WireTest, ALargeBlurResultMovesIntoTheBuffer) {
  RunResponse response = Blur(kZeroCopyMinBytes);
  grpc::ByteBuffer bytes = SerializeRunResponse(response);
  EXPECT_FALSE(response.has_blur()) << "the result moved, not copied";
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(bytes.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[1].size(), kZeroCopyMinBytes) << "the pixels, whole";
}

}  // namespace
}  // namespace compute::service
