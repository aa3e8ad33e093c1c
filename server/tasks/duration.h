// The google.protobuf.Duration fields of task requests (spin's and sleep's
// duration): validation with messages that name the field, and conversions.
#ifndef COMPUTE_SERVER_TASKS_DURATION_H_
#define COMPUTE_SERVER_TASKS_DURATION_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace compute::tasks {

// `d` is a well-formed Duration (|nanos| < 1e9, seconds and nanos of one
// sign) within [0, max]; the error names `field` ("spin.duration") and the
// limit. An unset Duration is 0.
[[nodiscard]] absl::Status ValidateDuration(std::string_view field,
                                            const google::protobuf::Duration& d,
                                            absl::Duration max);

absl::Duration FromProto(const google::protobuf::Duration& d);
void ToProto(absl::Duration d, google::protobuf::Duration* out);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_DURATION_H_
