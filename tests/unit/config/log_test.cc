// The JSON log line: fixed key order (ts, level, msg, then the fields by
// name), valid JSON whatever the values hold.
#include "server/log.h"

#include "absl/time/civil_time.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

absl::Time Noon() {
  return absl::FromCivil(absl::CivilSecond(2026, 1, 2, 12, 0, 0),
                         absl::UTCTimeZone());
}

TEST(LogTest, TsLevelMsgFirstThenTheFieldsByName) {
  google::protobuf::Struct f;
  Put(f, "workers", 2.0);
  Put(f, "address", std::string("0.0.0.0"));
  Put(f, "tls", false);
  Put(f, "port", 50051.0);
  EXPECT_EQ(FormatLogLine(Noon(), "info", "starting", f),
            "{\"ts\":\"2026-01-02T12:00:00+00:00\",\"level\":\"info\","
            "\"msg\":\"starting\",\"address\":\"0.0.0.0\",\"port\":50051,"
            "\"tls\":false,\"workers\":2}");
}

// A string literal is a string field, not `true` (the bool overload took
// it: a log line's "detail" said true).
TEST(LogTest, AStringLiteralIsAString) {
  google::protobuf::Struct f;
  Put(f, "detail", "why");
  EXPECT_EQ(f.fields().at("detail").string_value(), "why");
}

TEST(LogTest, TheSameFieldsGiveTheSameLine) {
  google::protobuf::Struct a, b;
  for (const char* key : {"zeta", "alpha", "mid", "beta", "omega"}) {
    Put(a, key, std::string(key));
  }
  for (const char* key : {"omega", "beta", "mid", "alpha", "zeta"}) {
    Put(b, key, std::string(key));
  }
  EXPECT_EQ(FormatLogLine(Noon(), "info", "x", a),
            FormatLogLine(Noon(), "info", "x", b));
}

TEST(LogTest, FieldsCannotDisplaceTsLevelOrMsg) {
  google::protobuf::Struct f;
  Put(f, "msg", std::string("spoofed"));
  Put(f, "level", std::string("debug"));
  Put(f, "ts", std::string("never"));
  EXPECT_EQ(FormatLogLine(Noon(), "error", "cannot start", f),
            "{\"ts\":\"2026-01-02T12:00:00+00:00\",\"level\":\"error\","
            "\"msg\":\"cannot start\"}");
}

TEST(LogTest, ValuesAreEscapedAsJson) {
  google::protobuf::Struct f;
  Put(f, "error", std::string("a \"quoted\"\nline\\"));
  std::string line = FormatLogLine(Noon(), "error", "cannot \"start\"", f);
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok())
      << line;
  EXPECT_EQ(parsed.fields().at("error").string_value(), "a \"quoted\"\nline\\");
  EXPECT_EQ(parsed.fields().at("msg").string_value(), "cannot \"start\"");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// A client's bytes reach the log through gRPC's messages (a header's
// value); protobuf would drop a string that is not UTF-8 and print a
// complaint that is not JSON.
TEST(LogTest, BytesThatAreNotUtf8BecomeQuestionMarks) {
  google::protobuf::Struct f;
  Put(f, "value", std::string("text/\xff\xfe"));
  Put(f, "ok", std::string("caf\xc3\xa9"));
  std::string line =
      FormatLogLine(Noon(), "error", "value=text/plain\xff\xfe", f);
  EXPECT_EQ(line,
            "{\"ts\":\"2026-01-02T12:00:00+00:00\",\"level\":\"error\","
            "\"msg\":\"value=text/plain??\",\"ok\":\"caf\xc3\xa9\","
            "\"value\":\"text/??\"}");
}

// Found by log_fuzzer: two keys that are not UTF-8 became one key, twice.
TEST(LogTest, KeysThatBecomeTheSameKeyAreWrittenOnce) {
  google::protobuf::Struct f;
  Put(f, std::string("k\x80"), std::string("first"));
  Put(f, std::string("k\xd9"), std::string("second"));
  EXPECT_EQ(FormatLogLine(Noon(), "info", "x", f),
            "{\"ts\":\"2026-01-02T12:00:00+00:00\",\"level\":\"info\","
            "\"msg\":\"x\",\"k?\":\"first\"}");
}

