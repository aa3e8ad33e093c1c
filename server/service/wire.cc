#include "server/service/wire.h"

#include <cassert>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/slice.h"

namespace compute::service {
namespace {

using ::google::protobuf::internal::WireFormatLite;

uint32_t LengthDelimitedTag(int field) {
  return WireFormatLite::MakeTag(field,
                                 WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
}

void DeleteString(void* string) { delete static_cast<std::string*>(string); }

// The received slices of one request, read front to back by the parser,
// each released as soon as the parser has moved past it: a 16 MiB request
// is then held about once while it is parsed (the slices not yet read plus
// the string parsed so far), not twice. ZeroCopyInputStream allows it: a
// chunk Next() returned is valid only until the stream's next call.
class ReleasingSliceStream : public google::protobuf::io::ZeroCopyInputStream {
 public:
  explicit ReleasingSliceStream(std::vector<grpc::Slice> slices)
      : slices_(std::move(slices)) {}

  bool Next(const void** data, int* size) override {
    if (backed_up_ > 0) {
      // The tail of the current slice, given back by BackUp.
      const grpc::Slice& slice = slices_[next_ - 1];
      *data = slice.begin() + slice.size() - backed_up_;
      *size = static_cast<int>(backed_up_);
      byte_count_ += backed_up_;
      backed_up_ = 0;
      return true;
    }
    if (next_ > 0) slices_[next_ - 1] = grpc::Slice();  // done with it
    while (next_ < slices_.size() && slices_[next_].size() == 0) ++next_;
    if (next_ == slices_.size()) return false;
    const grpc::Slice& slice = slices_[next_++];
    *data = slice.begin();
    *size = static_cast<int>(slice.size());
    byte_count_ += slice.size();
    return true;
  }

  void BackUp(int count) override {
    assert(next_ > 0 && count >= 0 && backed_up_ == 0);
    assert(static_cast<size_t>(count) <= slices_[next_ - 1].size());
    backed_up_ = static_cast<size_t>(count);
    byte_count_ -= backed_up_;
  }

  bool Skip(int count) override {
    const void* data;
    int size;
    while (count > 0 && Next(&data, &size)) {
      if (size > count) {
        BackUp(size - count);
        return true;
      }
      count -= size;
    }
    return count == 0;
  }

  int64_t ByteCount() const override { return byte_count_; }

 private:
  std::vector<grpc::Slice> slices_;
  size_t next_ = 0;       // the slice the next Next() returns
  size_t backed_up_ = 0;  // bytes at the end of slices_[next_ - 1] not read
  int64_t byte_count_ = 0;
};

}  // namespace

absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                             compute::v1::RunRequest* request) {
  if (!bytes.Valid()) {
    return absl::InvalidArgumentError(
        "no request message: the stream ended before a whole message");
  }
  const size_t size = bytes.Length();
  std::vector<grpc::Slice> slices;
  const bool dumped = bytes.Dump(&slices).ok();
  bytes.Clear();  // the slices now hold the only references
  ReleasingSliceStream stream(std::move(slices));
  const bool parsed = dumped && request->ParseFromZeroCopyStream(&stream);
  if (!parsed) {
    request->Clear();
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a compute.v1.RunRequest (", size,
                     " bytes that do not parse as one)"));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer SerializeRunResponse(compute::v1::RunResponse& response) {
  grpc::ByteBuffer bytes;
  if (!response.has_blur() ||
      response.blur().pixels().size() < kZeroCopyMinBytes) {
    bool own_buffer = false;
    // gRPC's own serialization (what a non-raw method would do).
    grpc::Status status =
        grpc::SerializationTraits<compute::v1::RunResponse>::Serialize(
            response, &bytes, &own_buffer);
    assert(status.ok());
    (void)status;
    return bytes;
  }
  // blur (field 5) { width, height, pixels (field 3) }, then the fields
  // after the result: what SerializeAsString writes, in three slices.
  auto* pixels =
      new std::string(std::move(*response.mutable_blur()->mutable_pixels()));
  response.mutable_blur()->clear_pixels();
  const std::string blur_head = response.blur().SerializeAsString();
  response.clear_blur();
  const std::string tail = response.SerializeAsString();
  const size_t pixels_header =
      google::protobuf::io::CodedOutputStream::VarintSize32(
          LengthDelimitedTag(compute::v1::BlurResult::kPixelsFieldNumber)) +
      google::protobuf::io::CodedOutputStream::VarintSize32(
          static_cast<uint32_t>(pixels->size()));
  std::string head;
  {
    google::protobuf::io::StringOutputStream out(&head);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteTag(
        LengthDelimitedTag(compute::v1::RunResponse::kBlurFieldNumber));
    coded.WriteVarint32(static_cast<uint32_t>(blur_head.size() + pixels_header +
                                              pixels->size()));
    coded.WriteString(blur_head);
    coded.WriteTag(
        LengthDelimitedTag(compute::v1::BlurResult::kPixelsFieldNumber));
    coded.WriteVarint32(static_cast<uint32_t>(pixels->size()));
  }
  const grpc::Slice slices[] = {
      grpc::Slice(head),
      grpc::Slice(pixels->data(), pixels->size(), &DeleteString, pixels),
      grpc::Slice(tail),
  };
  return grpc::ByteBuffer(slices, 3);
}

}  // namespace compute::service
