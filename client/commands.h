// compute-client's subcommands, callable in-process (the binary's main()
// and the tests both go through Main).
//
// Exit status: 0 success; 1 the call failed (its code and message on
// stderr) or an input/output file failed; 2 bad usage (one line on stderr).
#ifndef COMPUTE_CLIENT_COMMANDS_H_
#define COMPUTE_CLIENT_COMMANDS_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace compute::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct Io {
  std::ostream& out;
  std::ostream& err;
  // bench prints a live line once a second only on a terminal; run blur
  // writes its image to `out` only when it is not one.
  bool out_is_terminal = false;
  // run sha256 hashes `in` when neither --data nor --file is given and it
  // is not a terminal (nullptr: no input).
  std::istream* in = nullptr;
  bool in_is_terminal = true;
};

// `args` excludes the program name: {"run", "fib", "--n", "40"}.
int Main(const std::vector<std::string>& args, const Io& io);

// Each takes the arguments after its own name.
int RunCommand(const std::vector<std::string>& args, const Io& io);
int BatchCommand(const std::vector<std::string>& args, const Io& io);
int HealthCommand(const std::vector<std::string>& args, const Io& io);
int BenchCommand(const std::vector<std::string>& args, const Io& io);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_COMMANDS_H_
