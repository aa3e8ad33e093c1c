// The pieces of client/channel.h that need no server.
#include "client/channel.h"

#include "gtest/gtest.h"

namespace compute::client {
namespace {

// The name TLS verifies: the target's host name, never an IP address.
TEST(TargetHostNameTest, IsTheHostNameOfATargetThatNamesOne) {
  EXPECT_EQ(TargetHostName("localhost:50051"), "localhost");
  EXPECT_EQ(TargetHostName("dns:///compute.ns.svc:50051"), "compute.ns.svc");
  EXPECT_EQ(TargetHostName("dns:compute:50051"), "compute");
  EXPECT_EQ(TargetHostName("dns:/compute:50051"), "compute");
  EXPECT_EQ(TargetHostName("dns://8.8.8.8/compute.example:443"),
            "compute.example");
  EXPECT_EQ(TargetHostName("compute.example"), "compute.example");
  EXPECT_EQ(TargetHostName("127.0.0.1:50051"), "");
  EXPECT_EQ(TargetHostName("[::1]:50051"), "");
  EXPECT_EQ(TargetHostName("dns:///10.0.0.1:50051"), "");
  EXPECT_EQ(TargetHostName("ipv4:127.0.0.1:1,127.0.0.1:2"), "");
  EXPECT_EQ(TargetHostName("ipv6:[::1]:50051"), "");
  EXPECT_EQ(TargetHostName("unix:/run/compute.sock"), "");
  EXPECT_EQ(TargetHostName("::1:50051"), "");
}

}  // namespace
}  // namespace compute::client
