// Fuzzes the parse of Run's received bytes (server/service/wire.h) against
// protobuf's own parse of the same bytes. The input's first byte picks the
// size of the slices the rest is cut into (gRPC hands a request over in
// slices cut anywhere); the rest goes behind a 64 KiB unknown field (one
// slice of its own), which
// takes every input past kZeroCopyRequestMinBytes, so that the scan for a
// blur's pixels runs on it (protobuf keeps an unknown field, so both parses
// see the same request). The padding makes most inputs' pixels a small
// part of the bytes, so they come back copied into the request
// (kMostUncountedPart): the split that found them is checked either way.
//
// Properties checked (abort() is the finding):
//   - ParseRunRequest succeeds exactly when protobuf's ParseFromString does
//     and the bytes hold no group, at most kMaxUnknownFields fields that
//     protobuf would keep as unknown and at most kMaxRequestFields in all
//     (counted by protobuf's own UnknownFieldSet parse, level by level,
//     below);
//   - then the request, with its payload copied back into the blur's pixels,
//     serializes as protobuf's parse does: field for field the same request;
//   - a payload is left only for a blur, whose own pixels are then empty.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "compute/v1/compute.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "server/service/wire.h"

namespace {

using compute::v1::RunRequest;

// An unknown field (number 1000, length-delimited) of 64 KiB of zeros.
std::string Padding() {
  std::string out;
  out += static_cast<char>(0xc2);  // tag (1000 << 3) | 2, as a varint
  out += static_cast<char>(0x3e);
  out += static_cast<char>(0x80);  // length 65536, as a varint
  out += static_cast<char>(0x80);
  out += static_cast<char>(0x04);
  out.append(65536, '\0');
  return out;
}

// Whether `bytes`, a `type` message, hold a group or more than
// kMaxUnknownFields fields that `type` (or a message in it) does not declare
// or declares with another wire type, counting every field protobuf's
// parser meets, also those a later oneof member clears. Protobuf's own
// wire parser, not the server's scan; false on bytes it cannot parse.
bool TooCostly(const std::string& bytes,
               const google::protobuf::Descriptor* type, int* all, int* unknown,
               bool* costly) {
  using google::protobuf::FieldDescriptor;
  using google::protobuf::UnknownField;
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) return false;
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    ++*all;
    if (f.type() == UnknownField::TYPE_GROUP) *costly = true;
    const FieldDescriptor* known = type->FindFieldByNumber(f.number());
    if (known != nullptr && known->type() == FieldDescriptor::TYPE_MESSAGE &&
        f.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
      if (!TooCostly(f.length_delimited(), known->message_type(), all, unknown,
                     costly)) {
        return false;
      }
      continue;
    }
    const WireFormatLite::WireType wire =
        f.type() == UnknownField::TYPE_VARINT ? WireFormatLite::WIRETYPE_VARINT
        : f.type() == UnknownField::TYPE_FIXED32
            ? WireFormatLite::WIRETYPE_FIXED32
        : f.type() == UnknownField::TYPE_FIXED64
            ? WireFormatLite::WIRETYPE_FIXED64
        : f.type() == UnknownField::TYPE_LENGTH_DELIMITED
            ? WireFormatLite::WIRETYPE_LENGTH_DELIMITED
            : WireFormatLite::WIRETYPE_START_GROUP;
    if (known == nullptr ||
        WireFormatLite::WireTypeForFieldType(
            static_cast<WireFormatLite::FieldType>(known->type())) != wire) {
      ++*unknown;
    }
  }
  if (*unknown > compute::service::kMaxUnknownFields ||
      *all > compute::service::kMaxRequestFields) {
    *costly = true;
  }
  return true;
}

[[noreturn]] void Fail(const char* what, const std::string& wire) {
  std::fprintf(stderr, "wire_fuzzer: %s (%zu bytes)\n", what, wire.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t cut = data[0] == 0 ? 1 : data[0];
  static const std::string* padding = new std::string(Padding());
  const std::string wire =
      *padding + std::string(reinterpret_cast<const char*>(data + 1), size - 1);

  RunRequest expected;
  int all = 0;
  int unknown = 0;
  bool costly = false;
  const bool parses =
      expected.ParseFromString(wire) &&
      TooCostly(wire, RunRequest::descriptor(), &all, &unknown, &costly) &&
      !costly;

  // The padding in one slice; the input's bytes cut every `cut` bytes.
  std::vector<grpc::Slice> slices;
  slices.emplace_back(*padding);
  for (size_t at = padding->size(); at < wire.size(); at += cut) {
    slices.emplace_back(wire.data() + at, std::min(cut, wire.size() - at));
  }
  grpc::ByteBuffer bytes(slices.data(), slices.size());
  RunRequest got;
  compute::service::ReceivedPayload payload;
  const bool ok = compute::service::ParseRunRequest(bytes, &got, &payload).ok();
  if (ok != parses)
    Fail("parses where protobuf does not, or the reverse", wire);
  if (!ok) return 0;
  if (!payload.pieces.empty()) {
    if (!got.has_blur()) Fail("a payload for a request that is no blur", wire);
    if (!got.blur().pixels().empty()) Fail("pixels in both places", wire);
    std::string* pixels = got.mutable_blur()->mutable_pixels();
    for (auto piece : payload.pieces)
      pixels->append(piece.data(), piece.size());
  }
  if (got.SerializeAsString() != expected.SerializeAsString()) {
    Fail("a different request than protobuf's", wire);
  }
  return 0;
}
