// primes: odd-only segmented sieve. Slot i of the sieve stands for the odd
// number 2i + 1, so a prime p strikes every p-th slot starting at p*p. Each
// base prime remembers the next slot to strike, carried from one segment to the
// next; 2 is counted apart.
//
// Pre-sieving: the smallest odd primes strike most often (3, 5, 7, 11 and 13
// make 40% of all strikes below 2e9), and the pattern they leave repeats every
// 3 * 5 * 7 * 11 * 13 = 15015 slots. So each segment starts as a copy of that
// pattern (a memcpy, no dearer than the fill it replaces) and only the primes
// from 17 up are struck one by one. The copy marks 3 .. 13 themselves as
// composite; the first segment puts them back.
#include "server/tasks/primes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

// Odd numbers per segment (one byte each): 256 KiB fits L2 on current CPUs.
constexpr uint64_t kSegmentSlots = 256 * 1024;

constexpr uint64_t kPresievedPrimes[] = {3, 5, 7, 11, 13};
constexpr size_t kPatternSlots = 3 * 5 * 7 * 11 * 13;

// Slot i is 1 unless 2i + 1 is a multiple of 3, 5, 7, 11 or 13.
std::array<unsigned char, kPatternSlots> MakePattern() {
  std::array<unsigned char, kPatternSlots> pattern;
  pattern.fill(1);
  for (uint64_t p : kPresievedPrimes) {
    // 2i + 1 = p (mod 2p) at i = p / 2 (mod p).
    for (size_t i = p / 2; i < kPatternSlots; i += p) pattern[i] = 0;
  }
  return pattern;
}

// Copies the pattern's slots [from, from + size) (slot numbers taken modulo
// the period) to out.
void CopyPattern(const std::array<unsigned char, kPatternSlots>& pattern,
                 uint64_t from, size_t size, unsigned char* out) {
  size_t offset = static_cast<size_t>(from % kPatternSlots);
  while (size > 0) {
    const size_t n = std::min(size, kPatternSlots - offset);
    std::memcpy(out, pattern.data() + offset, n);
    out += n;
    size -= n;
    offset = 0;
  }
}

// floor(sqrt(n)), exact for every n < 2^62 (the double is only a first guess).
uint64_t IntegerSqrt(uint64_t n) {
  uint64_t r = static_cast<uint64_t>(std::sqrt(static_cast<double>(n)));
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

// The odd primes <= n, by a plain sieve (n is at most sqrt(limit)).
std::vector<uint64_t> OddPrimesUpTo(uint64_t n) {
  std::vector<uint64_t> primes;
  if (n < 3) return primes;
  std::vector<bool> composite(n + 1, false);
  for (uint64_t i = 3; i <= n; i += 2) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (uint64_t j = i * i; j <= n; j += 2 * i) composite[j] = true;
  }
  return primes;
}

// Strikes slots slot, slot + p, ... below `high` (slots relative to `low`);
// returns the first slot at or past `high`. Four strikes per iteration, which
// GCC does not unroll by itself, for the primes that strike many times.
uint64_t Strike(unsigned char* segment, uint64_t low, uint64_t high, uint64_t p,
                uint64_t slot) {
  for (; slot + 3 * p < high; slot += 4 * p) {
    segment[slot - low] = 0;
    segment[slot + p - low] = 0;
    segment[slot + 2 * p - low] = 0;
    segment[slot + 3 * p - low] = 0;
  }
  for (; slot < high; slot += p) segment[slot - low] = 0;
  return slot;
}

}  // namespace

absl::Status ValidatePrimes(const compute::v1::PrimesRequest& request) {
  if (request.limit() > kMaxPrimesLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("primes.limit must be <= ", kMaxPrimesLimit, " (got ",
                     request.limit(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CountPrimes(uint64_t limit,
                                     const CancelToken& cancel) {
  if (cancel.stop_requested()) {
    return absl::CancelledError("primes stopped before the first segment");
  }
  if (limit < 2) return 0;
  uint64_t count = 1;  // 2
  // Slots 1 .. last_slot are the odd numbers 3 .. limit (slot 0 is 1).
  const uint64_t last_slot = (limit - 1) / 2;

  const std::vector<uint64_t> base = OddPrimesUpTo(IntegerSqrt(limit));
  // The pre-sieved primes lead `base` (it is sorted); strike from the next.
  const size_t first_struck =
      std::min(base.size(), std::size(kPresievedPrimes));
  std::vector<uint64_t> next_slot(base.size());
  for (size_t k = 0; k < base.size(); ++k) next_slot[k] = base[k] * base[k] / 2;

  static const std::array<unsigned char, kPatternSlots> pattern = MakePattern();
  std::vector<unsigned char> is_prime(kSegmentSlots);
  for (uint64_t low = 1; low <= last_slot; low += kSegmentSlots) {
    if (cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("primes stopped at ", 2 * low + 1, " of ", limit));
    }
    const uint64_t high = std::min(low + kSegmentSlots, last_slot + 1);
    const size_t size = static_cast<size_t>(high - low);
    CopyPattern(pattern, low, size, is_prime.data());
    if (low == 1) {
      for (uint64_t p : kPresievedPrimes) {
        if (p / 2 < high) is_prime[p / 2 - low] = 1;
      }
    }
    for (size_t k = first_struck; k < base.size(); ++k) {
      next_slot[k] = Strike(is_prime.data(), low, high, base[k], next_slot[k]);
    }
    // Summing 0/1 bytes in 32-bit lanes lets the compiler vectorize the count.
    uint32_t segment_count = 0;
    for (size_t i = 0; i < size; ++i) segment_count += is_prime[i];
    count += segment_count;
  }
  return count;
}

absl::Status ValidatePrimesTask(const compute::v1::RunRequest& request,
                                Payload /*payload*/) {
  return ValidatePrimes(request.primes());
}

absl::Status RunPrimesTask(const compute::v1::RunRequest& request,
                           Payload /*payload*/, const CancelToken& cancel,
                           compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidatePrimes(request.primes()); !status.ok()) {
    return status;
  }
  absl::StatusOr<uint64_t> count =
      CountPrimes(request.primes().limit(), cancel);
  if (!count.ok()) return count.status();
  response->mutable_primes()->set_count(*count);
  return absl::OkStatus();
}

double PrimesCostUnits(const compute::v1::RunRequest& request) {
  // Below 2, ln would make the units shrink or go negative.
  const double n =
      static_cast<double>(std::max<uint64_t>(request.primes().limit(), 2));
  return n * std::log(n) + kPrimesFixedCostUnits;
}

int64_t PrimesResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kPrimesResponseBytes;
}

}  // namespace compute::tasks
