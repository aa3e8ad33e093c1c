// --tls/--ca/--cert/--key against a mutual-TLS server, with certificates
// made by openssl at run time (no keys are committed).
#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::StartsWith;

class ClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "clienttlsXXXXXX").string();
    dir_ = new fs::path(mkdtemp(tmpl.data()));
    std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd " + dir_->string() +
        "; exec >openssl.log 2>&1;"
        "openssl req -x509 " +
        ec +
        " -keyout ca.key -out ca.pem -days 1 -subj /CN=compute-test-ca;"
        "openssl req " +
        ec +
        " -keyout server.key -out server.csr -subj /CN=localhost;"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out server.pem -days 1 -extfile san.ext;"
        "openssl req " +
        ec +
        " -keyout client.key -out client.csr -subj /CN=compute-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 1";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const char* name) { return (*dir_ / name).string(); }
  static fs::path* dir_;
};

fs::path* ClientTlsTest::dir_ = nullptr;

TEST_F(ClientTlsTest, MutualTls) {
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("server.pem");
  config.tls_key = Path("server.key");
  config.tls_client_ca = Path("ca.pem");
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::string target = Target(*server);

  CommandResult r =
      RunClient({"run", "fib", "--n", "10", "--target", target, "--ca",
                 Path("ca.pem"), "--cert", Path("client.pem"), "--key",
                 Path("client.key"), "--server_name", "localhost"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("fib(n=10) = 55\n"));

  r = RunClient({"health", "--target", target, "--tls", "--ca", Path("ca.pem"),
                 "--cert", Path("client.pem"), "--key", Path("client.key")});
  EXPECT_EQ(r.rc, 0) << r.err;

  // No client certificate: the server refuses the handshake.
  r = RunClient({"run", "fib", "--n", "10", "--target", target, "--ca",
                 Path("ca.pem"), "--deadline", "10s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("UNAVAILABLE: "));

  // A certificate without its key is a usage error.
  r = RunClient(
      {"run", "fib", "--target", target, "--cert", Path("client.pem")});
  EXPECT_EQ(r.rc, 2);
}

}  // namespace
}  // namespace compute::testing
