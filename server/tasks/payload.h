// payload: a request's large bytes field when the service received it
// without copying it into the RunRequest (server/service/wire.h): the pieces
// of gRPC's receive buffers that hold it, in order. Only blur's pixels
// arrive this way (request.blur().pixels() is then empty); every other
// request, and a blur whose pixels are in the request, has an empty one.
// The pieces stay valid while the task runs (the call holds the buffers).
#ifndef COMPUTE_SERVER_TASKS_PAYLOAD_H_
#define COMPUTE_SERVER_TASKS_PAYLOAD_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace compute::tasks {

using Payload = absl::Span<const absl::string_view>;

// The payload's length in bytes.
inline size_t PayloadSize(Payload payload) {
  size_t size = 0;
  for (absl::string_view piece : payload) size += piece.size();
  return size;
}

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_PAYLOAD_H_
