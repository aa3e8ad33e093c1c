// client/target.h: a --target read the way gRPC's resolvers read it.
#include "client/target.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::client {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Kind = TargetParts::Kind;

TEST(SplitTargetTest, NamesAreOneAddressAfterTheirSchemeAndAuthority) {
  TargetParts plain = SplitTarget("compute.ns.svc:50051");
  EXPECT_EQ(plain.kind, Kind::kName);
  EXPECT_THAT(plain.addresses, ElementsAre("compute.ns.svc:50051"));
  EXPECT_EQ(plain.authority, "");

  TargetParts dns = SplitTarget("dns:///compute:50051");
  EXPECT_EQ(dns.kind, Kind::kName);
  EXPECT_THAT(dns.addresses, ElementsAre("compute:50051"));
  EXPECT_EQ(dns.authority, "");

  TargetParts authority = SplitTarget("dns://8.8.8.8/compute:443");
  EXPECT_EQ(authority.kind, Kind::kName);
  EXPECT_THAT(authority.addresses, ElementsAre("compute:443"));
  EXPECT_EQ(authority.authority, "8.8.8.8");

  TargetParts no_name = SplitTarget("dns://8.8.8.8");
  EXPECT_EQ(no_name.kind, Kind::kName);
  EXPECT_THAT(no_name.addresses, IsEmpty());

  EXPECT_THAT(SplitTarget("dns:compute:1").addresses, ElementsAre("compute:1"));
  // One slash: the URI's path, which gRPC takes without it (it was read as
  // the host "/compute").
  EXPECT_THAT(SplitTarget("dns:/compute:1").addresses,
              ElementsAre("compute:1"));
  // A list without its scheme is one (bad) name: CheckTargetPorts says so.
  EXPECT_THAT(SplitTarget("127.0.0.1:1,127.0.0.1:2").addresses,
              ElementsAre("127.0.0.1:1,127.0.0.1:2"));
}

TEST(SplitTargetTest, AddressListsKeepTheirSchemeAndDropLeadingSlashes) {
  TargetParts v4 = SplitTarget("ipv4:///127.0.0.1:1,,127.0.0.2:2");
  EXPECT_EQ(v4.kind, Kind::kAddressList);
  EXPECT_EQ(v4.scheme, "ipv4:");
  EXPECT_THAT(v4.addresses, ElementsAre("127.0.0.1:1", "127.0.0.2:2"));

  TargetParts v6 = SplitTarget("ipv6:[::1]:1");
  EXPECT_EQ(v6.scheme, "ipv6:");
  EXPECT_THAT(v6.addresses, ElementsAre("[::1]:1"));

  EXPECT_THAT(SplitTarget("ipv4:").addresses, IsEmpty());
}

TEST(SplitTargetTest, OtherSchemesAreLeftToGrpc) {
  for (const char* target : {"unix:/run/compute.sock", "unix-abstract:x",
                             "xds:///compute", "unix:///run/s"}) {
    TargetParts parts = SplitTarget(target);
    EXPECT_EQ(parts.kind, Kind::kOther) << target;
    EXPECT_THAT(parts.addresses, IsEmpty()) << target;
  }
}

TEST(SplitHostPortTest, SplitsAtTheOnlyColonOrAfterTheBrackets) {
  HostPort name = SplitHostPort("compute:50051");
  EXPECT_EQ(name.host, "compute");
  EXPECT_EQ(name.port, "50051");
  EXPECT_TRUE(name.has_port);
  EXPECT_FALSE(name.bracketed);

  HostPort v6 = SplitHostPort("[::1]:50051");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, "50051");
  EXPECT_TRUE(v6.has_port);
  EXPECT_TRUE(v6.bracketed);

  HostPort empty_port = SplitHostPort("[::1]:");
  EXPECT_TRUE(empty_port.has_port);
  EXPECT_EQ(empty_port.port, "");

  HostPort bare_v6 = SplitHostPort("[fe80::1%lo]");
  EXPECT_EQ(bare_v6.host, "fe80::1%lo");
  EXPECT_FALSE(bare_v6.has_port);
  EXPECT_TRUE(bare_v6.bracketed);

  HostPort no_port = SplitHostPort("compute");
  EXPECT_EQ(no_port.host, "compute");
  EXPECT_FALSE(no_port.has_port);
}

TEST(SplitHostPortTest, UnbracketedIpv6AndJunkHaveNoPort) {
  for (const char* address : {"::1:50051", "::1", "[::1", "[::1]x"}) {
    HostPort split = SplitHostPort(address);
    EXPECT_FALSE(split.has_port) << address;
    EXPECT_FALSE(split.bracketed) << address;
    EXPECT_EQ(split.host, address) << address;
  }
}

TEST(IsIpAddressTest, TellsAddressesFromNames) {
  EXPECT_TRUE(IsIpAddress("127.0.0.1"));
  EXPECT_TRUE(IsIpAddress("::1"));
  EXPECT_TRUE(IsIpAddress("fe80::1%lo"));
  EXPECT_FALSE(IsIpAddress("localhost"));
  EXPECT_FALSE(IsIpAddress("127.0.0.1:1"));
  EXPECT_FALSE(IsIpAddress(""));
}

}  // namespace
}  // namespace compute::client
