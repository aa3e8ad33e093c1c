#include "server/service/wire.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
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

// `wire` cut into slices of `cut` bytes with an empty slice after each.
grpc::ByteBuffer Cut(const std::string& wire, size_t cut) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < wire.size(); at += cut) {
    slices.emplace_back(wire.substr(at, cut));
    slices.emplace_back();
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Pixels(size_t n, int seed) {
  std::string p(n, '\0');
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(i * 31 + seed);
  return p;
}

std::string Join(const std::vector<absl::string_view>& pieces) {
  std::string out;
  for (absl::string_view piece : pieces) out.append(piece.data(), piece.size());
  return out;
}

// A large blur's pixels stay in the received slices, whatever the cuts:
// the request has every other field, and the payload's pieces are the
// pixels; the slices are held until the payload is cleared.
TEST(WireTest, LeavesALargeBlursPixelsInTheReceivedBytes) {
  RunRequest sent;
  sent.mutable_blur()->set_width(300);
  sent.mutable_blur()->set_height(300);
  sent.mutable_blur()->set_pixels(Pixels(300 * 300, 1));
  sent.mutable_blur()->set_radius(2);
  const std::string wire = sent.SerializeAsString();
  ASSERT_GE(wire.size(), kZeroCopyRequestMinBytes);
  for (size_t cut :
       {size_t{1}, size_t{3}, size_t{4096}, size_t{65536}, wire.size()}) {
    grpc::ByteBuffer bytes = Cut(wire, cut);
    RunRequest got;
    ReceivedPayload payload;
    ASSERT_TRUE(ParseRunRequest(bytes, &got, &payload).ok()) << "cut " << cut;
    EXPECT_EQ(bytes.Length(), 0u);
    EXPECT_EQ(got.blur().width(), 300u);
    EXPECT_EQ(got.blur().height(), 300u);
    EXPECT_EQ(got.blur().radius(), 2u);
    EXPECT_TRUE(got.blur().pixels().empty());
    EXPECT_EQ(Join(payload.pieces), sent.blur().pixels()) << "cut " << cut;
    EXPECT_FALSE(payload.slices.empty());
    payload.Clear();
    EXPECT_TRUE(payload.slices.empty());
  }
}

// Below the threshold, or for another task, nothing stays: protobuf parses
// it all and the bytes are freed.
TEST(WireTest, OtherRequestsKeepNoPayload) {
  RunRequest small;
  small.mutable_blur()->set_width(100);
  small.mutable_blur()->set_height(100);
  small.mutable_blur()->set_pixels(Pixels(100 * 100, 2));
  RunRequest hash;
  hash.mutable_sha256()->set_data(Pixels(200000, 3));
  for (const RunRequest& sent : {small, hash}) {
    grpc::ByteBuffer bytes = Cut(sent.SerializeAsString(), 1000);
    RunRequest got;
    ReceivedPayload payload;
    ASSERT_TRUE(ParseRunRequest(bytes, &got, &payload).ok());
    EXPECT_TRUE(payload.pieces.empty());
    EXPECT_TRUE(payload.slices.empty());
    EXPECT_EQ(got.SerializeAsString(), sent.SerializeAsString());
  }
}

// A blur whose pixels are a small part of what was received (here after a
// 1 MiB pixels field that a later one replaces, as protobuf keeps the last)
// does not hold the received bytes: the memory budget would count the 10
// pixels and not the megabyte. They are copied, and the slices freed.
TEST(WireTest, PixelsThatAreASmallPartOfTheBytesAreCopied) {
  RunRequest junk;
  junk.mutable_blur()->set_pixels(Pixels(1 << 20, 4));
  RunRequest last;
  last.mutable_blur()->set_width(10);
  last.mutable_blur()->set_height(1);
  last.mutable_blur()->set_pixels(Pixels(10, 5));
  // Two blur fields: protobuf merges them, the last pixels win.
  const std::string wire = junk.SerializeAsString() + last.SerializeAsString();
  RunRequest expected;
  ASSERT_TRUE(expected.ParseFromString(wire));
  ASSERT_EQ(expected.blur().pixels(), last.blur().pixels());
  grpc::ByteBuffer bytes = Cut(wire, 4096);
  RunRequest got;
  ReceivedPayload payload;
  ASSERT_TRUE(ParseRunRequest(bytes, &got, &payload).ok());
  EXPECT_TRUE(payload.slices.empty()) << "the megabyte is still held";
  EXPECT_TRUE(payload.pieces.empty());
  EXPECT_EQ(got.SerializeAsString(), expected.SerializeAsString());
}

// A blur field of two bytes beside a large request of another task (or a
// large unknown field): the split stops once what it copies passes the
// part the pixels leave, before it copies the large field, and protobuf
// parses the request. Before, the split copied every such field into a
// second string (3x the request at the peak: measured +68 MiB for a 34 MiB
// request, against +34 MiB without the blur field).
TEST(WireTest, TheSplitStopsBeforeCopyingWhatIsNotPixels) {
  RunRequest blur;
  blur.mutable_blur();
  RunRequest sha;
  sha.mutable_sha256()->set_data(std::string(1 << 20, 'x'));
  const std::string wire = blur.SerializeAsString() + sha.SerializeAsString();
  grpc::ByteBuffer bytes = Cut(wire, 4096);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(bytes.Dump(&slices).ok());
  std::string rest;
  std::vector<absl::string_view> pixels;
  const size_t max_rest = wire.size() / kMostUncountedPart;
  EXPECT_FALSE(internal::SplitOutPixels(slices, max_rest, &rest, &pixels));
  EXPECT_LE(rest.size(), max_rest) << "copied past the limit";
  // Within the limit, the same bytes split (nothing is pixels).
  rest.clear();
  EXPECT_TRUE(internal::SplitOutPixels(slices, wire.size(), &rest, &pixels));
  EXPECT_TRUE(pixels.empty());
  // And the request parses as protobuf parses it: a sha256.
  RunRequest got;
  ReceivedPayload payload;
  ASSERT_TRUE(ParseRunRequest(bytes, &got, &payload).ok());
  EXPECT_TRUE(payload.slices.empty());
  EXPECT_EQ(got.sha256().data().size(), size_t{1} << 20);
  EXPECT_FALSE(got.has_blur());
}

// A field's tag as protobuf writes it.
std::string Tag(int field,
                google::protobuf::internal::WireFormatLite::WireType type) {
  using google::protobuf::internal::WireFormatLite;
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(WireFormatLite::MakeTag(field, type));
  }
  return out;
}

