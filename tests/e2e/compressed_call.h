// A decompression bomb: a RunRequest whose sha256.data is megabytes of
// zeros, compressed (gzip or deflate) to a few hundred kilobytes, and a
// call that sends it with `grpc-encoding` set.
//
// Why gRPC's C API: the C++ API compresses a message itself, so sending a
// 200 MiB bomb through it would make the test build and compress 200 MiB.
// A raw byte buffer marked as already compressed
// (grpc_raw_compressed_byte_buffer_create) is sent as it is, with the
// message's compressed flag and the channel's default algorithm as its
// `grpc-encoding`, exactly as a hostile client would send it.
#ifndef COMPUTE_TESTS_E2E_COMPRESSED_CALL_H_
#define COMPUTE_TESTS_E2E_COMPRESSED_CALL_H_

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace compute::testing {

enum class Wrapper { kGzip, kZlib };  // gRPC's "gzip" and "deflate"

// The serialized RunRequest {sha256 {data: `zeros` zero bytes}}, compressed
// as gzip or zlib, built without ever holding the uncompressed request (it
// streams the zeros through zlib 1 MiB at a time). Empty on a zlib error.
inline std::string CompressedZerosRequest(uint32_t zeros, Wrapper wrapper) {
  // The two length-delimited headers: RunRequest.sha256 (field 3) holding
  // Sha256Request.data (field 1) of `zeros` bytes.
  std::string header;
  {
    google::protobuf::io::StringOutputStream out(&header);
    google::protobuf::io::CodedOutputStream coded(&out);
    uint32_t inner_header =
        1 + google::protobuf::io::CodedOutputStream::VarintSize32(zeros);
    coded.WriteTag((3 << 3) | 2);
    coded.WriteVarint32(inner_header + zeros);
    coded.WriteTag((1 << 3) | 2);
    coded.WriteVarint32(zeros);
  }
  z_stream z{};
  // 15 window bits: a zlib stream; + 16: a gzip stream.
  int window_bits = wrapper == Wrapper::kGzip ? 15 + 16 : 15;
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  std::string out;
  std::vector<unsigned char> chunk(1 << 20);
  const std::vector<unsigned char> zero_block(1 << 20, 0);
  auto pump = [&](const unsigned char* data, size_t size, int flush) {
    z.next_in = const_cast<unsigned char*>(data);
    z.avail_in = static_cast<uInt>(size);
    do {
      z.next_out = chunk.data();
      z.avail_out = static_cast<uInt>(chunk.size());
      if (deflate(&z, flush) == Z_STREAM_ERROR) return false;
      out.append(reinterpret_cast<char*>(chunk.data()),
                 chunk.size() - z.avail_out);
    } while (z.avail_out == 0);
    return true;
  };
  bool ok = pump(reinterpret_cast<const unsigned char*>(header.data()),
                 header.size(), Z_NO_FLUSH);
  for (uint32_t left = zeros; ok && left > 0;) {
    uint32_t n = std::min<uint32_t>(left, zero_block.size());
    ok = pump(zero_block.data(), n, Z_NO_FLUSH);
    left -= n;
  }
  ok = ok && pump(nullptr, 0, Z_FINISH);
  deflateEnd(&z);
  return ok ? out : "";
}

struct CallResult {
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  bool completed = false;  // false: no answer within the timeout
};

// Calls /compute.v1.Compute/Run on 127.0.0.1:`port` with `body` sent as a
// message already compressed with `algorithm`; waits at most `timeout`.
inline CallResult CallWithCompressedBody(int port, const std::string& body,
                                         grpc_compression_algorithm algorithm,
                                         absl::Duration timeout) {
  grpc_init();
  CallResult result;
  grpc_arg arg;
  arg.type = GRPC_ARG_INTEGER;
  arg.key = const_cast<char*>(GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM);
  arg.value.integer = algorithm;
  grpc_channel_args args = {1, &arg};
  grpc_channel_credentials* credentials = grpc_insecure_credentials_create();
  std::string target = absl::StrCat("127.0.0.1:", port);
  grpc_channel* channel =
      grpc_channel_create(target.c_str(), credentials, &args);
  grpc_channel_credentials_release(credentials);
  grpc_completion_queue* cq = grpc_completion_queue_create_for_next(nullptr);
  gpr_timespec deadline = gpr_time_add(
      gpr_now(GPR_CLOCK_REALTIME),
      gpr_time_from_millis(absl::ToInt64Milliseconds(timeout), GPR_TIMESPAN));
  grpc_call* call = grpc_channel_create_call(
      channel, nullptr, GRPC_PROPAGATE_DEFAULTS, cq,
      grpc_slice_from_static_string("/compute.v1.Compute/Run"), nullptr,
      deadline, nullptr);
  grpc_slice slice = grpc_slice_from_copied_buffer(body.data(), body.size());
  grpc_byte_buffer* request =
      grpc_raw_compressed_byte_buffer_create(&slice, 1, algorithm);
  grpc_slice_unref(slice);
  grpc_metadata_array initial_metadata;
  grpc_metadata_array trailing_metadata;
  grpc_metadata_array_init(&initial_metadata);
  grpc_metadata_array_init(&trailing_metadata);
  grpc_byte_buffer* response = nullptr;
  grpc_slice details = grpc_empty_slice();
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_op ops[6] = {};
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_metadata;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_metadata;
  void* tag = &result;
  if (grpc_call_start_batch(call, ops, 6, tag, nullptr) == GRPC_CALL_OK) {
    // The call's own deadline ends it; a second more is for the event.
    grpc_event event = grpc_completion_queue_next(
        cq, gpr_time_add(deadline, gpr_time_from_seconds(1, GPR_TIMESPAN)),
        nullptr);
    if (event.type == GRPC_OP_COMPLETE) {
      result.completed = true;
      result.code = code;
      char* text = grpc_slice_to_c_string(details);
      result.message = text;
      gpr_free(text);
    } else {
      // Ends the batch, so the queue below can be shut down and drained.
      grpc_call_cancel(call, nullptr);
      grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                 nullptr);
    }
  }
  grpc_slice_unref(details);
  if (response != nullptr) grpc_byte_buffer_destroy(response);
  grpc_byte_buffer_destroy(request);
  grpc_metadata_array_destroy(&initial_metadata);
  grpc_metadata_array_destroy(&trailing_metadata);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    nullptr)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(channel);
  grpc_shutdown();
  return result;
}

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_E2E_COMPRESSED_CALL_H_
