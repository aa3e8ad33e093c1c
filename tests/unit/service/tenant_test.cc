// How the service names a call's tenant from what the call brings: the
// `compute-tenant` header it checks, a TLS identity it makes fit, and the
// peer address it takes out of gRPC's peer string.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/compute_service.h"

namespace compute::service {
namespace {

using ::testing::HasSubstr;

TEST(TenantHeaderTest, PrintableAsciiUpToTheLimitIsATenant) {
  EXPECT_TRUE(CheckTenantHeader("").ok());
  EXPECT_TRUE(CheckTenantHeader("team-a.example").ok());
  EXPECT_TRUE(CheckTenantHeader(" !~ 2001:db8::1").ok());
  EXPECT_TRUE(CheckTenantHeader(std::string(kMaxTenantBytes, 'x')).ok());
}

// A proxy that joins its value to the client's leaves a comma.
TEST(TenantHeaderTest, ACommaIsInvalidArgument) {
  absl::Status s = CheckTenantHeader("mine,proxy");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "compute-tenant must not hold a comma (values joined: a proxy "
            "that sets it must replace the client's value, not add to it)");
}

TEST(TenantHeaderTest, TooLongIsInvalidArgumentNamingTheHeader) {
  absl::Status s = CheckTenantHeader(std::string(kMaxTenantBytes + 1, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "compute-tenant must be at most 128 bytes of printable ASCII "
            "(space to ~) (got 129 bytes)");
}

// gRPC 1.51 passes such bytes through to the server; as a label value on
// /metrics, one that is not UTF-8 failed the whole scrape.
TEST(TenantHeaderTest, AByteOutsidePrintableAsciiIsInvalidArgument) {
  struct Case {
    std::string value;
    std::string why;
  };
  for (const Case& c : {Case{"bad\xff\xfe", "(byte 4 is 0xff)"},
                        Case{"caf\xc3\xa9", "(byte 4 is 0xc3)"},  // UTF-8
                        Case{"tab\there", "(byte 4 is 0x09)"},
                        Case{std::string("nul\0", 4), "(byte 4 is 0x00)"},
                        Case{"del\x7f", "(byte 4 is 0x7f)"}}) {
    absl::Status s = CheckTenantHeader(c.value);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(s.message(),
                HasSubstr("compute-tenant must be at most 128 bytes of "
                          "printable ASCII (space to ~)"));
    EXPECT_THAT(s.message(), HasSubstr(c.why));
  }
}

TEST(TenantFromIdentityTest, PrintableAsciiIsKept) {
  EXPECT_EQ(TenantFromIdentity("team-a.example"), "team-a.example");
  EXPECT_EQ(TenantFromIdentity(""), "");
}

TEST(TenantFromIdentityTest, OtherBytesBecomeQuestionMarks) {
  EXPECT_EQ(TenantFromIdentity("Zo\xc3\xab"), "Zo??");
  EXPECT_EQ(TenantFromIdentity("bad\xff\xfe"), "bad??");
  EXPECT_EQ(TenantFromIdentity(std::string("a\0b\n\x7f", 5)), "a?b??");
}

TEST(TenantFromIdentityTest, CutToTheHeadersLimit) {
  const std::string name = std::string(200, 'a') + ".example";
  EXPECT_EQ(TenantFromIdentity(name), std::string(kMaxTenantBytes, 'a'));
  EXPECT_TRUE(
      CheckTenantHeader(TenantFromIdentity(std::string(300, '\xff'))).ok());
}

TEST(PeerAddressTest, Ipv4LosesSchemeAndPort) {
  EXPECT_EQ(PeerAddress("ipv4:10.1.2.3:5678"), "10.1.2.3");
  EXPECT_EQ(PeerAddress("ipv4:127.0.0.1:1"), "127.0.0.1");
  EXPECT_EQ(PeerAddress("ipv4:10.1.2.3"), "10.1.2.3");
}

// gRPC 1.51 writes the brackets percent-encoded; before, the tenant kept
// them ("%5B::1%5D") and a --tenant_weights entry for the address never
// matched.
TEST(PeerAddressTest, Ipv6IsDecodedAndLosesBracketsAndPort) {
  EXPECT_EQ(PeerAddress("ipv6:%5B::1%5D:5678"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:%5B2001:db8::1%5D:443"), "2001:db8::1");
  EXPECT_EQ(PeerAddress("ipv6:%5b2001:db8::1%5d:443"), "2001:db8::1");
  EXPECT_EQ(PeerAddress("ipv6:%5B::ffff:10.1.2.3%5D:80"), "::ffff:10.1.2.3");
  // A zone's '%' is itself encoded.
  EXPECT_EQ(PeerAddress("ipv6:%5Bfe80::1%25eth0%5D:80"), "fe80::1%eth0");
  // Unencoded, as older gRPC wrote it.
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5678"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:[2001:db8::1]:443"), "2001:db8::1");
}

// A host commonly holds a whole IPv6 /64 and may send from any address in
// it: with --tenant_ipv6_prefix=64 those are one tenant, so a client cannot
// take many shares of the queue by rotating its source address. IPv4 and
// IPv4-mapped peers are each their own tenant whatever the prefix (mapped
// ones grouped by /64 would all be "::/64": every IPv4 client one tenant).
TEST(TenantFromPeerTest, Ipv6PeersAreGroupedByTheirPrefix) {
  EXPECT_EQ(TenantFromPeer("ipv6:%5B2001:db8:1:2:aaaa::1%5D:443", 64),
            "2001:db8:1:2::/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5B2001:db8:1:2:bbbb:cc::7%5D:80", 64),
            "2001:db8:1:2::/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5B2001:db8:1:3::1%5D:80", 64),
            "2001:db8:1:3::/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5B2001:db8:1:2:aaaa::1%5D:443", 48),
            "2001:db8:1::/48");
  // A prefix not on a byte's edge.
  EXPECT_EQ(TenantFromPeer("ipv6:[2001:db8:ffff::1]:1", 36),
            "2001:db8:f000::/36");
  // 128, the default: the address as PeerAddress gives it.
  EXPECT_EQ(TenantFromPeer("ipv6:%5B2001:db8::1%5D:443", 128), "2001:db8::1");
  EXPECT_EQ(TenantFromPeer("ipv6:[::1]:5678", 128), "::1");
  // IPv4, mapped or not, is the address itself.
  for (int prefix : {1, 64, 127}) {
    EXPECT_EQ(TenantFromPeer("ipv4:10.1.2.3:5678", prefix), "10.1.2.3");
    EXPECT_EQ(TenantFromPeer("ipv6:%5B::ffff:10.1.2.3%5D:80", prefix),
              "10.1.2.3");
  }
  EXPECT_EQ(TenantFromPeer("ipv4:10.1.2.3:5678", 128), "10.1.2.3");
  // A link-local address is grouped too, and keeps its zone: the same
  // fe80::/64 on two interfaces is two links.
  EXPECT_EQ(TenantFromPeer("ipv6:%5Bfe80::1%253%5D:80", 64), "fe80::%3/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5Bfe80::2:7%253%5D:80", 64), "fe80::%3/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5Bfe80::1%254%5D:80", 64), "fe80::%4/64");
  EXPECT_EQ(TenantFromPeer("ipv6:%5Bfe80::1%253%5D:80", 128), "fe80::1%3");
  // Not an address it can read (another scheme, an empty zone): as it is.
  EXPECT_EQ(TenantFromPeer("ipv6:%5Bfe80::1%25%5D:80", 64), "fe80::1%");
  EXPECT_EQ(TenantFromPeer("unix:/tmp/compute.sock", 64), "unix");
}