// The request is the one protobuf parses from the same bytes, the pixels
// aside, also where protobuf's rules are subtle: a field repeated (the last
// value counts, messages merge), the oneof switched by a later task,
// unknown fields, bytes cut short (a group is refused: see below).
TEST(WireTest, ParsesAsProtobufDoesAroundTheBlur) {
  using google::protobuf::internal::WireFormatLite;
  auto message = [](const google::protobuf::MessageLite& m) {
    return m.SerializeAsString();
  };
  compute::v1::BlurRequest large;
  large.set_width(400);
  large.set_height(200);
  large.set_pixels(Pixels(400 * 200, 4));
  compute::v1::BlurRequest other = large;
  other.set_pixels(Pixels(400 * 200, 5));
  other.set_radius(7);
  compute::v1::BlurRequest resize;
  resize.set_width(3);
  RunRequest blur_a, blur_b, blur_c, fib;
  *blur_a.mutable_blur() = large;
  *blur_b.mutable_blur() = other;
  *blur_c.mutable_blur() = resize;
  fib.mutable_fib()->set_n(10);
  const std::string unknown_varint =
      Tag(99, WireFormatLite::WIRETYPE_VARINT) + std::string("\x96\x01", 2);
  const std::string unknown_bytes =
      Tag(98, WireFormatLite::WIRETYPE_LENGTH_DELIMITED) +
      std::string("\x03xyz", 4);
  const std::string group = Tag(97, WireFormatLite::WIRETYPE_START_GROUP) +
                            Tag(97, WireFormatLite::WIRETYPE_END_GROUP);
  // A blur whose pixels come twice, with an unknown field between.
  std::string blur_fields = large.SerializeAsString() + unknown_varint +
                            compute::v1::BlurRequest(other).SerializeAsString();
  std::string blur_twice = Tag(5, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  {
    google::protobuf::io::StringOutputStream stream(&blur_twice);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteVarint32(static_cast<uint32_t>(blur_fields.size()));
  }
  blur_twice += blur_fields;
  const std::string whole = message(blur_a);
  const std::vector<std::string> cases = {
      whole,
      message(blur_a) + message(blur_b),                 // merged
      message(blur_a) + message(blur_c),                 // merged, no pixels
      message(blur_a) + message(fib),                    // the fib wins
      message(fib) + message(blur_a),                    // the blur wins
      message(blur_a) + message(fib) + message(blur_c),  // pixels gone
      unknown_bytes + message(blur_a) + unknown_varint,  // kept
      blur_twice,                                        // the last pixels
      whole.substr(0, whole.size() - 1),                 // cut short
      whole.substr(0, 70000),                            // cut short
      message(blur_a) + std::string("\x00", 1),          // field 0
      // Varints longer than they need: protobuf takes a tag or a length of
      // up to 5 bytes, and refuses a 6th even when it is zero.
      message(blur_a) + std::string("\x98\x86\x80\x80\x00\x01", 6),
      message(blur_a) + std::string("\x98\x86\x80\x80\x80\x00\x01", 7),
      message(blur_a) + std::string("\x92\x06\x83\x80\x80\x80\x00xyz", 10),
      message(blur_a) + std::string("\x92\x06\x83\x80\x80\x80\x80\x00xyz", 11),
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_GE(cases[i].size(), kZeroCopyRequestMinBytes) << "case " << i;
    RunRequest expected;
    const bool parses = expected.ParseFromString(cases[i]);
    for (size_t cut : {size_t{5}, size_t{65536}}) {
      grpc::ByteBuffer bytes = Cut(cases[i], cut);
      RunRequest got;
      absl::Status status = ParseRunRequest(bytes, &got);
      EXPECT_EQ(status.ok(), parses) << "case " << i << ": " << status;
      if (parses && status.ok()) {
        EXPECT_EQ(got.SerializeAsString(), expected.SerializeAsString())
            << "case " << i << " cut " << cut;
      }
    }
  }
}

// Protobuf keeps every field it does not know as an entry of its own:
// 15.7 million two-byte ones (30 MiB) took 790 MB and 3.9 s of the I/O
// thread. So a request may hold at most kMaxUnknownFields of them, counted
// at every level (in a task, in a spin's duration), at most
// kMaxRequestFields in all, and no group, before protobuf parses anything.
TEST(WireTest, FieldsPastTheLimitsAndGroupsAreRefusedUnparsed) {
  using google::protobuf::internal::WireFormatLite;
  // `n` unknown fields: an empty bytes field 15 (two bytes each).
  auto unknown = [&](int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      out += Tag(15, WireFormatLite::WIRETYPE_LENGTH_DELIMITED) + '\0';
    }
    return out;
  };
  // A submessage field `field` holding `body`.
  auto nested = [&](int field, const std::string& body) {
    std::string out = Tag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
    google::protobuf::io::StringOutputStream stream(&out);
    {
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.WriteVarint32(static_cast<uint32_t>(body.size()));
    }
    return out + body;
  };
  RunRequest fib;
  fib.mutable_fib()->set_n(10);
  const std::string fib_bytes = fib.SerializeAsString();
  const int fib_field = RunRequest::kFibFieldNumber;
  const int spin_field = RunRequest::kSpinFieldNumber;
  // Field 1 of FibRequest (n) as a length-delimited field: another wire
  // type than its own, which protobuf keeps as unknown too.
  const std::string n_as_bytes =
      Tag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED) + '\0';
  struct Case {
    std::string name, bytes;
    bool ok;
  };
  const std::string limit = std::to_string(kMaxUnknownFields);
  const std::vector<Case> cases = {
      {"at the limit", fib_bytes + unknown(kMaxUnknownFields), true},
      {"past it", fib_bytes + unknown(kMaxUnknownFields + 1), false},
      {"past it in the task", nested(fib_field, unknown(kMaxUnknownFields + 1)),
       false},
      {"past it across levels",
       unknown(kMaxUnknownFields / 2) +
           nested(fib_field, unknown(kMaxUnknownFields / 2) + n_as_bytes),
       false},
      {"past it in a spin's duration",
       nested(spin_field, nested(1, unknown(kMaxUnknownFields + 1))), false},
      {"in a blur cleared by a later task, still parsed",
       nested(RunRequest::kBlurFieldNumber, unknown(kMaxUnknownFields)) +
           unknown(1) + fib_bytes,
       false},
      {"past it, large (the zero-copy scan's path)",
       nested(15, std::string(kZeroCopyRequestMinBytes, 'x')) +
           unknown(kMaxUnknownFields) + fib_bytes,
       false},
  };
  for (const Case& c : cases) {
    RunRequest expected;
    ASSERT_TRUE(expected.ParseFromString(c.bytes)) << c.name;
    for (size_t cut : {size_t{1}, size_t{7}, c.bytes.size()}) {
      grpc::ByteBuffer bytes = Cut(c.bytes, cut);
      RunRequest got;
      absl::Status status = ParseRunRequest(bytes, &got);
      EXPECT_EQ(status.ok(), c.ok) << c.name << ": " << status;
      if (c.ok) {
        EXPECT_EQ(got.SerializeAsString(), expected.SerializeAsString())
            << c.name;
        continue;
      }
      EXPECT_TRUE(absl::IsInvalidArgument(status)) << c.name;
      EXPECT_EQ(status.message(),
                "the request holds more than " + limit +
                    " fields that compute.v1 does not declare (at most " +
                    limit + "; each would be held in memory of its own)")
          << c.name;
      EXPECT_EQ(got.task_case(), RunRequest::TASK_NOT_SET) << c.name;
    }
  }

  // Declared fields sent again and again (protobuf merges each): at most
  // kMaxRequestFields in all. A fib is two fields (the task and its n).
  std::string fibs;
  for (int i = 0; i < kMaxRequestFields / 2; ++i) fibs += fib_bytes;
  {
    grpc::ByteBuffer at_limit = Bytes(fibs);
    RunRequest got;
    EXPECT_TRUE(ParseRunRequest(at_limit, &got).ok());
    EXPECT_EQ(got.fib().n(), 10u);
    grpc::ByteBuffer past = Bytes(fibs + fib_bytes);
    absl::Status status = ParseRunRequest(past, &got);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    const std::string most = std::to_string(kMaxRequestFields);
    EXPECT_EQ(status.message(),
              "the request holds more than " + most + " fields (at most " +
                  most +
                  "; a compute.v1 request has a few, and each is parsed in "
                  "turn)");
  }

  const std::string group = Tag(97, WireFormatLite::WIRETYPE_START_GROUP) +
                            Tag(97, WireFormatLite::WIRETYPE_END_GROUP);
  for (const std::string& bytes :
       {fib_bytes + group, nested(fib_field, group)}) {
    RunRequest expected;
    ASSERT_TRUE(expected.ParseFromString(bytes)) << "protobuf keeps it";
    grpc::ByteBuffer buffer = Bytes(bytes);
    RunRequest got;
    absl::Status status = ParseRunRequest(buffer, &got);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_EQ(status.message(),
              absl::StrCat("the request is not a compute.v1.RunRequest (",
                           bytes.size(), " bytes that do not parse as one)"));
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
