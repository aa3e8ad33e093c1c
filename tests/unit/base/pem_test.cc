// CertificateValidityProblem: a certificate expired, or not valid yet, is
// named with its dates for the start-up log; valid ones say nothing.
#include "server/base/pem.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// One time for the certificates and the checks (the dates would differ if
// midnight passed between two reads of the clock).
const absl::Time kNow = absl::Now();

// A self-signed certificate for CN=`name`, valid from kNow + `from` to kNow
// + `to`, as PEM; with `purposes` ("clientAuth", "serverAuth,clientAuth"),
// an extended key usage naming them; with `key_usage` ("keyCertSign"), a
// key usage.
std::string Certificate(const std::string& name, absl::Duration from,
                        absl::Duration to, const char* purposes = nullptr,
                        const char* key_usage = nullptr) {
  time_t now = absl::ToTimeT(kNow);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_time_adj(X509_getm_notBefore(cert), absl::ToInt64Seconds(from), &now);
  X509_time_adj(X509_getm_notAfter(cert), absl::ToInt64Seconds(to), &now);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(
      subject, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509_set_pubkey(cert, key);
  if (purposes != nullptr) {
    X509_EXTENSION* eku =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_ext_key_usage, purposes);
    X509_add_ext(cert, eku, -1);
    X509_EXTENSION_free(eku);
  }
  if (key_usage != nullptr) {
    X509_EXTENSION* ku =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage, key_usage);
    X509_add_ext(cert, ku, -1);
    X509_EXTENSION_free(ku);
  }
  X509_sign(cert, key, EVP_sha256());
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(out, cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(out);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

TEST(CertificateValidityTest, ValidCertificatesSayNothing) {
  const std::string pem =
      Certificate("a", -absl::Hours(1), absl::Hours(24)) +
      Certificate("b", -absl::Hours(24), absl::Hours(24 * 365));
  EXPECT_EQ(CertificateValidityProblem("--tls_cert", "c.pem", pem, kNow), "");
}

TEST(CertificateValidityTest, AnExpiredOneIsNamedWithItsDate) {
  const std::string pem =
      Certificate("ok", -absl::Hours(1), absl::Hours(24)) +
      Certificate("compute", -absl::Hours(48), -absl::Hours(24));
  const std::string problem =
      CertificateValidityProblem("--tls_cert", "c.pem", pem, kNow);
  EXPECT_THAT(problem, MatchesRegex("--tls_cert c.pem: certificate 2 "
                                    "\\(CN = compute\\) expired on "
                                    "[0-9]{4}-[0-9]{2}-[0-9]{2} "
                                    "[0-9:]{8} UTC"));
  EXPECT_THAT(problem,
              HasSubstr(absl::FormatTime("%Y-%m-%d", kNow - absl::Hours(24),
                                         absl::UTCTimeZone())));
}

TEST(CertificateValidityTest, OneNotValidYetSaysFromWhen) {
  const std::string pem = Certificate("later", absl::Hours(2), absl::Hours(48));
  EXPECT_THAT(
      CertificateValidityProblem("COMPUTE_TLS_CLIENT_CA", "ca.pem", pem, kNow),
      HasSubstr("COMPUTE_TLS_CLIENT_CA ca.pem: certificate 1 (CN = later) is "
                "not valid until "));
  // The same one, seen from three hours on, is valid.
  EXPECT_EQ(CertificateValidityProblem("--tls_cert", "c.pem", pem,
                                       kNow + absl::Hours(3)),
            "");
}

// A server certificate made for clients (clientAuth only) is named: every
// TLS client would refuse it ("unsupported certificate purpose") while the
// server seemed to serve (a review's finding: it started without a word).
TEST(ServerCertificatePurposeTest, AClientOnlyCertificateIsNamed) {
  const absl::Duration day = absl::Hours(24);
  for (const char* fine : {static_cast<const char*>(nullptr), "serverAuth",
                           "serverAuth,clientAuth"}) {
    EXPECT_EQ(ServerCertificatePurposeProblem(
                  "--tls_cert", "c.pem", Certificate("ok", -day, day, fine)),
              "")
        << (fine != nullptr ? fine : "no extended key usage");
  }
  EXPECT_EQ(ServerCertificatePurposeProblem(
                "--tls_cert", "c.pem",
                Certificate("compute", -day, day, "clientAuth")),
            "--tls_cert c.pem: certificate 1 (CN = compute) is not for a TLS "
            "server (its key usage or extended key usage leaves serverAuth "
            "out): TLS clients refuse it (a client certificate?)");
  // A key usage that serves no TLS server (a CA's key) is named too; the
  // old SGC extended key usage, which OpenSSL's clients accept, is not.
  EXPECT_NE(ServerCertificatePurposeProblem(
                "--tls_cert", "c.pem",
                Certificate("ca", -day, day, nullptr, "keyCertSign")),
            "");
  EXPECT_EQ(ServerCertificatePurposeProblem(
                "--tls_cert", "c.pem", Certificate("sgc", -day, day, "nsSGC")),
            "");
}

// A self-signed certificate in a client CA file (a client's own, pinned)
// can end a verified chain: not named. (One that is neither a CA's nor
// self-signed is: TlsTest.AClientCaFileWithNoCaIsWarnedOf.)
// Also one whose key usage leaves keyCertSign out (as Go's generate_cert
// and step make them): OpenSSL's verification does not ask it of a
// self-signed client certificate (X509_check_issued does).
TEST(ClientCaProblemTest, ASelfSignedCertificateIsNotNamed) {
  const absl::Duration day = absl::Hours(24);
  EXPECT_EQ(ClientCaProblem("--tls_client_ca", "ca.pem",
                            Certificate("pinned", -day, day, "clientAuth")),
            "");
  EXPECT_EQ(ClientCaProblem("--tls_client_ca", "ca.pem",
                            Certificate("pinned", -day, day, "clientAuth",
                                        "digitalSignature")),
            "");
}

}  // namespace
}  // namespace compute
