#include "server/base/openssl_exit.h"

#include <openssl/crypto.h>

namespace compute::base {

void KeepOpenSslThroughExit() {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
}

}  // namespace compute::base
