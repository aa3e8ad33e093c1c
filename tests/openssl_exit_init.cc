// Linked into every test binary by compute_test (tests/CMakeLists.txt): the
// binaries that run gRPC's TLS in-process initialise OpenSSL the way the
// server's and the client's main() do (server/base/openssl_exit.h says
// why), before main().
#include "server/base/openssl_exit.h"

namespace {

const bool kOpenSslKeptThroughExit =
    (compute::base::KeepOpenSslThroughExit(), true);

}  // namespace
