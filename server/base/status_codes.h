// How many status codes gRPC (and absl, whose codes are the same numbers)
// has: OK = 0 .. UNAUTHENTICATED = 16. Arrays indexed by a code have this
// many entries (the client's counts by code, the server's metrics).
#ifndef COMPUTE_SERVER_BASE_STATUS_CODES_H_
#define COMPUTE_SERVER_BASE_STATUS_CODES_H_

namespace compute {

inline constexpr int kNumStatusCodes = 17;

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_STATUS_CODES_H_
