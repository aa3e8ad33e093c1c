#include "client/task.h"

#include <type_traits>

#include "absl/flags/marshalling.h"
#include "absl/strings/str_cat.h"
#include "client/format.h"
#include "client/input_file.h"
#include "client/pgm.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "server/base/flag_text.h"
#include "server/base/string_view.h"
// For kMaxSha256DataBytes alone (a constant: nothing of compute_tasks is
// linked).
#include "server/tasks/sha256.h"

namespace compute::client {
namespace {

using ::compute::v1::RunRequest;
using ::compute::v1::RunResponse;
using ::google::protobuf::util::TimeUtil;

absl::Status UnknownTask(std::string_view task) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown task '", AbslView(task), "' (one of: ", kTaskNames, ")"));
}

// Every task flag, the tasks it belongs to (one, or two for --duration),
// whether `batch` takes it (its arguments set each task's main parameter
// instead: fib's n, spin's and sleep's duration, primes' limit, sha256's
// data; it runs no blur), and whether `bench` does (it never writes a
// result, so no --out).
struct TaskFlag {
  const char* name;
  const char* task;
  bool batch;
  const char* other_task = nullptr;
  bool bench = true;
};
constexpr TaskFlag kTaskFlags[] = {
    {"n", "fib", false},
    {"duration", "spin", false, "sleep"},
    {"file", "sha256", false},
    {"data", "sha256", false},
    {"rounds", "sha256", true},
    {"limit", "primes", false},
    {"in", "blur", false},
    {"out", "blur", false, nullptr, /*bench=*/false},
    {"radius", "blur", false},
};

bool Owns(const TaskFlag& f, std::string_view task) {
  return task == f.task || (f.other_task != nullptr && task == f.other_task);
}

// A finite --duration as a request's Duration.
absl::Status SetDuration(absl::Duration duration,
                         google::protobuf::Duration* out) {
  if (duration == absl::InfiniteDuration() ||
      duration == -absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--duration must be finite (got ",
                     absl::FormatDuration(duration), ")"));
  }
  *out = TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
  return absl::OkStatus();
}

bool Takes(TaskFlagUse use, std::string_view name) {
  for (const TaskFlag& f : kTaskFlags) {
    if (f.name != name) continue;
    switch (use) {
      case TaskFlagUse::kAll:
        return true;
      case TaskFlagUse::kBatch:
        return f.batch;
      case TaskFlagUse::kBench:
        return f.bench;
    }
  }
  return false;
}

}  // namespace

absl::Status Sha256TooLong(std::string_view got) {
  return absl::InvalidArgumentError(
      absl::StrCat("sha256.data must be at most ", tasks::kMaxSha256DataBytes,
                   " bytes (4 MiB)", AbslView(got)));
}

void AddTaskFlags(FlagSet& flags, TaskFlags* task, TaskFlagUse use) {
  auto add = [&](const char* name, auto* value, const char* help) {
    if (!Takes(use, name)) return;
    flags.Add(name, value, help);
  };
  add("n", &task->n, "fib: which Fibonacci number");
  add("duration", &task->duration,
      "spin: how long to burn a CPU; sleep: how long to hold a worker");
  add("file", &task->file, "sha256: file to hash");
  add("data", &task->data, "sha256: text to hash (instead of --file)");
  add("rounds", &task->rounds, "sha256: hash rounds");
  add("limit", &task->limit, "primes: count primes up to this");
  add("in", &task->in, "blur: input image, binary PGM (P5)");
  add("out", &task->out,
      "blur: where to write the blurred PGM (default: stdout, when it is "
      "not a terminal)");
  add("radius", &task->radius, "blur: box radius in pixels");
}

