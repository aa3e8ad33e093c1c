#include "client/flags.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/base/string_view.h"

namespace compute::client {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool FlagSet::Given(std::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return flag.given;
  }
  return false;
}

void FlagSet::RefuseEmpty(std::string_view name, std::string reason) {
  if (Flag* flag = Find(name); flag != nullptr) {
    flag->if_empty = std::move(reason);
  }
}

absl::Status FlagSet::Set(Flag& flag, std::string_view value) {
  if (value.empty() && !flag.if_empty.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag.name, " is empty: ", flag.if_empty));
  }
  std::string error;
  if (!flag.parse(value, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad value for --", flag.name, ": '", AbslView(value), "': ", error));
  }
  flag.given = true;
  return absl::OkStatus();
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args,
                            std::vector<std::string>* positional) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") {
      positional->insert(positional->end(), args.begin() + i + 1, args.end());
      break;
    }
    // A negative number ("-1", "-1s", "-.5s", "-inf") is a value, not a
    // flag: batch's arguments are passed on (and refused with the reason
    // there; before 2026-12-06 it was "unknown flag --1").
    if (arg.size() < 2 || arg[0] != '-' || absl::ascii_isdigit(arg[1]) ||
        arg[1] == '.' || absl::EqualsIgnoreCase(AbslView(arg), "-inf")) {
      positional->push_back(args[i]);
      continue;
    }
    arg.remove_prefix(StartsWith(arg, "--") ? 2 : 1);
    if (arg == "help" || arg == "h") {
      help_ = true;
      continue;
    }
    size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    Flag* flag = Find(name);
    if (flag == nullptr && StartsWith(name, "no")) {
      Flag* negated = Find(name.substr(2));
      if (negated != nullptr && negated->is_bool) {
        // "--nojson=false": the negated form takes no value.
        if (eq != arg.npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--", AbslView(name), " takes no value (write --", negated->name,
              "=true or --", negated->name, "=false)"));
        }
        if (absl::Status s = Set(*negated, "false"); !s.ok()) return s;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", AbslView(name), " (see --help)"));
    }
    std::string_view value;
    if (eq != arg.npos) {
      value = arg.substr(eq + 1);
    } else if (flag->is_bool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", flag->name, " needs a value"));
    }
    if (absl::Status s = Set(*flag, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", synopsis_, "\n\nflags:\n");
  for (const Flag& flag : flags_) {
    absl::StrAppend(&out, "  --", flag.name, "  ", flag.help);
    if (!flag.is_bool && !flag.default_text.empty()) {
      absl::StrAppend(&out, " (default ", flag.default_text, ")");
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace compute::client
