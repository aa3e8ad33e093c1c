// TLS and mutual TLS with certificates made by openssl at run time (no keys
// are committed): a CA, a server certificate for localhost/127.0.0.1 and a
// client certificate (CN only), and some with a SAN, all signed by the CA.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/file.h"
#include "server/pool/sync.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  return ReadFile(p.string()).value_or("");
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl =
        (fs::temp_directory_path() / "computetlsXXXXXX").string();
    dir_ = new fs::path(mkdtemp(tmpl.data()));
    std::string d = dir_->string();
    std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd " + d +
        "; exec >openssl.log 2>&1;"
        "openssl req -x509 " +
        ec +
        " -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=compute-test-ca;"
        "openssl req " +
        ec +
        " -keyout server.key -out server.csr "
        "-subj /CN=localhost;"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out server.pem -days 1 -extfile san.ext;"
        "openssl req " +
        ec +
        " -keyout client.key -out client.csr "
        "-subj /CN=compute-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 1;"
        "openssl req " +
        ec +
        " -keyout team.key -out team.csr "
        "-subj /CN=team-cn;"
        "printf 'subjectAltName=DNS:team-a.example' > team.ext;"
        "openssl x509 -req -in team.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out team.pem -days 1 -extfile team.ext;"
        // Names no tenant may be as they are: a CN in UTF-8 (no SAN), and
        // a SAN of 200 bytes.
        "openssl req -utf8 " +
        ec +
        " -keyout zoe.key -out zoe.csr "
        "-subj /CN=Zo\xc3\xab;"
        "openssl x509 -req -in zoe.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out zoe.pem -days 1;"
        "openssl req " +
        ec +
        " -keyout long.key -out long.csr "
        "-subj /CN=long-cn;"
        "printf 'subjectAltName=DNS:" +
        std::string(192, 'a') +
        ".example' > long.ext;"
        "openssl x509 -req -in long.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out long.pem -days 1 -extfile long.ext;"
        // Verified, but naming no one: no CN, no SAN.
        "openssl req " +
        ec +
        " -keyout nameless.key -out nameless.csr "
        "-subj /O=NoNameOrg;"
        "openssl x509 -req -in nameless.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out nameless.pem -days 1;"
        // The server's key and names, made for clients only.
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
        "extendedKeyUsage=clientAuth' > clientonly.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out clientonly.pem -days 1 -extfile clientonly.ext";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0)
        << Read(*dir_ / "openssl.log");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::string Path(const std::string& name) {
    return (*dir_ / name).string();
  }

  std::unique_ptr<service::ComputeServer> StartTls(
      bool mutual, service::TenantObserver* tenants = nullptr) {
    service::ServerConfig config = LocalConfig(1, 4);
    config.trust_tenant_header = true;  // a certificate still wins
    config.tenant_observer = tenants;
    config.tls_cert = Path("server.pem");
    config.tls_key = Path("server.key");
    if (mutual) config.tls_client_ca = Path("ca.pem");
    return StartServer(config);
  }

  // `client`: the client certificate's file name stem ("client", "team"),
  // or nullptr for none.
  // `tenant_headers`: the compute-tenant values the call sends.
  grpc::Status CallFib(int port, bool with_client_cert,
                       const char* client = "client",
                       const std::vector<std::string>& tenant_headers = {
                           "claimed-by-header"}) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read(Path("ca.pem"));
    if (with_client_cert) {
      options.pem_private_key = Read(Path(absl::StrCat(client, ".key")));
      options.pem_cert_chain = Read(Path(absl::StrCat(client, ".pem")));
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto channel = grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(options), args);
    auto stub = compute::v1::Compute::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    for (const std::string& value : tenant_headers) {
      context.AddMetadata("compute-tenant", value);
    }
    compute::v1::RunResponse response;
    grpc::Status s = stub->Run(&context, Fib(10), &response);
    if (s.ok()) {
      EXPECT_EQ(response.fib().value(), 55u);
    }
    return s;
  }

  static fs::path* dir_;
};

fs::path* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, TlsHandshakeAndCall) {
  auto server = StartTls(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/false).ok());
}

