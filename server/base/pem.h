// PEM files for TLS, read and checked before gRPC sees them: gRPC's own way
// to report a bad one is a handful of log lines, then, on a server,
// "cannot listen on ADDRESS (in use, or not an address of this host)", and
// on a client UNAVAILABLE "empty address list" at the first call. And an
// empty CA file is no error to gRPC at all: a client then trusts the
// system's roots, a server refuses every client certificate.
#ifndef COMPUTE_SERVER_BASE_PEM_H_
#define COMPUTE_SERVER_BASE_PEM_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace compute {

// What a PEM file must hold: one certificate or more and nothing malformed
// (a chain, a CA bundle), or one unencrypted private key.
enum class PemKind { kCertificates, kKey };

// A PEM file is small (a bundle of every public root is ~200 KiB); the
// limit keeps `/dev/zero` from being read to the end of memory.
inline constexpr size_t kMaxPemBytes = size_t{1} << 20;

// The file named by `flag` (for the message: "--ca", "--tls_cert"), read and
// checked to hold `kind`. InvalidArgument, naming the flag and the path:
// "--ca ca.pem: empty file, want PEM certificates", "... not an unencrypted
// PEM private key", "... over 1 MiB", or the file's read error.
absl::StatusOr<std::string> ReadPemFile(absl::string_view flag,
                                        const std::string& path, PemKind kind);

// Checks that `key_pem` (read from key_flag's `key_path`) is the private key
// of the first certificate in `cert_pem` (cert_flag's `cert_path`), both
// already checked by ReadPemFile. gRPC finds a mismatch only when it builds
// its TLS context, and says so as on a malformed file (see above).
// InvalidArgument: "--tls_key k.pem: not the private key of the first
// certificate in --tls_cert c.pem".
absl::Status CheckKeyMatchesCertificate(absl::string_view cert_flag,
                                        const std::string& cert_path,
                                        const std::string& cert_pem,
                                        absl::string_view key_flag,
                                        const std::string& key_path,
                                        const std::string& key_pem);

// Whether every certificate in `pem` (checked by ReadPemFile; flag's
// `path`) is valid at `now`: "" if so, else one line for a start-up
// warning, naming the first that is not: "--tls_cert c.pem: certificate 1
// (CN = compute) expired on 2026-12-04 10:00:00 UTC". Not an error: a server
// started before its new certificate arrives should still start (and its
// clients see the handshake fail), but the log then says why.
std::string CertificateValidityProblem(absl::string_view flag,
                                       const std::string& path,
                                       const std::string& pem, absl::Time now);

// Whether the first certificate in `pem` (checked by ReadPemFile; flag's
// `path`), a server's own, may serve TLS by OpenSSL's purpose check (key
// usage, extended key usage, Netscape type; no extensions is fine): "" if
// so, else one line for a start-up warning: "--tls_cert c.pem: certificate
// 1 (CN = compute) is not for a TLS server (its key usage or extended key
// usage leaves serverAuth out): TLS clients refuse it (a client
// certificate?)".
// Clients then fail every handshake ("unsupported certificate purpose")
// while the server seems to serve. A warning, as for validity: a client
// that does not check the purpose still works.
std::string ServerCertificatePurposeProblem(absl::string_view flag,
                                            const std::string& path,
                                            const std::string& pem);

// Whether `pem` (checked by ReadPemFile; flag's `path`), a server's client
// CA file, holds a certificate that can issue clients' certificates (a
// CA's, by OpenSSL's X509_check_ca) or is self-signed (a client's own,
// pinned). "" if so, else one line for a start-up warning: "--tls_client_ca
// ca.pem: no certificate in it is a CA or self-signed (certificate 1 (CN =
// compute) is neither): only a client presenting one of these very
// certificates is accepted (a server or client certificate in place of the
// CA's?)". (gRPC 1.51 verifies with OpenSSL's partial chains, so a pinned
// leaf does admit its own holder.) A warning, as above; before 2026-12-07
// a server given its own certificate here started without a word and
// refused every mTLS client, which saw only "Socket closed".
std::string ClientCaProblem(absl::string_view flag, const std::string& path,
                            const std::string& pem);

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_PEM_H_