absl::Status CheckTaskFlags(std::string_view task, const FlagSet& flags,
                            const TaskFlags& values) {
  for (const TaskFlag& f : kTaskFlags) {
    if (flags.Given(f.name) && !Owns(f, task)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", f.name, " is ", f.task, "'s",
          f.other_task != nullptr ? absl::StrCat(" and ", f.other_task, "'s")
                                  : "",
          " flag, not ", AbslView(task), "'s"));
    }
  }
  if (flags.Given("file") && flags.Given("data")) {
    return absl::InvalidArgumentError(
        "sha256 takes --file or --data, not both");
  }
  if (flags.Given("file") && values.file.empty()) {
    return absl::InvalidArgumentError("--file: empty path");
  }
  // An empty --out (--out="$OUT" with OUT unset) is not "no --out": that
  // would write the image to stdout.
  if (flags.Given("out") && values.out.empty()) {
    return absl::InvalidArgumentError("--out: empty path");
  }
  if (flags.Given("in") && values.in.empty()) {
    return absl::InvalidArgumentError("--in: empty path");
  }
  return absl::OkStatus();
}

absl::StatusOr<RunRequest> BuildRequest(std::string_view task,
                                        const TaskFlags& flags,
                                        uint32_t* input_maxval) {
  RunRequest request;
  if (task == "fib") {
    request.mutable_fib()->set_n(flags.n);
  } else if (task == "spin") {
    absl::Status set =
        SetDuration(flags.duration, request.mutable_spin()->mutable_duration());
    if (!set.ok()) return set;
  } else if (task == "sleep") {
    absl::Status set = SetDuration(flags.duration,
                                   request.mutable_sleep()->mutable_duration());
    if (!set.ok()) return set;
  } else if (task == "sha256") {
    if (!flags.file.empty() && !flags.data.empty()) {
      return absl::InvalidArgumentError(
          "sha256 takes --file or --data, not both");
    }
    auto* sha = request.mutable_sha256();
    // The server's limit, checked here: a file of more is never read
    // whole (--file /dev/zero has no end).
    const size_t limit = tasks::kMaxSha256DataBytes;
    if (!flags.file.empty()) {
      absl::StatusOr<std::string> data = ReadInputFile(flags.file, limit + 1);
      if (!data.ok()) return data.status();
      if (data->size() > limit) {
        return Sha256TooLong(
            absl::StrCat(": --file ", flags.file, " has more"));
      }
      sha->set_data(*std::move(data));
    } else {
      if (flags.data.size() > limit) {
        return Sha256TooLong(
            absl::StrCat(" (got ", flags.data.size(), " bytes)"));
      }
      sha->set_data(flags.data);
    }
    sha->set_rounds(flags.rounds);
  } else if (task == "primes") {
    request.mutable_primes()->set_limit(flags.limit);
  } else if (task == "blur") {
    if (flags.in.empty()) {
      return absl::InvalidArgumentError("blur needs --in image.pgm");
    }
    absl::StatusOr<GrayImage> image = ReadPgm(flags.in);
    if (!image.ok()) return image.status();
    auto* blur = request.mutable_blur();
    blur->set_width(image->width);
    blur->set_height(image->height);
    blur->set_pixels(std::move(image->pixels));
    blur->set_radius(flags.radius);
    if (input_maxval != nullptr) *input_maxval = image->maxval;
  } else {
    return UnknownTask(task);
  }
  return request;
}