TEST(LogTest, LevelNamesRoundTrip) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning,
                         LogLevel::kError}) {
    EXPECT_EQ(ParseLogLevel(LogLevelName(level)), level);
  }
  EXPECT_EQ(ParseLogLevel("warn"), std::nullopt);
  EXPECT_EQ(ParseLogLevel(""), std::nullopt);
}

// A gRPC message's line: the fields say it is gRPC's, and where it logged.
TEST(LogTest, GrpcFieldsNameTheSourceFileAndLine) {
  std::string line = FormatLogLine(
      Noon(), "error", "Error parsing metadata: value=\"text/plain\"",
      LibraryLogFields(
          "grpc", "src/core/ext/transport/chttp2/transport/hpack_parser.cc",
          1218));
  EXPECT_EQ(line,
            "{\"ts\":\"2026-01-02T12:00:00+00:00\",\"level\":\"error\","
            "\"msg\":\"Error parsing metadata: value=\\\"text/plain\\\"\","
            "\"file\":\"src/core/ext/transport/chttp2/transport/"
            "hpack_parser.cc\",\"line\":1218,\"source\":\"grpc\"}");
}

// A flood of gRPC's lines (one per bad request) is cut to the budget each
// second; the next line written says how many were left out.
TEST(LineBudgetTest, AtMostTheBudgetASecondThenTheCountOfTheRest) {
  LineBudget budget(3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  int64_t suppressed = -1;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(budget.Admit(t0 + absl::Milliseconds(i), &suppressed));
    EXPECT_EQ(suppressed, 0);
  }
  for (int i = 0; i < 97; ++i) {
    EXPECT_FALSE(budget.Admit(t0 + absl::Milliseconds(500), &suppressed));
  }
  EXPECT_TRUE(budget.Admit(t0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 97);
  EXPECT_TRUE(budget.Admit(t0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 0) << "counted once";
}

// What was refused after the last line admitted, taken at exit: counted
// once, there or in the next line's notice, never both.
TEST(LineBudgetTest, TheRefusedCountIsTakenOnce) {
  LineBudget budget(1);
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  int64_t suppressed = -1;
  EXPECT_TRUE(budget.Admit(t0, &suppressed));
  EXPECT_FALSE(budget.Admit(t0, &suppressed));
  EXPECT_FALSE(budget.Admit(t0, &suppressed));
  EXPECT_EQ(budget.TakeRefused(), 2);
  EXPECT_EQ(budget.TakeRefused(), 0);
  EXPECT_TRUE(budget.Admit(t0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 0) << "already taken";
}

// A time from a second already past (the wall clock stepped back) counts
// against the current second. Before, it started the old second afresh,
// and the next line the new one: each second then took more than the
// budget.
TEST(LineBudgetTest, AnEarlierSecondDoesNotStartAfresh) {
  LineBudget budget(2);
  const absl::Time t1 = absl::FromUnixSeconds(1001);
  int64_t suppressed = 0;
  EXPECT_TRUE(budget.Admit(t1, &suppressed));
  EXPECT_TRUE(budget.Admit(t1 - absl::Milliseconds(1), &suppressed));
  EXPECT_FALSE(budget.Admit(t1 + absl::Milliseconds(1), &suppressed));
  EXPECT_FALSE(budget.Admit(t1 - absl::Milliseconds(2), &suppressed));
}

// A wall clock that steps back by more than kStepBackSeconds (an NTP
// correction after a VM's restore) starts the earlier second afresh.
// Before, every line was refused until the clock came back to the second it
// had left: a step back of an hour muted gRPC's lines for an hour.
TEST(LineBudgetTest, AClockThatStepsBackFarStartsAfresh) {
  LineBudget budget(2);
  const absl::Time t1 = absl::FromUnixSeconds(10000);
  int64_t suppressed = 0;
  EXPECT_TRUE(budget.Admit(t1, &suppressed));
  EXPECT_TRUE(budget.Admit(t1, &suppressed));
  EXPECT_FALSE(budget.Admit(t1, &suppressed));
  const absl::Time back = t1 - absl::Hours(1);
  EXPECT_TRUE(budget.Admit(back, &suppressed));
  EXPECT_EQ(suppressed, 1);
  EXPECT_TRUE(budget.Admit(back + absl::Milliseconds(1), &suppressed));
  EXPECT_FALSE(budget.Admit(back + absl::Milliseconds(2), &suppressed))
      << "the earlier second has its budget, once";
}

}  // namespace
}  // namespace compute
