#include "server/pool/memory_limit.h"

#include <cmath>
#include <iterator>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/base/file.h"
#include "server/pool/cgroup.h"

namespace compute {
namespace {

// cgroup v1 has no "max": an unlimited group reads as LONG_MAX rounded down
// to a page (9223372036854771712 with 4 KiB pages, less with larger pages).
// No real limit comes near 2^62 bytes (4 EiB), so anything from there up is
// "no limit" whatever the page size.
constexpr int64_t kUnlimitedFrom = int64_t{1} << 62;

// A limit file's content: bytes, or nullopt for "max", the unlimited value,
// or anything unreadable (ignored rather than trusted).
std::optional<int64_t> ParseLimit(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  int64_t bytes;
  if (text == "max" || !absl::SimpleAtoi(text, &bytes) || bytes <= 0 ||
      bytes >= kUnlimitedFrom) {
    return std::nullopt;
  }
  return bytes;
}

struct Limit {
  int64_t bytes;
  std::string file;  // without the root prefix
};

void Tighten(std::optional<Limit>& best, const std::string& root,
             const std::string& file, const char* version) {
  absl::StatusOr<std::string> text = ReadFile(file);
  if (!text.ok()) return;
  std::optional<int64_t> bytes = ParseLimit(*text);
  if (bytes && (!best || *bytes < best->bytes)) {
    best = Limit{*bytes, absl::StrCat("cgroup ", version, " ",
                                      file.substr(root.size()))};
  }
}

std::optional<Limit> FindLimit(const std::string& root) {
  std::optional<Limit> best;
  CgroupDirs dirs = FindCgroupDirs(root, "memory", {"/sys/fs/cgroup/memory"});
  for (const std::string& dir : dirs.v2) {
    Tighten(best, root, dir + "/memory.max", "v2");
    // Past memory.high the kernel throttles the cgroup and reclaims hard
    // (systemd's MemoryHigh=, often set without MemoryMax=): a budget
    // beyond it is one the server cannot use at speed.
    Tighten(best, root, dir + "/memory.high", "v2");
  }
  for (const std::string& dir : dirs.v1) {
    Tighten(best, root, dir + "/memory.limit_in_bytes", "v1");
  }
  return best;
}

absl::Status ByteSizeError(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

}  // namespace

MemoryLimit DetectMemoryLimit(std::string_view root) {
  MemoryLimit result;
  if (std::optional<Limit> limit = FindLimit(std::string(root))) {
    result.limit_bytes = limit->bytes;
    result.explanation =
        absl::StrCat("cgroup memory limit ", FormatByteSize(limit->bytes), " (",
                     limit->file, ")");
  } else {
    result.explanation = "no cgroup memory limit";
  }
  return result;
}

absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  constexpr absl::string_view kExpected =
      "expected a whole number of bytes, optionally with a suffix Ki, Mi, "
      "Gi, Ti (x1024) or k, K, M, G, T (x1000), like 512Mi";
  if (text.starts_with("-")) return ByteSizeError("must not be negative");
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  if (digits == 0) return ByteSizeError(kExpected);

  struct Suffix {
    std::string_view name;
    int64_t multiplier;
  };
  static constexpr Suffix kSuffixes[] = {
      {"", 1},
      {"Ki", int64_t{1} << 10},
      {"Mi", int64_t{1} << 20},
      {"Gi", int64_t{1} << 30},
      {"Ti", int64_t{1} << 40},
      {"k", 1000},
      {"K", 1000},
      {"M", 1000 * 1000},
      {"G", 1000 * 1000 * 1000},
      {"T", int64_t{1000} * 1000 * 1000 * 1000},
  };
  std::string_view suffix = text.substr(digits);
  int64_t multiplier = 0;
  for (const Suffix& s : kSuffixes) {
    if (suffix == s.name) multiplier = s.multiplier;
  }
  if (multiplier == 0) return ByteSizeError(kExpected);

  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string too_large =
      absl::StrCat("too large (the most is ", kMax, " bytes)");
  int64_t value = 0;
  for (char c : text.substr(0, digits)) {
    if (value > (kMax - (c - '0')) / 10) return ByteSizeError(too_large);
    value = value * 10 + (c - '0');
  }
  if (value > kMax / multiplier) return ByteSizeError(too_large);
  return value * multiplier;
}

std::string FormatByteSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B",   "KiB", "MiB", "GiB",
                                           "TiB", "PiB", "EiB"};
  if (bytes < 0) return absl::StrCat(bytes, " B");  // not a size; say so
  int unit = 0;
  while (unit + 1 < static_cast<int>(std::size(kUnits)) &&
         bytes >= (int64_t{1} << (10 * (unit + 1)))) {
    ++unit;
  }
  // Hundredths of the unit, rounded; a double holds them exactly enough
  // (bytes / size < 1024).
  auto hundredths_of = [bytes](int unit) {
    return std::llround(static_cast<double>(bytes) /
                        static_cast<double>(int64_t{1} << (10 * unit)) * 100);
  };
  int64_t hundredths = hundredths_of(unit);
  // Rounded up to 1024 of a unit ((1 << 20) - 1 bytes): one of the next.
  if (hundredths >= 1024 * 100 &&
      unit + 1 < static_cast<int>(std::size(kUnits))) {
    hundredths = hundredths_of(++unit);
  }
  std::string out = absl::StrCat(hundredths / 100);
  if (int64_t frac = hundredths % 100; frac != 0) {
    absl::StrAppend(&out, ".", frac / 10);
    if (frac % 10 != 0) absl::StrAppend(&out, frac % 10);
  }
  return absl::StrCat(out, " ", kUnits[unit]);
}

}  // namespace compute
