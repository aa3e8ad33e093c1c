// FlagSet: the flags of one compute-client subcommand, bound to plain
// variables and parsed from an argument vector.
//
// Why not absl's global flag registry: the subcommands take different flags
// (`run fib --n 40`, `bench --rate 500`), and tests call the commands
// in-process many times, which global flags would make stateful. Values are
// still parsed by absl's flag marshalling (absl::ParseFlag), so `--deadline
// 250ms` or `--time 1m` read exactly like the server's flags.
//
// Syntax: --name=value, --name value, --bool, --nobool, and `--` to end the
// flags. One or two leading dashes. Anything else is a positional argument,
// wherever it appears. --help and -h are recorded, not errors.
//
// Thread-safety: none; a FlagSet and its variables belong to one thread.
#ifndef COMPUTE_CLIENT_FLAGS_H_
#define COMPUTE_CLIENT_FLAGS_H_

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/flags/marshalling.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/base/flag_text.h"

namespace compute::client {

class FlagSet {
 public:
  // `synopsis` heads Usage(), e.g. "compute-client run <task> [flags]".
  explicit FlagSet(std::string synopsis) : synopsis_(std::move(synopsis)) {}

  // Binds --name to *value; the value it holds now is the default.
  // T is any type absl::ParseFlag knows: bool, integers, double,
  // std::string, absl::Duration.
  template <typename T>
  void Add(std::string name, T* value, std::string help);

  // Parses `args` (no program or subcommand name). Positional arguments are
  // appended to *positional in order. On error, InvalidArgument whose
  // message is one line naming the flag.
  [[nodiscard]] absl::Status Parse(const std::vector<std::string>& args,
                                   std::vector<std::string>* positional);

  // An empty value for --name (`--ca=`, a script's variable that expanded
  // to nothing) is an error, "--name is empty: <reason>", not the flag's
  // default: for a TLS file, the empty default means plaintext or the
  // system's roots, a downgrade the user did not ask for.
  void RefuseEmpty(std::string_view name, std::string reason);

  bool help() const { return help_; }
  // Whether --name appeared on the command line.
  bool Given(std::string_view name) const;
  // The synopsis and every flag with its default and help.
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    bool given = false;
    std::string if_empty;  // RefuseEmpty's reason; empty: allowed
    std::function<bool(std::string_view, std::string*)> parse;
  };
  Flag* Find(std::string_view name);
  absl::Status Set(Flag& flag, std::string_view value);

  std::string synopsis_;
  std::vector<Flag> flags_;
  bool help_ = false;
};

template <typename T>
void FlagSet::Add(std::string name, T* value, std::string help) {
  Flag flag;
  flag.name = std::move(name);
  flag.help = std::move(help);
  flag.default_text = absl::UnparseFlag<T>(*value);
  flag.is_bool = std::is_same_v<T, bool>;
  flag.parse = [value](std::string_view text, std::string* error) {
    if (absl::ParseFlag<T>(absl::string_view(text.data(), text.size()), value,
                           error)) {
      return true;
    }
    if (error->empty()) {
      *error = FlagValueError<T>(absl::string_view(text.data(), text.size()));
    }
    return false;
  };
  flags_.push_back(std::move(flag));
}

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_FLAGS_H_
