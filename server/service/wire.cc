#include "server/service/wire.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/byte_buffer.h"
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
  ~ReleasingSliceStream() override { ReleaseReceived(&slices_); }
  ReleasingSliceStream(const ReleasingSliceStream&) = delete;
  ReleasingSliceStream& operator=(const ReleasingSliceStream&) = delete;

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
    if (next_ > 0) ReleaseReceived(&slices_[next_ - 1]);  // done with it
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

// Reads received slices as one sequence of bytes, front to back, without
// copying them.
class SliceReader {
 public:
  explicit SliceReader(const std::vector<grpc::Slice>& slices)
      : slices_(slices) {
    for (const grpc::Slice& slice : slices_) size_ += slice.size();
    SkipEmptySlices();
  }

  bool AtEnd() const { return position_ == size_; }
  size_t position() const { return position_; }
  size_t remaining() const { return size_ - position_; }

  // A varint of at most `max_bytes` bytes (10, a varint's most, unless
  // said); false if the bytes end first or it is longer.
  bool ReadVarint(uint64_t* value, int max_bytes = 10) {
    uint64_t result = 0;
    for (int shift = 0; shift < 7 * max_bytes; shift += 7) {
      if (AtEnd()) return false;
      const uint8_t byte = slices_[index_].begin()[offset_];
      Advance(1);
      result |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80u) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  // The next n bytes, as pieces of the slices appended to *pieces; false if
  // fewer remain.
  bool Take(uint64_t n, std::vector<absl::string_view>* pieces) {
    if (n > remaining()) return false;
    while (n > 0) {
      const grpc::Slice& slice = slices_[index_];
      const size_t take = std::min<uint64_t>(n, slice.size() - offset_);
      pieces->emplace_back(
          reinterpret_cast<const char*>(slice.begin()) + offset_, take);
      Advance(take);
      n -= take;
    }
    return true;
  }

  // Passes over the next n bytes; false if fewer remain.
  bool Skip(uint64_t n) {
    if (n > remaining()) return false;
    while (n > 0) {
      const size_t skip =
          std::min<uint64_t>(n, slices_[index_].size() - offset_);
      Advance(skip);
      n -= skip;
    }
    return true;
  }

  // Appends the next n bytes to *out; false if fewer remain.
  bool CopyTo(uint64_t n, std::string* out) {
    if (n > remaining()) return false;
    while (n > 0) {
      const grpc::Slice& slice = slices_[index_];
      const size_t take = std::min<uint64_t>(n, slice.size() - offset_);
      out->append(reinterpret_cast<const char*>(slice.begin()) + offset_, take);
      Advance(take);
      n -= take;
    }
    return true;
  }

 private:
  void Advance(size_t n) {
    offset_ += n;
    position_ += n;
    if (offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
      SkipEmptySlices();
    }
  }
  void SkipEmptySlices() {
    while (index_ < slices_.size() && slices_[index_].size() == 0) ++index_;
  }

  const std::vector<grpc::Slice>& slices_;
  size_t size_ = 0;
  size_t index_ = 0;   // the slice the next byte is in
  size_t offset_ = 0;  // the next byte's offset in it
  size_t position_ = 0;
};

void AppendVarint(uint64_t value, std::string* out) {
  uint8_t buffer[10];  // a varint's most
  const uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(value,
                                                                    buffer);
  out->append(reinterpret_cast<const char*>(buffer),
              static_cast<size_t>(end - buffer));
}

// The scans read tags and lengths as protobuf's parser does
// (parse_context.h's ReadTag and ReadSize): a tag of at most 5 bytes, its
// value cut to 32 bits (ReadTagFallback adds the fifth byte's bits in a
// uint32), and a length of at most 5 bytes that fits an int32. Protobuf
// refuses a longer one even when its extra bytes are zeros. What the
// unknown-field count cannot read is refused unparsed, so it must read
// everything protobuf does (wire_fuzzer checks it).
bool ReadTag(SliceReader& in, uint64_t* tag) {
  if (!in.ReadVarint(tag, 5)) return false;
  *tag &= UINT32_MAX;
  return (*tag >> 3) != 0;
}

bool ReadSize(SliceReader& in, uint64_t* size) {
  return in.ReadVarint(size, 5) && *size <= INT32_MAX;
}

// Copies one field's value (the bytes after its tag), of wire type `type`,
// from `in` to *out; with `out` null, passes over it. False on bytes that
// end early, on a group (wire types 3 and 4), which the scan leaves to
// protobuf, or on a length-delimited value that would take *out past
// `max_out` bytes (checked before it is copied).
bool CopyValue(SliceReader& in, uint32_t type, std::string* out,
               size_t max_out = SIZE_MAX) {
  switch (type) {
    case WireFormatLite::WIRETYPE_VARINT: {
      uint64_t value = 0;
      if (!in.ReadVarint(&value)) return false;
      if (out != nullptr) AppendVarint(value, out);
      return true;
    }
    case WireFormatLite::WIRETYPE_FIXED64:
      return out != nullptr ? in.CopyTo(8, out) : in.Skip(8);
    case WireFormatLite::WIRETYPE_FIXED32:
      return out != nullptr ? in.CopyTo(4, out) : in.Skip(4);
    case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
      uint64_t size = 0;
      if (!ReadSize(in, &size)) return false;
      if (out == nullptr) return in.Skip(size);
      if (size > max_out || out->size() > max_out - size) return false;
      AppendVarint(size, out);
      return in.CopyTo(size, out);
    }
    default:
      return false;
  }
}

