#include "server/base/pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/base/file.h"

namespace compute {
namespace {

// Never asks for a passphrase (OpenSSL's default prompts on the terminal):
// gRPC cannot use an encrypted key anyway.
int NoPassphrase(char*, int, int, void*) { return 0; }

bool PemHolds(const std::string& pem, PemKind kind) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  bool ok = false;
  if (kind == PemKind::kKey) {
    EVP_PKEY* key =
        PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr);
    ok = key != nullptr;
    EVP_PKEY_free(key);
  } else {
    int certs = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_free(cert);
      ++certs;
    }
    // The loop ends at the end of the file (no further BEGIN line) or at a
    // block it could not read.
    const unsigned long last = ERR_peek_last_error();
    ok = certs > 0 && ERR_GET_LIB(last) == ERR_LIB_PEM &&
         ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  }
  ERR_clear_error();
  BIO_free(bio);
  return ok;
}

// An ASN1_TIME as "2026-12-04 10:00:00 UTC".
std::string FormatAsn1Time(const ASN1_TIME* t) {
  tm parts{};
  if (ASN1_TIME_to_tm(t, &parts) != 1) return "an unreadable date";
  char text[32];
  strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

// The certificate's subject as one line ("CN=compute, O=example").
std::string Subject(X509* cert) {
  BIO* out = BIO_new(BIO_s_mem());
  if (out == nullptr) return "";
  X509_NAME_print_ex(out, X509_get_subject_name(cert), 0,
                     XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  std::string subject(data, static_cast<size_t>(std::max(0L, size)));
  BIO_free(out);
  return subject;
}

// The first certificate in `pem`, or null; OpenSSL's error queue left
// clear.
std::unique_ptr<X509, decltype(&X509_free)> FirstCertificate(
    const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = bio == nullptr
                   ? nullptr
                   : PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ERR_clear_error();
  return {cert, &X509_free};
}

}  // namespace

std::string CertificateValidityProblem(absl::string_view flag,
                                       const std::string& path,
                                       const std::string& pem, absl::Time now) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return "";
  time_t at = absl::ToTimeT(now);
  std::string problem;
  int index = 0;
  while (problem.empty()) {
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    ++index;
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    const ASN1_TIME* not_before = X509_get0_notBefore(cert);
    std::string when;
    if (X509_cmp_time(not_after, &at) < 0) {
      when = absl::StrCat("expired on ", FormatAsn1Time(not_after));
    } else if (X509_cmp_time(not_before, &at) > 0) {
      when = absl::StrCat("is not valid until ", FormatAsn1Time(not_before));
    }
    if (!when.empty()) {
      problem = absl::StrCat(flag, " ", path, ": certificate ", index, " (",
                             Subject(cert), ") ", when);
    }
    X509_free(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  return problem;
}

std::string ServerCertificatePurposeProblem(absl::string_view flag,
                                            const std::string& path,
                                            const std::string& pem) {
  auto cert = FirstCertificate(pem);
  // OpenSSL's own check of a TLS server's certificate, as its clients
  // (gRPC's included) make it: key usage, extended key usage (serverAuth,
  // or the old SGC ones), Netscape certificate type.
  const bool for_servers =
      cert == nullptr ||
      X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 1;
  ERR_clear_error();
  if (for_servers) return "";
  return absl::StrCat(flag, " ", path, ": certificate 1 (", Subject(cert.get()),
                      ") is not for a TLS server (its key usage or extended "
                      "key usage leaves serverAuth out): TLS clients refuse "
                      "it (a client certificate?)");
}

std::string ClientCaProblem(absl::string_view flag, const std::string& path,
                            const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return "";
  std::unique_ptr<X509, decltype(&X509_free)> first(nullptr, &X509_free);
  bool can_end_a_chain = false;
  while (!can_end_a_chain) {
    std::unique_ptr<X509, decltype(&X509_free)> cert(
        PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), &X509_free);
    if (cert == nullptr) break;
    // Self-signed by its subject, issuer and signature alone:
    // X509_check_issued would also want keyCertSign, which OpenSSL's
    // verification does not ask of a self-signed client certificate.
    can_end_a_chain = X509_check_ca(cert.get()) != 0 ||
                      X509_self_signed(cert.get(), /*verify_signature=*/1) == 1;
    if (first == nullptr) first = std::move(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  if (can_end_a_chain || first == nullptr) return "";
  return absl::StrCat(flag, " ", path,
                      ": no certificate in it is a CA or self-signed "
                      "(certificate 1 (",
                      Subject(first.get()),
                      ") is neither): only a client presenting one of these "
                      "very certificates is accepted (a server or client "
                      "certificate in place of the CA's?)");
}

absl::StatusOr<std::string> ReadPemFile(absl::string_view flag,
                                        const std::string& path, PemKind kind) {
  absl::StatusOr<std::string> pem = ReadFile(path, kMaxPemBytes + 1);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", pem.status().message()));
  }
  const char* want = kind == PemKind::kKey ? "an unencrypted PEM private key"
                                           : "PEM certificates";
  if (pem->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": empty file, want ", want));
  }
  if (pem->size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": over 1 MiB, want ", want));
  }
  if (!PemHolds(*pem, kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": not ", want));
  }
  return pem;
}

absl::Status CheckKeyMatchesCertificate(absl::string_view cert_flag,
                                        const std::string& cert_path,
                                        const std::string& cert_pem,
                                        absl::string_view key_flag,
                                        const std::string& key_path,
                                        const std::string& key_pem) {
  auto cert = FirstCertificate(cert_pem);
  BIO* key_bio =
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key =
      key_bio == nullptr
          ? nullptr
          : PEM_read_bio_PrivateKey(key_bio, nullptr, NoPassphrase, nullptr);
  const bool match = cert != nullptr && key != nullptr &&
                     X509_check_private_key(cert.get(), key) == 1;
  ERR_clear_error();
  EVP_PKEY_free(key);
  BIO_free(key_bio);
  if (match) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(key_flag, " ", key_path,
                   ": not the private key of the first certificate in ",
                   cert_flag, " ", cert_path));
}

}  // namespace compute
