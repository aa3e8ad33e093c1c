#include "server/base/net.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

using ::testing::HasSubstr;

std::string Error(absl::string_view host, bool ipv4_only = false) {
  return std::string(
      CheckListenAddress("--address", host, 0, ipv4_only).message());
}

// A port written into the address flag is named as such. Before, "host:port"
// was "IPv6" to the metrics endpoint's check, and "does not resolve" to the
// server's.
TEST(CheckListenAddressTest, AHostWithAPortSaysSo) {
  for (const char* host : {"127.0.0.1:9464", "[::1]:80", "localhost:80"}) {
    for (bool ipv4_only : {false, true}) {
      EXPECT_THAT(Error(host, ipv4_only), HasSubstr("has a port in it"))
          << host << " " << ipv4_only;
    }
  }
}

TEST(CheckListenAddressTest, AddressesOfThisHostPass) {
  EXPECT_TRUE(CheckListenAddress("--address", "127.0.0.1", 0).ok());
  EXPECT_TRUE(CheckListenAddress("--address", "0.0.0.0", 0, true).ok());
}

TEST(CheckListenAddressTest, AnIpv6AddressIsRefusedWhereOnlyIpv4Listens) {
  EXPECT_THAT(Error("::1", /*ipv4_only=*/true), HasSubstr("is IPv6"));
  EXPECT_THAT(Error("::", /*ipv4_only=*/true), HasSubstr("is IPv6"));
}

// (A name that does not resolve is not tested: without DNS the lookup may
// fail EAI_AGAIN, which is left to the bind.)
TEST(CheckListenAddressTest, AnEmptyHostIsRefused) {
  EXPECT_EQ(Error(""),
            "--address: empty; 0.0.0.0 (or ::) listens on every interface");
  // Where only IPv4 listens (the metrics endpoint), :: is no suggestion.
  EXPECT_EQ(Error("", /*ipv4_only=*/true),
            "--address: empty; 0.0.0.0 listens on every interface");
}

}  // namespace
}  // namespace compute