// Whether `tag` starts a task of RunRequest's `task` oneof other than blur:
// protobuf then clears the blur, pixels and all.
bool IsOtherTask(uint64_t tag) {
  if ((tag & 7) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) return false;
  const auto* field = compute::v1::RunRequest::descriptor()->FindFieldByNumber(
      static_cast<int>(tag >> 3));
  return field != nullptr && field->containing_oneof() != nullptr &&
         field->containing_oneof()->name() == "task" &&
         field->number() != compute::v1::RunRequest::kBlurFieldNumber;
}

}  // namespace

bool internal::SplitOutPixels(const std::vector<grpc::Slice>& slices,
                              size_t max_rest, std::string* rest,
                              std::vector<absl::string_view>* pixels) {
  const uint64_t blur_tag =
      LengthDelimitedTag(compute::v1::RunRequest::kBlurFieldNumber);
  const uint64_t pixels_tag =
      LengthDelimitedTag(compute::v1::BlurRequest::kPixelsFieldNumber);
  SliceReader in(slices);
  while (!in.AtEnd()) {
    uint64_t tag = 0;
    if (!ReadTag(in, &tag)) return false;
    if (rest->size() > max_rest) return false;
    AppendVarint(tag, rest);
    if (tag != blur_tag) {
      if (IsOtherTask(tag)) pixels->clear();
      if (!CopyValue(in, static_cast<uint32_t>(tag & 7), rest, max_rest)) {
        return false;
      }
      continue;
    }
    // The blur: its fields but the pixels go to *rest.
    uint64_t size = 0;
    if (!ReadSize(in, &size) || size > in.remaining()) return false;
    const size_t end = in.position() + size;
    std::string blur;
    while (in.position() < end) {
      uint64_t field_tag = 0;
      if (!ReadTag(in, &field_tag)) return false;
      if (field_tag == pixels_tag) {
        uint64_t pixels_size = 0;
        if (!ReadSize(in, &pixels_size)) return false;
        pixels->clear();
        if (!in.Take(pixels_size, pixels)) return false;
      } else {
        if (rest->size() + blur.size() > max_rest) return false;
        AppendVarint(field_tag, &blur);
        if (!CopyValue(in, static_cast<uint32_t>(field_tag & 7), &blur,
                       max_rest - std::min(max_rest, rest->size()))) {
          return false;
        }
      }
    }
    if (in.position() != end) return false;  // a field ran past the blur
    AppendVarint(blur.size(), rest);
    rest->append(blur);
  }
  return rest->size() <= max_rest;
}

