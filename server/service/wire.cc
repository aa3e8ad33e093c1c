#include "server/service/wire.h"

#include <cassert>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace compute::service {
namespace {

using ::google::protobuf::internal::WireFormatLite;

uint32_t LengthDelimitedTag(int field) {
  return WireFormatLite::MakeTag(field,
                                 WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
}

void DeleteString(void* string) { delete static_cast<std::string*>(string); }

}  // namespace

absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                             compute::v1::RunRequest* request) {
  if (!bytes.Valid()) {
    return absl::InvalidArgumentError(
        "no request message: the stream ended before a whole message");
  }
  const size_t size = bytes.Length();
  bool parsed;
  {
    grpc::ProtoBufferReader reader(&bytes);
    parsed = reader.status().ok() && request->ParseFromZeroCopyStream(&reader);
  }
  bytes.Clear();
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
