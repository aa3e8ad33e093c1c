// --tls/--ca/--cert/--key against a mutual-TLS server, with certificates
// made by openssl at run time (no keys are committed).
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/commands_common.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/file.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
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
        // The same key, certified for its name only (as a Kubernetes
        // Service's certificate names the Service, not the pods' IPs).
        "printf 'subjectAltName=DNS:localhost' > name.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out name.pem -days 1 -extfile name.ext;"
        "openssl req " +
        ec +
        " -keyout client.key -out client.csr -subj /CN=compute-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 1;"
        // A client certificate no CA of the server's signed.
        "openssl req -x509 " +
        ec +
        " -keyout stranger.key -out stranger.pem -days 1 -subj /CN=stranger";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const char* name) { return (*dir_ / name).string(); }
  // A server that requires a client certificate signed by ca.pem.
  static std::unique_ptr<service::ComputeServer> StartMutualTlsServer() {
    service::ServerConfig config = LocalConfig(1, 4);
    config.tls_cert = Path("server.pem");
    config.tls_key = Path("server.key");
    config.tls_client_ca = Path("ca.pem");
    return StartServer(config);
  }
  static fs::path* dir_;
};

fs::path* ClientTlsTest::dir_ = nullptr;

TEST_F(ClientTlsTest, MutualTls) {
  auto server = StartMutualTlsServer();
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

  // No client certificate: the server refuses the handshake, and gRPC
  // says only "Socket closed"; the line says which flags may be missing.
  r = RunClient({"run", "fib", "--n", "10", "--target", target, "--ca",
                 Path("ca.pem"), "--deadline", "10s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("UNAVAILABLE: "));
  EXPECT_THAT(r.err, HasSubstr("Socket closed (hint: the server closed the "
                               "connection as it was set up; if it asks for a "
                               "client certificate (mutual TLS), add --cert F "
                               "--key F)\n"));
  // Plaintext against TLS.
  r = RunClient({"health", "--target", target, "--deadline", "10s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("(hint: the server closed the connection as it "
                               "was set up; if it serves TLS, add --tls, or "
                               "--ca F for a private CA)\n"));
  // A certificate the server does not accept.
  r = RunClient({"batch", "--target", target, "--ca", Path("ca.pem"), "--cert",
                 Path("stranger.pem"), "--key", Path("stranger.key"),
                 "--deadline", "10s", "fib", "10"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.out, HasSubstr("it may not accept the certificate in --cert: "
                               "its --tls_client_ca must hold the CA that "
                               "issued it)\n"));

  // A certificate without its key is a usage error.
  r = RunClient(
      {"run", "fib", "--target", target, "--cert", Path("client.pem")});
  EXPECT_EQ(r.rc, 2);
}

// A connection that was up and then broke says "Socket closed" too (a
// server killed mid-call): TLS is not why, and the hint is not given
// (a review saw it blame --tls for a killed plaintext server).
TEST(ConnectionHintTest, IsNotGivenForAConnectionThatWasUp) {
  client::ChannelOptions options;
  const std::string message =
      "connections to all backends failing; last error: UNAVAILABLE: "
      "ipv4:127.0.0.1:1: Socket closed";
  EXPECT_THAT(client::ConnectionHint(message, options, /*connected=*/false),
              HasSubstr("(hint: "));
  EXPECT_EQ(client::ConnectionHint(message, options, /*connected=*/true), "");
  EXPECT_EQ(client::ConnectionHint("Deadline Exceeded", options, false), "");
}

// A PEM file that is empty, a directory, or not what its flag needs: one
// line naming the flag and the file, exit 2. An empty --ca (or a directory,
// which read as empty) left gRPC to trust the system's roots instead of
// the CA given; a malformed one made eight gRPC log lines and then
// "UNAVAILABLE: empty address list".
TEST_F(ClientTlsTest, PemFilesThatCannotServeAreUsageErrors) {
  auto server = StartMutualTlsServer();
  ASSERT_NE(server, nullptr);
  const std::string target = Target(*server);

  const std::string empty = Path("empty.pem");
  const std::string text = Path("text.pem");
  const std::string broken = Path("broken.pem");
  ASSERT_TRUE(WriteFile(empty, "").ok());
  ASSERT_TRUE(WriteFile(text, "not a certificate\n").ok());
  // A good certificate, then a block that does not decode.
  absl::StatusOr<std::string> ca = ReadFile(Path("ca.pem"));
  ASSERT_TRUE(ca.ok()) << ca.status();
  ASSERT_TRUE(WriteFile(broken, *ca + "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                      "-----END CERTIFICATE-----\n")
                  .ok());
  struct Case {
    std::string ca, cert, key, err;
  } cases[] = {
      {empty, "client.pem", "client.key",
       "--ca " + empty + ": empty file, want PEM certificates"},
      {text, "client.pem", "client.key",
       "--ca " + text + ": not PEM certificates"},
      {broken, "client.pem", "client.key",
       "--ca " + broken + ": not PEM certificates"},
      {Path("client.key"), "client.pem", "client.key",
       "--ca " + Path("client.key") + ": not PEM certificates"},
      {Path("ca.pem"), "empty.pem", "client.key",
       "--cert " + empty + ": empty file, want PEM certificates"},
      {Path("ca.pem"), "client.key", "client.key",
       "--cert " + Path("client.key") + ": not PEM certificates"},
      {Path("ca.pem"), "client.pem", "empty.pem",
       "--key " + empty + ": empty file, want an unencrypted PEM private key"},
      {Path("ca.pem"), "client.pem", "client.pem",
       "--key " + Path("client.pem") + ": not an unencrypted PEM private key"},
      {Path("ca.pem"), "client.pem", "server.key",
       "--key " + Path("server.key") +
           ": not the private key of the first certificate in --cert " +
           Path("client.pem")},
  };
  for (const Case& c : cases) {
    CommandResult r =
        RunClient({"run", "fib", "--n", "10", "--target", target, "--ca", c.ca,
                   "--cert", Path(c.cert.c_str()), "--key", Path(c.key.c_str()),
                   "--deadline", "10s"});
    EXPECT_EQ(r.rc, 2) << c.err;
    EXPECT_EQ(r.err, "compute-client run: " + c.err + "\n");
  }
  // least_loaded makes a channel per replica: the same line, once.
  CommandResult r =
      RunClient({"bench", "--target", target, "--lb", "least_loaded", "--task",
                 "fib", "--n", "1", "--requests", "1", "--ca", empty});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client bench: --ca " + empty +
                       ": empty file, want PEM certificates\n");
}

// least_loaded dials each address the target's name resolves to on a
// channel of its own, and verifies the certificate against the name, as a
// channel to the whole target does: until 2026-12-06 it verified each
// address's IP, and a certificate for the name alone failed every replica
// ("no connection within 5s").
TEST_F(ClientTlsTest, LeastLoadedVerifiesTheTargetsHostName) {
  service::ServerConfig config = LocalConfig(1, 4);
  config.tls_cert = Path("name.pem");
  config.tls_key = Path("server.key");
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  const std::string target = absl::StrCat("localhost:", server->port());
  for (const char* lb : {"round_robin", "least_loaded"}) {
    CommandResult r =
        RunClient({"bench", "--target", target, "--lb", lb, "--ca",
                   Path("ca.pem"), "--task", "fib", "--n", "1", "--requests",
                   "20", "--connect_timeout", "5s"});
    EXPECT_EQ(r.rc, 0) << lb << ": " << r.err;
  }
  // By its IP address the certificate does not name it, and bench says so
  // (until 2026-12-06 it said only "no connection within 1s").
  CommandResult r = RunClient({"bench", "--target", Target(*server), "--ca",
                               Path("ca.pem"), "--task", "fib", "--n", "1",
                               "--requests", "1", "--connect_timeout", "1s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("no connection within 1s (see "
                               "--connect_timeout); last error: "));
  EXPECT_THAT(r.err, HasSubstr("Peer name 127.0.0.1 is not in peer "
                               "certificate"));
}

}  // namespace
}  // namespace compute::testing