// A server certificate made for clients only (extendedKeyUsage=clientAuth)
// is a start-up warning naming it: every TLS client refuses it, as the call
// here shows, while the server seems to serve (before 2026-12-07 it started
// without a word). A certificate with no extended key usage says nothing.
TEST_F(TlsTest, AServerCertificateForClientsOnlyIsWarnedOf) {
  auto fine = StartTls(/*mutual=*/false);
  ASSERT_NE(fine, nullptr);
  EXPECT_TRUE(fine->start_warnings().empty());
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("clientonly.pem");
  config.tls_key = Path("server.key");
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(server->start_warnings().size(), 1u);
  EXPECT_THAT(server->start_warnings()[0],
              ::testing::HasSubstr(
                  "is not for a TLS server (its key usage or extended key "
                  "usage leaves serverAuth out)"));
  EXPECT_EQ(CallFib(server->port(), /*with_client_cert=*/false).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// A client CA file holding no CA's certificate (here the server's own, a
// leaf the CA signed) is a start-up warning naming it: every mTLS client is
// refused, as the call here shows, while the server seems to serve (before
// 2026-12-07 it started without a word). The CA's own says nothing.
TEST_F(TlsTest, AClientCaFileWithNoCaIsWarnedOf) {
  auto fine = StartTls(/*mutual=*/true);
  ASSERT_NE(fine, nullptr);
  EXPECT_TRUE(fine->start_warnings().empty());
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("server.pem");
  config.tls_key = Path("server.key");
  config.tls_client_ca = Path("server.pem");
  config.tls_client_ca_name = "--tls_client_ca";
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(server->start_warnings().size(), 1u);
  EXPECT_THAT(
      server->start_warnings()[0],
      ::testing::HasSubstr("--tls_client_ca " + Path("server.pem") +
                           ": no certificate in it is a CA or self-signed"));
  EXPECT_EQ(CallFib(server->port(), /*with_client_cert=*/true).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, PlaintextClientIsRefusedByTlsServer) {
  auto server = StartTls(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  compute::v1::RunResponse response;
  EXPECT_FALSE(stub->Run(&context, Fib(10), &response).ok());
}

TEST_F(TlsTest, MutualTlsAcceptsAClientCertificateSignedByTheCa) {
  auto server = StartTls(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/true).ok());
}

// The tenants the service resolved, in call order.
class TenantLog final : public service::TenantObserver {
 public:
  void OnTenantTask(std::string_view tenant, TaskOutcome, absl::Duration,
                    absl::Duration) override {
    MutexLock lock(&mu_);
    tenants_.emplace_back(tenant);
  }
  void OnTenantRejected(std::string_view tenant, absl::Duration) override {
    MutexLock lock(&mu_);
    tenants_.emplace_back(tenant);
  }
  std::vector<std::string> tenants() {
    MutexLock lock(&mu_);
    return tenants_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> tenants_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TlsTest, TheVerifiedCertificateNamesTheTenantNotTheHeader) {
  TenantLog log;
  auto server = StartTls(/*mutual=*/true, &log);
  ASSERT_NE(server, nullptr);
  // Its SAN names the tenant; without a SAN, its CN.
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/true, "team").ok());
  EXPECT_TRUE(
      CallFib(server->port(), /*with_client_cert=*/true, "client").ok());
  EXPECT_EQ(log.tenants(), (std::vector<std::string>{"team-a.example",
                                                     "compute-test-client"}));
}

// The header is not read when a certificate names the tenant, so what it
// holds refuses nothing then (before 2026-12-06 a header sent twice was
// refused under mutual TLS too); without a certificate it is refused.
TEST_F(TlsTest, AHeaderNotReadUnderACertificateRefusesNothing) {
  TenantLog log;
  auto server = StartTls(/*mutual=*/true, &log);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(
      CallFib(server->port(), /*with_client_cert=*/true, "team", {"a", "b"})
          .ok());
  EXPECT_TRUE(
      CallFib(server->port(), /*with_client_cert=*/true, "team", {"mine,proxy"})
          .ok());
  EXPECT_EQ(log.tenants(),
            (std::vector<std::string>{"team-a.example", "team-a.example"}));
  auto one_way = StartTls(/*mutual=*/false);
  ASSERT_NE(one_way, nullptr);
  EXPECT_EQ(
      CallFib(one_way->port(), /*with_client_cert=*/false, "client", {"a", "b"})
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
}

// A certificate's name becomes a tenant as the header's must be: at most
// 128 bytes of printable ASCII (other bytes '?'), so that it is a label
// value Prometheus takes.
TEST_F(TlsTest, ACertificatesNameIsMadeAPrintableTenant) {
  TenantLog log;
  auto server = StartTls(/*mutual=*/true, &log);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/true, "zoe").ok());
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/true, "long").ok());
  EXPECT_EQ(log.tenants(),
            (std::vector<std::string>{"Zo??", std::string(128, 'a')}));
}

