// compute-client: see client/commands.h and `compute-client --help`.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/input_file.h"
#include "grpc/support/log.h"
#include "server/base/openssl_exit.h"

namespace {

// gRPC logs lines of its own for some failures (a TLS handshake) that the
// call's status, printed after them, says again: the client's errors stay
// one line each. GRPC_VERBOSITY or GRPC_TRACE brings gRPC's lines back.
// Its failed assertion (GPR_ASSERT), the line before it aborts, is kept.
void DropGrpcLog(gpr_log_func_args* args) {
  if (std::strncmp(args->message, "assertion failed", 16) == 0) {
    std::fprintf(stderr, "%s:%d] %s\n", args->file, args->line, args->message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  compute::base::KeepOpenSslThroughExit();
  if (std::getenv("GRPC_VERBOSITY") == nullptr &&
      std::getenv("GRPC_TRACE") == nullptr) {
    gpr_set_log_function(DropGrpcLog);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  compute::client::FdInput stdin_buffer(STDIN_FILENO);
  std::istream in(&stdin_buffer);
  compute::client::Io io{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1, &in,
                         isatty(STDIN_FILENO) == 1};
  int status = compute::client::Main(args, io);
  std::cout.flush();
  return status;
}
