#include "client/mix.h"

#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/base/string_view.h"

namespace compute::client {
namespace {

// The entry escaped (C style): it may hold the control character it is
// refused for.
absl::Status Bad(const std::string& entry, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--mix: entry '", absl::CHexEscape(entry), "': ", why));
}

}  // namespace

absl::Status CheckTenant(std::string_view flag, std::string_view tenant) {
  const std::string rule =
      absl::StrCat(AbslView(flag), " must be at most ", kMaxTenantBytes,
                   " bytes of printable ASCII (space to ~)");
  if (tenant.size() > kMaxTenantBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(rule, " (got ", tenant.size(), " bytes)"));
  }
  for (size_t i = 0; i < tenant.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(tenant[i]);
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s (byte %d is 0x%02x)", rule, i + 1, c));
    }
  }
  // The server refuses one: values a proxy joined look so.
  if (tenant.find(',') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(flag), " must not hold a comma"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<MixEntry>> ParseMix(const std::string& spec) {
  std::vector<MixEntry> entries;
  std::set<std::string> names;
  for (absl::string_view text : absl::StrSplit(spec, ',')) {
    const std::string entry_text(text);
    std::vector<std::string> fields = absl::StrSplit(text, ':');
    MixEntry entry;
    entry.name = fields[0];
    if (entry.name.empty()) return Bad(entry_text, "needs a name first");
    if (!names.insert(entry.name).second) {
      return Bad(entry_text, "the name is used twice");
    }
    bool closed = false;
    std::set<std::string> keys;
    for (size_t i = 1; i < fields.size(); ++i) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(fields[i], absl::MaxSplits('=', 1));
      const auto& [key, value] = kv;
      if (key == "rate") {
        if (!absl::SimpleAtod(value, &entry.rate) ||
            !(entry.rate >= kMinRate) || entry.rate > 1e6) {
          return Bad(entry_text,
                     "rate must be a number of calls per second "
                     "between 0.001 and 1000000");
        }
      } else if (key == "concurrency") {
        if (!absl::SimpleAtoi(value, &entry.concurrency) ||
            entry.concurrency < 1 || entry.concurrency > 10000) {
          return Bad(entry_text, "concurrency must be between 1 and 10000");
        }
        closed = true;
      } else if (key == "priority") {
        if (value != "critical" && value != "default" && value != "sheddable") {
          return Bad(entry_text,
                     "priority must be critical, default or sheddable");
        }
        entry.priority = value;
      } else if (key == "tenant") {
        if (value.empty()) return Bad(entry_text, "tenant must not be empty");
        entry.tenant = value;
      } else {
        return Bad(entry_text,
                   absl::StrCat("unknown field '", fields[i],
                                "' (want rate=, concurrency=, priority= or "
                                "tenant=)"));
      }
      // The last one won: "rate=5:rate=7" ran at 7 without a word.
      if (!keys.insert(key).second) {
        return Bad(entry_text, absl::StrCat(key, "= is given twice"));
      }
    }
    if (closed && entry.rate > 0) {
      return Bad(entry_text,
                 "rate (open loop) and concurrency (closed loop) do not go "
                 "together");
    }
    if (entry.tenant.empty()) entry.tenant = entry.name;
    for (const auto& [what, text] :
         {std::pair{"the name", &entry.name}, {"the tenant", &entry.tenant}}) {
      if (absl::Status s = CheckTenant(what, *text); !s.ok()) {
        return Bad(entry_text, std::string(s.message()));
      }
    }
    entries.push_back(std::move(entry));
    if (entries.size() > kMaxMixEntries) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: at most ", kMaxMixEntries, " entries"));
    }
  }
  return entries;
}

}  // namespace compute::client