// --tenant_weights names IPv6 tenants through Ipv6Tenant: any spelling of
// an address is the tenant TenantFromPeer makes of a peer in that network.
TEST(Ipv6TenantTest, AnySpellingIsThePeersTenant) {
  for (int prefix : {36, 64, 127}) {
    const std::string peers =
        TenantFromPeer("ipv6:%5B2001:db8:1:2:aaaa::1%5D:443", prefix);
    EXPECT_EQ(Ipv6Tenant("2001:DB8:1:2:AAAA:0:0:1", prefix), peers) << prefix;
    EXPECT_EQ(Ipv6Tenant("2001:0db8:0001:0002:aaaa::1", prefix), peers)
        << prefix;
  }
  // At 128 the address alone, as gRPC writes a peer's.
  EXPECT_EQ(Ipv6Tenant("2001:DB8::0005", 128), "2001:db8::5");
  EXPECT_EQ(Ipv6Tenant("::ffff:10.1.2.3", 64), "10.1.2.3");
  // Not IPv6: no tenant of its own.
  EXPECT_EQ(Ipv6Tenant("10.1.2.3", 64), std::nullopt);
  EXPECT_EQ(Ipv6Tenant("gold", 64), std::nullopt);
  EXPECT_EQ(Ipv6Tenant("fe80::1%", 64), std::nullopt);
  EXPECT_EQ(Ipv6Tenant("50%off", 64), std::nullopt);
  // A zone stays, after the address (RFC 4007).
  EXPECT_EQ(Ipv6Tenant("FE80:0::1%3", 64), "fe80::%3/64");
  EXPECT_EQ(Ipv6Tenant("FE80:0::1%3", 128), "fe80::1%3");
  EXPECT_EQ(Ipv6Tenant("", 64), std::nullopt);
}

TEST(PeerAddressTest, OddInputs) {
  EXPECT_EQ(PeerAddress(""), "");
  EXPECT_EQ(PeerAddress("ipv4:"), "");
  EXPECT_EQ(PeerAddress("ipv6:%5B::1"), "::1");  // no closing bracket
  EXPECT_EQ(PeerAddress("ipv6:[]:80"), "");
  EXPECT_EQ(PeerAddress("ipv6:::1"), "::1");  // no brackets: no port
  // Not an escape: kept as it is.
  EXPECT_EQ(PeerAddress("ipv6:%5"), "%5");
  EXPECT_EQ(PeerAddress("ipv4:10.1.2.3%zz:80"), "10.1.2.3%zz");
  EXPECT_EQ(PeerAddress("ipv4:%"), "%");
  // Another scheme keeps it, less what follows its one colon.
  EXPECT_EQ(PeerAddress("unix:/tmp/compute.sock"), "unix");
  EXPECT_EQ(PeerAddress("10.1.2.3:80"), "10.1.2.3");
}

}  // namespace
}  // namespace compute::service
