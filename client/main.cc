// compute-client: see client/commands.h and `compute-client --help`.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "client/commands.h"
#include "server/base/openssl_exit.h"

int main(int argc, char** argv) {
  compute::base::KeepOpenSslThroughExit();
  std::vector<std::string> args(argv + 1, argv + argc);
  compute::client::Io io{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1,
                         &std::cin, isatty(STDIN_FILENO) == 1};
  int status = compute::client::Main(args, io);
  std::cout.flush();
  return status;
}
