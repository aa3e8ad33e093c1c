// Registered only under AddressSanitizer (make asan): LeakSanitizer, at
// exit, is what sees the loss this test guards against.
#include <openssl/err.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"

namespace {

std::mutex mu;
std::condition_variable cv;
bool thread_has_state = false;
bool thread_may_end = false;
std::thread* thread = nullptr;

// Registered before OpenSSL's own exit handler could be, so it runs after
// it (exit handlers run in reverse order): the thread ends after
// OPENSSL_cleanup, as one of gRPC's threads may during exit.
void EndTheThread() {
  {
    std::lock_guard lock(mu);
    thread_may_end = true;
  }
  cv.notify_all();
  thread->join();
}

// A thread that made OpenSSL error state (gRPC's TLS reads do) and ends
// after the process's exit handlers ran: with OpenSSL's handler, its state
// would be lost and LeakSanitizer would fail the process. What removes the
// handler is tests/openssl_exit_init.cc, which compute_test links into this
// binary as into every other.
TEST(OpenSslExitTest, AThreadThatEndsDuringExitLeaksNoErrorState) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::atexit(EndTheThread);
        thread = new std::thread([] {
          ERR_put_error(ERR_LIB_SYS, 0, ERR_R_INTERNAL_ERROR, __FILE__,
                        __LINE__);
          std::unique_lock lock(mu);
          thread_has_state = true;
          cv.notify_all();
          cv.wait(lock, [] { return thread_may_end; });
        });
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [] { return thread_has_state; });
        }
        std::exit(0);
      },
      testing::ExitedWithCode(0), "");
}

}  // namespace