absl::Status SetMainArgument(std::string_view task, std::string_view value,
                             TaskFlags* flags) {
  std::string error;
  absl::string_view text = AbslView(value);
  // As `run`'s flags say it (flags.h): what a value looks like, or the
  // type's range for a number outside it.
  auto parse = [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    if (absl::ParseFlag<T>(text, out, &error)) return true;
    error = FlagValueError<T>(text);
    return false;
  };
  bool ok = true;
  if (task == "fib") {
    ok = parse(&flags->n);
  } else if (task == "spin" || task == "sleep") {
    ok = parse(&flags->duration);
    if (ok && (flags->duration == absl::InfiniteDuration() ||
               flags->duration == -absl::InfiniteDuration())) {
      ok = false;  // as BuildRequest would, but naming the argument
      error = "a task's duration must be finite";
    }
  } else if (task == "primes") {
    ok = parse(&flags->limit);
  } else if (task == "sha256") {
    flags->data = std::string(value);
  } else if (task == "blur") {
    return absl::InvalidArgumentError("batch does not take blur");
  } else {
    return UnknownTask(task);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad ", AbslView(task), " argument '", text, "': ", error));
  }
  return absl::OkStatus();
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string Describe(const RunRequest& request) {
  switch (request.task_case()) {
    case RunRequest::kFib:
      return absl::StrCat("fib(n=", request.fib().n(), ")");
    case RunRequest::kSpin:
      return absl::StrCat(
          "spin(duration=", HumanDuration(FromProto(request.spin().duration())),
          ")");
    case RunRequest::kSleep:
      return absl::StrCat("sleep(duration=",
                          HumanDuration(FromProto(request.sleep().duration())),
                          ")");
    case RunRequest::kSha256:
      return absl::StrCat("sha256(", request.sha256().data().size(),
                          " bytes, rounds=", request.sha256().rounds(), ")");
    case RunRequest::kPrimes:
      return absl::StrCat("primes(limit=", request.primes().limit(), ")");
    case RunRequest::kBlur:
      return absl::StrCat("blur(", request.blur().width(), "x",
                          request.blur().height(),
                          ", radius=", request.blur().radius(), ")");
    case RunRequest::TASK_NOT_SET:
      break;
  }
  return "(no task)";
}

std::string ResultText(const RunResponse& response) {
  switch (response.result_case()) {
    case RunResponse::kFib:
      return absl::StrCat(response.fib().value());
    case RunResponse::kSpin:
      return absl::StrCat("spun ",
                          HumanDuration(FromProto(response.spin().spun())));
    case RunResponse::kSleep:
      return absl::StrCat("slept ",
                          HumanDuration(FromProto(response.sleep().slept())));
    case RunResponse::kSha256:
      return response.sha256().hex();
    case RunResponse::kPrimes:
      return absl::StrCat(response.primes().count(), " primes");
    case RunResponse::kBlur:
      return absl::StrCat(response.blur().width(), "x",
                          response.blur().height(), " image");
    case RunResponse::RESULT_NOT_SET:
      break;
  }
  return "(no result)";
}

google::protobuf::Value ResultJson(const RunResponse& response) {
  google::protobuf::Value value;
  // The result's own message ({"value":"55"} of fib), every field printed:
  // a zero (fib(0), no primes below 2) is a result, not an absent one
  // (until 2026-12-04 they printed as {}).
  const google::protobuf::FieldDescriptor* field =
      response.GetReflection()->GetOneofFieldDescriptor(
          response, RunResponse::descriptor()->FindOneofByName("result"));
  if (field == nullptr) return value;
  std::string json;
  if (response.has_blur()) {
    // The image goes to --out or stdout, not into the JSON.
    compute::v1::BlurResult shape;
    shape.set_width(response.blur().width());
    shape.set_height(response.blur().height());
    json = ToJsonWithZeros(shape);
  } else {
    json =
        ToJsonWithZeros(response.GetReflection()->GetMessage(response, field));
  }
  if (!google::protobuf::util::JsonStringToMessage(json,
                                                   value.mutable_struct_value())
           .ok()) {
    return google::protobuf::Value();
  }
  if (response.has_blur()) {
    value.mutable_struct_value()->mutable_fields()->erase("pixels");
  }
  return value;
}

void WriteResultPgm(uint32_t maxval, const RunResponse& response,
                    std::ostream& out) {
  const auto& blur = response.blur();
  WritePgm(out, blur.width(), blur.height(), maxval, blur.pixels());
}

absl::Status SaveResult(const TaskFlags& flags, uint32_t maxval,
                        const RunRequest& request,
                        const RunResponse& response) {
  if (!request.has_blur() || flags.out.empty()) return absl::OkStatus();
  const auto& blur = response.blur();
  return WritePgm(flags.out, blur.width(), blur.height(), maxval,
                  blur.pixels());
}

}  // namespace compute::client
