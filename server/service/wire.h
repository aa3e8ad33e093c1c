// Run's messages to and from the bytes gRPC carries. The method is
// registered raw (RunQueues), so gRPC hands the service the received bytes
// and sends the bytes it is given, and the service parses and serializes:
//
// - the pixels of a large blur request stay in the received bytes: the
//   request is parsed around them and the kernel reads them from there
//   (ReceivedPayload); every other request's bytes are freed as soon as it
//   is parsed, before its task queues or runs;
// - a body that is not a RunRequest gets INVALID_ARGUMENT with a message
//   that says so (gRPC's own answer is INTERNAL "Unable to parse request",
//   before the service sees the call or counts it);
// - so does one with more than kMaxUnknownFields fields that compute.v1
//   does not declare, or more than kMaxRequestFields in all, before
//   protobuf parses it (see there);
// - a stream that ends without a message never reaches the service: gRPC
//   1.51 answers it INTERNAL "Unable to parse request" itself, uncounted
//   (ParseRunRequest's own check, INVALID_ARGUMENT, is for other callers);
// - a large blur result goes to the transport without a copy: its pixels
//   become a slice of their own, between the bytes before and after them.
//
// Copies of a 16-megapixel blur's payload on the server, after gRPC has
// received it: none into the request (was 1: protobuf copies a bytes field
// out of the received bytes), blurred into the response (the kernel's
// output), sent from there (0, was 1: serialized into a new buffer). What
// is held at once: the received bytes and the result while the kernel
// runs, then the result alone (the received bytes are freed before the
// answer is sent): 2x the payload, where protobuf's parse held the received
// bytes, the request and the result.
#ifndef COMPUTE_SERVER_SERVICE_WIRE_H_
#define COMPUTE_SERVER_SERVICE_WIRE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "compute/v1/compute.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace compute::service {

// Results at least this large are sent without a copy; smaller ones are
// serialized as gRPC would (one buffer, one copy that costs nothing next to
// the call).
inline constexpr size_t kZeroCopyMinBytes = 64 * 1024;

// Fields a request may hold that compute.v1 does not declare (a newer
// client's), at every level. Protobuf keeps each as an entry of its own:
// measured, a 30 MiB request of 15.7 million empty ones took 790 MB and
// 3.9 s of an I/O thread to parse, while the memory budget counted its
// 30 MiB. A group (wire types 3 and 4, which no compute.v1 message has) is
// refused as not a RunRequest for the same reason.
inline constexpr int kMaxUnknownFields = 256;
// Fields a request may hold in all, declared or not, at every level. A
// compute.v1 request has a few; a singular field sent again and again is
// merged by protobuf each time: 15.7 million in 30 MiB took an I/O thread
// 0.5-0.65 s (measured by review).
inline constexpr int kMaxRequestFields = 4096;

// Requests at least this large are scanned for a blur's pixels, which are
// then left in the received bytes; smaller ones are parsed by protobuf
// alone (a copy that costs nothing next to the call).
inline constexpr size_t kZeroCopyRequestMinBytes = 64 * 1024;

// The pixels stay in the received bytes only when they are all of them but
// at most 1/kMostUncountedPart: the memory budget counts the request and
// its pixels, not the slices around them.
inline constexpr size_t kMostUncountedPart = 8;

// Drops received slices (emptied) or one slice (made empty) on a thread
// that has no gRPC execution context, such as a worker or an I/O thread
// after the completion queue handed it an event. Received bytes belong to
// the transport's resource quota, and when the last reference to some of
// them goes while the quota is under pressure, gRPC 1.51 wakes the
// quota's reclaimer through the calling thread's execution context:
// grpc::Slice's destructor (grpc_slice_unref) makes none, nor does
// grpc_slice_buffer_destroy, and dropping the last reference there crashed
// the server (a null ExecCtx in ExecCtx::Run) under bursts of large calls
// that filled the quota. These hand the last references to a byte buffer,
// whose destruction (grpc_byte_buffer_destroy) makes one.
void ReleaseReceived(std::vector<grpc::Slice>* slices);
void ReleaseReceived(grpc::Slice* slice);

// A request's payload left in its received bytes: `pieces` (in order) lie
// in `slices`, which keep them alive. Released with ReleaseReceived (see
// above), on Clear and at the latest when it is destroyed; not copied or
// moved, so no slice is dropped any other way.
struct ReceivedPayload {
  std::vector<grpc::Slice> slices;
  std::vector<absl::string_view> pieces;

  ReceivedPayload() = default;
  ReceivedPayload(const ReceivedPayload&) = delete;
  ReceivedPayload& operator=(const ReceivedPayload&) = delete;
  ~ReceivedPayload() { Clear(); }

  void Clear() {
    pieces.clear();
    ReleaseReceived(&slices);
  }
};

// Parses `bytes` into *request (bytes is empty after). For a request of
// kZeroCopyRequestMinBytes or more whose task is blur, and whose pixels are
// nearly all of it (kMostUncountedPart), the pixels are not copied into
// request->blur().pixels() (left empty): *payload holds them, and the
// received bytes, until it is cleared. For any other request
// *payload is empty and the received bytes are freed. The request is the
// one protobuf would parse from the same bytes, field for field, the
// pixels aside (a scan of the top-level fields finds the blur's; anything
// it does not expect, such as groups, makes it leave the whole parse to
// protobuf). InvalidArgument naming what is wrong when the bytes are not a
// RunRequest, or when there are none (the stream ended before a whole
// message).
[[nodiscard]] absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                                           compute::v1::RunRequest* request,
                                           ReceivedPayload* payload);

namespace internal {
// (ParseRunRequest's, declared for tests.) Splits a request's bytes into
// the request without its blur's pixels (*rest, in protobuf's wire format,
// every other field as it was, varints re-encoded) and the pixels, as
// pieces of the slices (*pixels; the last pixels field counts, as protobuf
// keeps the last value of a field). False when the bytes hold something the
// scan leaves to protobuf (a group, bytes that end inside a field), or when
// *rest would pass `max_rest` bytes: it stops before copying the field that
// would pass it.
bool SplitOutPixels(const std::vector<grpc::Slice>& slices, size_t max_rest,
                    std::string* rest, std::vector<absl::string_view>* pixels);
}  // namespace internal

// The same, with the payload (if any) copied into the request: for tests
// and fuzzers, which compare it with protobuf's parse.
[[nodiscard]] absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                                           compute::v1::RunRequest* request);

// `response` serialized, byte for byte as RunResponse::SerializeAsString
// would write it. A blur result of kZeroCopyMinBytes or more moves into the
// buffer (*response is left without its result).
grpc::ByteBuffer SerializeRunResponse(compute::v1::RunResponse& response);

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_WIRE_H_
