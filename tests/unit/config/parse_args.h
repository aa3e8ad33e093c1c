// ParseConfig from an argument list and a map of environment variables, for
// the config tests and the config fuzzer.
#ifndef COMPUTE_TESTS_UNIT_CONFIG_PARSE_ARGS_H_
#define COMPUTE_TESTS_UNIT_CONFIG_PARSE_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/config.h"

namespace compute::testing {

// `args` without the program name; `env` stands for the process
// environment; `cpu` for the machine.
inline absl::StatusOr<Config> ParseArgs(
    const std::vector<std::string>& args,
    const std::map<std::string, std::string>& env, const CpuCountSources& cpu) {
  std::vector<const char*> argv = {"compute-server"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseConfig(
      static_cast<int>(argv.size()), argv.data(),
      [&](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      },
      cpu);
}

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_UNIT_CONFIG_PARSE_ARGS_H_
