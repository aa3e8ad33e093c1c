// Run's messages to and from the bytes gRPC carries. The method is
// registered raw (RunQueues), so gRPC hands the service the received bytes
// and sends the bytes it is given, and the service parses and serializes:
//
// - the received bytes are freed as soon as the request is parsed, before
//   its task queues or runs (gRPC's own parsing keeps them until then);
// - a body that is not a RunRequest gets INVALID_ARGUMENT with a message
//   that says so (gRPC's own answer is INTERNAL "Unable to parse request",
//   before the service sees the call or counts it);
// - a large blur result goes to the transport without a copy: its pixels
//   become a slice of their own, between the bytes before and after them.
//
// Copies of a 16-megapixel blur's payload on the server, after gRPC has
// received it: parsed into the request (1), blurred into the response (the
// kernel's output), sent from there (0, was 1: serialized into a new
// buffer). What is held at once: the received bytes and the request while
// parsing, then the request and the result while the kernel runs, then the
// result alone (the request is freed before the answer is sent): 2x the
// payload at most, from 4x.
#ifndef COMPUTE_SERVER_SERVICE_WIRE_H_
#define COMPUTE_SERVER_SERVICE_WIRE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "compute/v1/compute.pb.h"
#include "grpcpp/support/byte_buffer.h"

namespace compute::service {

// Results at least this large are sent without a copy; smaller ones are
// serialized as gRPC would (one buffer, one copy that costs nothing next to
// the call).
inline constexpr size_t kZeroCopyMinBytes = 64 * 1024;

// Parses `bytes` into *request and frees them (bytes is empty after).
// InvalidArgument naming what is wrong when they are not a RunRequest, or
// when there are none (the stream ended before a whole message).
[[nodiscard]] absl::Status ParseRunRequest(grpc::ByteBuffer& bytes,
                                           compute::v1::RunRequest* request);

// `response` serialized, byte for byte as RunResponse::SerializeAsString
// would write it. A blur result of kZeroCopyMinBytes or more moves into the
// buffer (*response is left without its result).
grpc::ByteBuffer SerializeRunResponse(compute::v1::RunResponse& response);

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_WIRE_H_
