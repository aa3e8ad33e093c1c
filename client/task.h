// The task kinds from the client's side: their command-line flags, the
// RunRequest they make, and how their results are shown.
//
// Flags are shared by `run`, `batch` and `bench` (`run fib --n 40`,
// `bench --task spin --duration 5ms`). The client checks only what it must
// to build a request (files readable, a PGM image well-formed); the limits
// of each field are the server's to enforce, so the two cannot disagree.
// Inputs that may have no end (sha256's file or stdin, blur's pipe) are
// the exception: they are read no further than the server's own limit
// (its constants, shared), and refused past it.
#ifndef COMPUTE_CLIENT_TASK_H_
#define COMPUTE_CLIENT_TASK_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/flags.h"
#include "compute/v1/compute.pb.h"
#include "google/protobuf/struct.pb.h"

namespace compute::client {

inline constexpr const char* kTaskNames =
    "fib, spin, sha256, primes, blur, sleep";

struct TaskFlags {
  uint32_t n = 30;                                   // fib
  absl::Duration duration = absl::Milliseconds(10);  // spin, sleep
  std::string file;                                  // sha256: input file
  std::string data;                                  // sha256: input text
  uint32_t rounds = 1;                               // sha256
  uint64_t limit = 1000000;                          // primes
  std::string in;                                    // blur: input PGM
  std::string out;                                   // blur: output PGM
  uint32_t radius = 1;                               // blur
};

// Which task flags a command takes: `run` all of them (the task picks which
// apply), `bench` all but --out (it never writes a result), `batch` only
// those its arguments do not set (its arguments are each task's main
// parameter: fib's n, spin's duration, ...).
enum class TaskFlagUse { kAll, kBench, kBatch };

void AddTaskFlags(FlagSet& flags, TaskFlags* task,
                  TaskFlagUse use = TaskFlagUse::kAll);

// InvalidArgument naming the first task flag given that belongs to another
// task than `task` ("--duration is spin's and sleep's flag, not fib's"): a flag
// that does not apply is an error, never silently ignored. Also sha256's
// input given twice (--file and --data) or as an empty --file (an unset
// variable in `--file "$F"`: before, the hash of nothing, exit 0).
absl::Status CheckTaskFlags(std::string_view task, const FlagSet& flags,
                            const TaskFlags& values);

// InvalidArgument for an unknown task, missing/conflicting flags, an input
// file that cannot be read ("cannot read PATH: REASON"), or sha256 data over
// the server's limit (a --file is read no further than that). blur: sets
// *input_maxval, when given, to the input image's maxval, for the output
// (--in is read once: it may be a pipe).
absl::StatusOr<compute::v1::RunRequest> BuildRequest(
    std::string_view task, const TaskFlags& flags,
    uint32_t* input_maxval = nullptr);

// "sha256.data must be at most 4194304 bytes (4 MiB)" and then `got`: the
// server's own words, for data refused before it is sent.
absl::Status Sha256TooLong(std::string_view got);

// For `batch fib 40 41`: sets the task's main parameter from one argument
// (fib: n, spin: duration, primes: limit, sha256: data).
absl::Status SetMainArgument(std::string_view task, std::string_view value,
                             TaskFlags* flags);

// "fib(n=40)", "spin(duration=50ms)", "blur(640x480, radius=3)", ...
std::string Describe(const compute::v1::RunRequest& request);
// "102334155", "78498 primes", the hex digest, ... (no image pixels).
std::string ResultText(const compute::v1::RunResponse& response);
// The result message as JSON (proto field names), without image pixels.
google::protobuf::Value ResultJson(const compute::v1::RunResponse& response);

// Writes blur's result to `out` as a PGM with `maxval` (the input's, from
// BuildRequest), its pixels straight from the response.
void WriteResultPgm(uint32_t maxval, const compute::v1::RunResponse& response,
                    std::ostream& out);

// blur with --out: writes the same there. Other tasks: nothing to save.
absl::Status SaveResult(const TaskFlags& flags, uint32_t maxval,
                        const compute::v1::RunRequest& request,
                        const compute::v1::RunResponse& response);

absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_TASK_H_