namespace {

absl::Status NotARunRequest(size_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat("the request is not a compute.v1.RunRequest (", size,
                   " bytes that do not parse as one)"));
}

// Fields a request holds, counted before protobuf parses it.
struct FieldCount {
  int all = 0;      // every field, declared or not, at every level
  int unknown = 0;  // those protobuf would keep as unknown fields
  // A blur among the top-level fields. Only such a request is split around
  // its pixels: a large request of another task (a 4 MiB sha256) is not
  // copied field by field into a second string before protobuf parses it
  // (that took three times its size at its peak, against once).
  bool blur = false;
  bool Over() const {
    return unknown > kMaxUnknownFields || all > kMaxRequestFields;
  }
};

// Counts the fields of a `type` message, from in's position to `end`, and
// those of the messages in it, into *count: unknown ones are those `type`
// does not declare or declares with another wire type (protobuf keeps both
// as unknown fields). Stops once the count is Over(). False on bytes the
// scan cannot read: a group, or a field that runs past `end` (protobuf
// refuses all of those but the group).
bool CountFields(SliceReader& in, size_t end,
                 const google::protobuf::Descriptor* type, FieldCount* count) {
  using google::protobuf::FieldDescriptor;
  while (in.position() < end) {
    uint64_t tag = 0;
    if (!ReadTag(in, &tag)) return false;
    if (++count->all > kMaxRequestFields) return true;
    const uint32_t wire_type = static_cast<uint32_t>(tag & 7);
    const FieldDescriptor* field =
        type->FindFieldByNumber(static_cast<int>(tag >> 3));
    if (field != nullptr && field->type() == FieldDescriptor::TYPE_MESSAGE &&
        wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (type == compute::v1::RunRequest::descriptor() &&
          field->number() == compute::v1::RunRequest::kBlurFieldNumber) {
        count->blur = true;
      }
      uint64_t size = 0;
      if (!ReadSize(in, &size) || in.position() > end ||
          size > end - in.position()) {
        return false;
      }
      if (!CountFields(in, in.position() + size, field->message_type(),
                       count)) {
        return false;
      }
      if (count->Over()) return true;
      continue;
    }
    if (field == nullptr || WireFormatLite::WireTypeForFieldType(
                                static_cast<WireFormatLite::FieldType>(
                                    field->type())) != wire_type) {
      if (++count->unknown > kMaxUnknownFields) return true;
    }
    if (!CopyValue(in, wire_type, nullptr) || in.position() > end) {
      return false;
    }
  }
  return true;
}

// Refuses, before protobuf parses them, bytes that would cost far more to
// parse and hold than they weigh (kMaxUnknownFields, kMaxRequestFields);
// else says whether the request holds a blur.
absl::Status CheckFieldCounts(const std::vector<grpc::Slice>& slices,
                              size_t size, bool* holds_blur) {
  SliceReader in(slices);
  FieldCount count;
  if (!CountFields(in, size, compute::v1::RunRequest::descriptor(), &count)) {
    return NotARunRequest(size);
  }
  if (count.unknown > kMaxUnknownFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request holds more than ", kMaxUnknownFields,
        " fields that compute.v1 does not declare (at most ", kMaxUnknownFields,
        "; each would be held in memory of its own)"));
  }
  if (count.all > kMaxRequestFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request holds more than ", kMaxRequestFields, " fields (at most ",
        kMaxRequestFields,
        "; a compute.v1 request has a few, and each is parsed in turn)"));
  }
  *holds_blur = count.blur;
  return absl::OkStatus();
}

}  // namespace

