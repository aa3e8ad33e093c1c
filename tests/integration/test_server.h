// Helpers for integration tests: an in-process ComputeServer on 127.0.0.1
// with a kernel-chosen port and a channel to it (calls: calls.h).
#ifndef COMPUTE_TESTS_INTEGRATION_TEST_SERVER_H_
#define COMPUTE_TESTS_INTEGRATION_TEST_SERVER_H_

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "server/service/server.h"
#include "tests/integration/calls.h"
#include "tests/wait_until.h"

namespace compute::testing {

inline service::ServerConfig LocalConfig(int workers, size_t capacity) {
  service::ServerConfig config;
  config.address = "127.0.0.1";
  config.port = 0;
  config.pool.max_workers = config.pool.min_workers = workers;
  config.pool.queue_capacity = capacity;
  return config;
}

inline std::unique_ptr<service::ComputeServer> StartServer(
    const service::ServerConfig& config) {
  auto server = service::ComputeServer::Start(config);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

inline std::shared_ptr<grpc::Channel> Connect(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureChannelCredentials());
}

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_INTEGRATION_TEST_SERVER_H_
