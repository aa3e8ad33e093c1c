// COMPUTE_TEST_SANITIZED: 1 in a build with AddressSanitizer or
// ThreadSanitizer (gcc defines __SANITIZE_*__, clang 14 only answers
// __has_feature), else 0. For the few checks of timing that a sanitized
// build, several times slower, cannot promise.
#ifndef COMPUTE_TESTS_SANITIZED_H_
#define COMPUTE_TESTS_SANITIZED_H_

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COMPUTE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COMPUTE_TEST_SANITIZED 1
#endif
#endif
#ifndef COMPUTE_TEST_SANITIZED
#define COMPUTE_TEST_SANITIZED 0
#endif

#endif  // COMPUTE_TESTS_SANITIZED_H_