void ReleaseReceived(std::vector<grpc::Slice>* slices) {
  if (slices->empty()) return;
  // A byte buffer takes a reference to each slice; its destruction
  // (grpc_byte_buffer_destroy, which makes an ExecCtx) drops the last ones.
  // (grpc_slice_buffer_destroy makes none in gRPC 1.51.)
  grpc::ByteBuffer last_references(slices->data(), slices->size());
  slices->clear();  // none of these is the last reference now
  last_references.Clear();
}

void ReleaseReceived(grpc::Slice* slice) {
  grpc::ByteBuffer last_reference(slice, 1);
  *slice = grpc::Slice();  // not the last reference now
  last_reference.Clear();
}

namespace {

// Releases a function's received slices with ReleaseReceived on every
// return path.
class ReleaseOnExit {
 public:
  explicit ReleaseOnExit(std::vector<grpc::Slice>* slices) : slices_(slices) {}
  ~ReleaseOnExit() { ReleaseReceived(slices_); }
  ReleaseOnExit(const ReleaseOnExit&) = delete;
  ReleaseOnExit& operator=(const ReleaseOnExit&) = delete;

 private:
  std::vector<grpc::Slice>* const slices_;
};

}  // namespace

absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                             compute::v1::RunRequest* request,
                             ReceivedPayload* payload) {
  payload->Clear();
  if (!bytes.Valid()) {
    return absl::InvalidArgumentError(
        "no request message: the stream ended before a whole message");
  }
  const size_t size = bytes.Length();
  std::vector<grpc::Slice> slices;
  ReleaseOnExit release(&slices);  // whatever is left in it on return
  const bool dumped = bytes.Dump(&slices).ok();
  bytes.Clear();  // the slices now hold the only references
  if (!dumped) return NotARunRequest(size);
  bool holds_blur = false;
  if (absl::Status s = CheckFieldCounts(slices, size, &holds_blur); !s.ok()) {
    return s;
  }
  if (size >= kZeroCopyRequestMinBytes && holds_blur) {
    std::string rest;
    std::vector<absl::string_view> pixels;
    // The pixels are most of the bytes only if the rest is at most
    // 1/kMostUncountedPart of them: past that, the split stops before it
    // copies more (a blur field of 2 bytes beside a large sha256 or unknown
    // field made it copy all of those: 3x the request at the peak, not 2x).
    if (internal::SplitOutPixels(slices, size / kMostUncountedPart, &rest,
                                 &pixels)) {
      if (!request->ParseFromString(rest)) {
        request->Clear();
        return NotARunRequest(size);
      }
      // Every pixels field was split out.
      assert(!request->has_blur() || request->blur().pixels().empty());
      if (!request->has_blur()) pixels.clear();
      size_t pixel_bytes = 0;
      for (absl::string_view piece : pixels) pixel_bytes += piece.size();
      if (pixel_bytes >= size - size / kMostUncountedPart) {
        payload->pieces = std::move(pixels);
        payload->slices = std::move(slices);
      } else if (!pixels.empty()) {
        // The pixels are not most of what was received (an earlier pixels
        // field, another task's data, unknown fields): holding every slice
        // for them would keep bytes the memory budget does not count (it
        // counts the request and these pixels). Copied; the slices go.
        std::string* out = request->mutable_blur()->mutable_pixels();
        out->reserve(pixel_bytes);
        for (absl::string_view piece : pixels) {
          out->append(piece.data(), piece.size());
        }
      }
      return absl::OkStatus();
    }
  }
  ReleasingSliceStream stream(std::move(slices));
  if (!request->ParseFromZeroCopyStream(&stream)) {
    request->Clear();
    return NotARunRequest(size);
  }
  return absl::OkStatus();
}

absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                             compute::v1::RunRequest* request) {
  ReceivedPayload payload;
  absl::Status status = ParseRunRequest(bytes, request, &payload);
  if (status.ok() && !payload.pieces.empty()) {
    std::string* pixels = request->mutable_blur()->mutable_pixels();
    for (absl::string_view piece : payload.pieces) {
      pixels->append(piece.data(), piece.size());
    }
  }
  return status;
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