// A verified certificate that names no one (no SAN, no CN) does not let
// its caller choose a tenant by the header: it is its peer address's, as
// for a caller the header is not trusted from. Until 2026-12-06 the header
// was read for it, and any holder of such a certificate from the trusted CA
// could take another tenant's share and weight (a review's finding).
TEST_F(TlsTest, ACertificateNamingNoOneDoesNotChooseItsTenantByHeader) {
  TenantLog log;
  auto server = StartTls(/*mutual=*/true, &log);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(
      CallFib(server->port(), /*with_client_cert=*/true, "nameless").ok());
  // Nor is the header checked: it is not read.
  EXPECT_TRUE(
      CallFib(server->port(), /*with_client_cert=*/true, "nameless", {"a", "b"})
          .ok());
  EXPECT_EQ(log.tenants(),
            (std::vector<std::string>{"127.0.0.1", "127.0.0.1"}));
}

TEST_F(TlsTest, WithoutAClientCertificateTheTrustedHeaderNamesTheTenant) {
  TenantLog log;
  auto server = StartTls(/*mutual=*/false, &log);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CallFib(server->port(), /*with_client_cert=*/false).ok());
  EXPECT_EQ(log.tenants(), (std::vector<std::string>{"claimed-by-header"}));
}

TEST_F(TlsTest, MutualTlsRefusesAClientWithoutCertificate) {
  auto server = StartTls(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  grpc::Status s = CallFib(server->port(), /*with_client_cert=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsTest, UnreadableCertificateIsAClearStartError) {
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("missing.pem");
  config.tls_key = Path("server.key");
  auto server = service::ComputeServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("tls_cert"), std::string::npos);
}

// An empty or malformed PEM stops start-up with a line that names the flag
// and the file. Before, a malformed one said "cannot listen on ADDRESS (in
// use, or not an address of this host)" after gRPC's log lines, and an
// empty --tls_client_ca started a server that refused every client.
TEST_F(TlsTest, EmptyOrMalformedPemFilesAreClearStartErrors) {
  const std::string empty = Path("empty.pem");
  const std::string text = Path("text.pem");
  ASSERT_TRUE(WriteFile(empty, "").ok());
  ASSERT_TRUE(WriteFile(text, "not a certificate\n").ok());
  struct Case {
    std::string cert, key, client_ca, expect;
  };
  const Case cases[] = {
      {empty, Path("server.key"), "",
       "--tls_cert " + empty + ": empty file, want PEM certificates"},
      {text, Path("server.key"), "",
       "--tls_cert " + text + ": not PEM certificates"},
      {Path("server.pem"), Path("server.pem"), "",
       "--tls_key " + Path("server.pem") +
           ": not an unencrypted PEM private key"},
      {Path("server.pem"), Path("server.key"), empty,
       "--tls_client_ca " + empty + ": empty file, want PEM certificates"},
      // A key that is one, but another certificate's: before, exit 1 after
      // gRPC's "Invalid private key." and "cannot listen on ... (in use, or
      // not an address of this host)".
      {Path("server.pem"), Path("ca.key"), "",
       "--tls_key " + Path("ca.key") +
           ": not the private key of the first certificate in --tls_cert " +
           Path("server.pem")},
  };
  for (const Case& c : cases) {
    service::ServerConfig config = LocalConfig(1, 4);
    config.tls_cert = c.cert;
    config.tls_key = c.key;
    config.tls_client_ca = c.client_ca;
    auto server = service::ComputeServer::Start(config);
    ASSERT_FALSE(server.ok()) << c.expect;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(server.status().message(), c.expect);
  }

  // Set by COMPUTE_ variables (a ConfigMap's): the line names those.
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("server.pem");
  config.tls_key = Path("ca.key");
  config.tls_cert_name = "COMPUTE_TLS_CERT";
  config.tls_key_name = "COMPUTE_TLS_KEY";
  auto server = service::ComputeServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().message(),
            "COMPUTE_TLS_KEY " + Path("ca.key") +
                ": not the private key of the first certificate in "
                "COMPUTE_TLS_CERT " +
                Path("server.pem"));
}

}  // namespace
}  // namespace compute::testing
