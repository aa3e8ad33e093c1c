// OpenSSL's state and process exit.
#pragma once

namespace compute::base {

// Initialises OpenSSL without its exit handler; call it first thing in
// main(), before any thread can touch OpenSSL (the first initialisation's
// options are the ones that count).
//
// Why: OpenSSL 3.0 frees a thread's error state (904 bytes, made by the
// first ERR_* call, which gRPC's TLS code makes on its own threads) when
// that thread ends, through a thread-local key that its exit handler,
// OPENSSL_cleanup, deletes. gRPC's threads still run during exit (its
// shutdown finishes on a thread of its own), and one that ends after the
// handler loses its state: LeakSanitizer then fails the process (CI saw it
// once, in TlsTest). Without the handler the key stays, every thread frees
// its own state, and the kernel takes back the rest at exit.
void KeepOpenSslThroughExit();

}  // namespace compute::base
