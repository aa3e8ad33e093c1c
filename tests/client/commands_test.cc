// compute-client's run, batch and health commands against an in-process
// server, called in-process through client::Main; and the built binary's
// exit codes.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "client/channel.h"
#include "client/commands_common.h"
#include "client/pgm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/file.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(LocalConfig(4, 16));
    ASSERT_NE(server_, nullptr);
    target_ = Target(*server_);
  }
  CommandResult Run(std::vector<std::string> args,
                    const Terminal& terminal = {}) {
    args.push_back("--target");
    args.push_back(target_);
    return RunClient(args, terminal);
  }
  std::string TempPath(const std::string& name) {
    return (std::filesystem::path(::testing::TempDir()) / name).string();
  }
  // A 3x1 PGM (0, 0x90, 0: radius 1 blurs it to 0x30 each), written to
  // TempPath(name); its path.
  std::string WriteTinyPgm(const std::string& name) {
    client::GrayImage image;
    image.width = 3;
    image.height = 1;
    image.pixels = std::string("\x00\x90\x00", 3);
    const std::string path = TempPath(name);
    EXPECT_TRUE(client::WritePgm(path, image).ok()) << path;
    return path;
  }

  std::unique_ptr<service::ComputeServer> server_;
  std::string target_;
};

// round_robin (the default --lb) watches each server's health and sends
// nothing to one that says NOT_SERVING (a draining one: no call is sent
// into its GOAWAY); pick_first cannot watch in gRPC 1.51 and sends. The
// health command asks the health service itself, so it must reach such a
// server and print what it says, not fail to connect.
TEST_F(CommandsTest, CallsGoOnlyToAServingServerAndHealthSaysWhy) {
  server_->health().SetServing("compute.v1.Compute", false);
  CommandResult r = Run({"run", "fib", "--n", "1", "--deadline", "2s"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE")) << r.err;
  EXPECT_EQ(server_->pool().Stats().accepted, 0u) << "no call was sent";
  r = Run({"run", "fib", "--n", "1", "--lb", "pick_first"});
  EXPECT_EQ(r.rc, 0) << r.err;
  r = Run({"health", "--service", "compute.v1.Compute"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(r.out, "NOT_SERVING\n") << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_F(CommandsTest, RunFibPrintsTheResultAndWhereTheTimeWent) {
  CommandResult r = Run({"run", "fib", "--n", "20"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("fib(n=20) = 6765\n"));
  EXPECT_THAT(r.out, HasSubstr("queue "));
  EXPECT_THAT(r.out, HasSubstr(" ms, run "));
  EXPECT_THAT(r.out, HasSubstr(" ms, round trip "));
  EXPECT_THAT(r.out, HasSubstr("(worker "));
  // The connection's set-up apart from the call's round trip (until
  // 2026-12-07 in it: 4-47 ms for a first fib(1) of 2 us).
  EXPECT_THAT(r.out, ::testing::MatchesRegex("(.|\n)*\\); connect "
                                             "[0-9.]+ ms\n"));
  EXPECT_EQ(r.err, "");
}

TEST_F(CommandsTest, RunJsonIsMachineReadable) {
  CommandResult r = Run({"run", "fib", "--n", "20", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(json.fields().at("task").string_value(), "fib(n=20)");
  EXPECT_EQ(Object(json, "result").fields().at("value").string_value(), "6765");
  EXPECT_GE(Number(json, "round_trip_ms"), Number(json, "run_ms"));
  EXPECT_GE(Number(json, "connect_ms"), 0);
  EXPECT_GE(Number(json, "queue_ms"), 0);
  EXPECT_LT(Number(json, "worker"), 4);

  // A zero is a result: printed, not left out (until 2026-12-04, {}).
  r = Run({"run", "fib", "--n", "0", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(
      Object(ParseJson(r.out), "result").fields().at("value").string_value(),
      "0");
  r = Run({"run", "primes", "--limit", "1", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(
      Object(ParseJson(r.out), "result").fields().at("count").string_value(),
      "0");
}

TEST_F(CommandsTest, RunSpin) {
  CommandResult r = Run({"run", "spin", "--duration", "5ms"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("spin(duration=5.00ms) = spun "));
}

TEST_F(CommandsTest, RunSleep) {
  CommandResult r = Run({"run", "sleep", "--duration", "5ms"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("sleep(duration=5.00ms) = slept "));
}

TEST_F(CommandsTest, RunSha256OfDataAndOfAFile) {
  const std::string abc =
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  CommandResult r = Run({"run", "sha256", "--data", "abc"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "sha256(3 bytes, rounds=1) = " + abc);

  std::string file = TempPath("abc.txt");
  ASSERT_TRUE(WriteFile(file, "abc").ok());
  r = Run({"run", "sha256", "--file", file, "--rounds", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(abc));
}

TEST_F(CommandsTest, RunPrimes) {
  CommandResult r = Run({"run", "primes", "--limit", "1000000"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("primes(limit=1000000) = 78498 primes\n"));
}

TEST_F(CommandsTest, RunBlurReadsAndWritesBinaryPgm) {
  const std::string in_path = WriteTinyPgm("in.pgm");
  const std::string out_path = TempPath("blurred.pgm");
  CommandResult r =
      Run({"run", "blur", "--in", in_path, "--radius", "1", "--out", out_path});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("blur(3x1, radius=1) = 3x1 image\n"));
  EXPECT_THAT(r.out, HasSubstr("wrote " + out_path));
  auto out = client::ReadPgm(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->width, 3u);
  EXPECT_EQ(out->height, 1u);
  EXPECT_EQ(out->pixels, std::string("\x30\x30\x30", 3));
}

// An --out that cannot be written is a usage error before the call (it
// was found only once the blur had run), and a file that is there is
// replaced whole.
TEST_F(CommandsTest, AnOutThatCannotBeWrittenIsRefusedBeforeTheCall) {
  const std::string in_path = WriteTinyPgm("in-out.pgm");
  const uint64_t accepted = server_->pool().Stats().accepted;
  const std::string missing = TempPath("no-such-dir/out.pgm");
  CommandResult r = Run({"run", "blur", "--in", in_path, "--out", missing});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: cannot write " + missing +
                       ": No such file or directory\n");
  r = Run({"run", "blur", "--in", in_path, "--out", ::testing::TempDir()});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr(": Is a directory\n"));
  EXPECT_EQ(server_->pool().Stats().accepted, accepted) << "a call was made";
  const std::string out_path = TempPath("out-replaced.pgm");
  ASSERT_TRUE(WriteFile(out_path, "an older, longer file's contents").ok());
  r = Run({"run", "blur", "--in", in_path, "--out", out_path});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(server_->pool().Stats().accepted, accepted + 1);
  EXPECT_EQ(ReadFile(out_path).value_or("?"), "P5\n3 1\n255\n000");
}

// The server sees the tenant and priority that run and batch send.
TEST_F(CommandsTest, TenantAndPriorityAreSentAsMetadata) {
  Senders senders;
  auto server = StartServerSeenBy(senders);
  ASSERT_NE(server, nullptr);
  CommandResult r =
      RunClient({"run", "fib", "--n", "5", "--tenant", "a", "--priority",
                 "critical", "--target", Target(*server)});
  EXPECT_EQ(r.rc, 0) << r.err;
  r = RunClient({"batch", "fib", "5", "6", "7", "--tenant", "team-b",
                 "--priority", "sheddable", "--target", Target(*server)});
  EXPECT_EQ(r.rc, 0) << r.err;
  server.reset();  // every call's observers have run
  EXPECT_EQ(senders.tenant("a"), 1);
  EXPECT_EQ(senders.priority(Priority::kCritical), 1);
  EXPECT_EQ(senders.tenant("team-b"), 3);
  EXPECT_EQ(senders.priority(Priority::kSheddable), 3);
  EXPECT_EQ(senders.priority(Priority::kDefault), 0);

  r = Run({"run", "fib", "--n", "5", "--priority", "urgent"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("--priority must be critical, default or "
                               "sheddable (got 'urgent')"));
  client::CommonFlags common;
  common.tenant = "a";
  common.priority = "sheddable";
  EXPECT_EQ(client::CallMetadata(common),
            (std::vector<std::pair<std::string, std::string>>{
                {"compute-tenant", "a"}, {"compute-priority", "sheddable"}}));
  EXPECT_TRUE(client::CallMetadata(client::CommonFlags()).empty());
}

TEST_F(CommandsTest, NonOkStatusIsCodeAndMessageOnStderrAndExit1) {
  CommandResult r = Run({"run", "fib", "--n", "51"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("INVALID_ARGUMENT: "));
  EXPECT_THAT(r.err, HasSubstr("fib.n"));
}

// run, health and bench with `--target target`: each a usage error (exit
// 2) whose line says "--target <target><says>".
void ExpectTargetRefused(const std::string& target, const std::string& says) {
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"run", "fib", "--n", "1"},
                                             {"health"},
                                             {"bench", "--requests", "1"}}) {
    std::vector<std::string> args = command;
    args.push_back("--target");
    args.push_back(target);
    CommandResult r = RunClient(args);
    EXPECT_EQ(r.rc, 2) << target << " " << command[0] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("--target " + target + says)) << command[0];
  }
}

TEST_F(CommandsTest, UsageErrorsAreOneLineAndExit2) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"run", "fib", "--bogus", "1"},
           {"run", "fib", "--n", "many"},
           {"run", "nosuchtask"},
           {"run"},
           {"run", "blur"},
           {"batch", "fib"},
           {"bench", "--rate", "-5"},
           // its schedule would overflow
           {"bench", "--rate", "1e-300", "--requests", "3"},
           {"bench", "--connections", "0"},
           {"health", "extra"},
           {"frobnicate"}}) {
    CommandResult r = RunClient(args);
    EXPECT_EQ(r.rc, 2) << args[0] << " " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// A number too large for the flag says the flag's range, not "expected an
// integer" (which it is).
TEST_F(CommandsTest, ANumberTooLargeForAFlagSaysItsRange) {
  CommandResult r = RunClient({"bench", "--connections", "99999999999"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err,
            "compute-client bench: bad value for --connections: "
            "'99999999999': out of range, from -2147483648 to 2147483647\n");
  r = RunClient({"bench", "--requests", "18446744073709551616"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("'18446744073709551616': out of range, from 0 "
                               "to 18446744073709551615\n"));
  r = RunClient({"bench", "--connections", "0x80000000"});
  EXPECT_THAT(r.err, HasSubstr("'0x80000000': out of range, from -2147483648"));
  r = RunClient({"bench", "--requests", "-0"});
  EXPECT_THAT(r.err, HasSubstr("'-0': expected a non-negative integer\n"));
}

// gRPC takes a port modulo 65536 (127.0.0.1:112836 reached port 47300):
// a typo would have run against, or health-checked, another server. A
// port out of range is a usage error, for every command and balancer; so
// is a target gRPC cannot parse.
// An empty TLS flag (a script's unset variable) was as if not given: `run
// --ca=` talked plaintext, `--tls --ca=` trusted the system's roots, and
// `--cert= --key=` sent no client certificate, each silently.
TEST_F(CommandsTest, AnEmptyTlsFlagIsAUsageError) {
  for (const std::string flag : {"ca", "cert", "key", "server_name"}) {
    for (const std::vector<std::string>& command :
         std::vector<std::vector<std::string>>{{"run", "fib", "--n", "1"},
                                               {"health"},
                                               {"bench", "--requests", "1"}}) {
      std::vector<std::string> args = command;
      args.push_back("--target=" + target_);
      args.push_back("--" + flag + "=");
      CommandResult r = Run(args);
      EXPECT_EQ(r.rc, 2) << args[0] << " --" << flag;
      EXPECT_THAT(r.err, HasSubstr("--" + flag + " is empty: "))
          << args[0] << " --" << flag;
    }
  }
}

TEST_F(CommandsTest, ATargetPortOutOfRangeIsAUsageError) {
  for (const std::string& target :
       {std::string("127.0.0.1:112836"), std::string("dns:///localhost:0"),
        std::string("dns://8.8.8.8/localhost:99999"),
        std::string("ipv4:127.0.0.1:50051,127.0.0.1:70000"),
        std::string("[::1]:"), std::string("localhost:gopher")}) {
    for (const std::vector<std::string>& command :
         std::vector<std::vector<std::string>>{
             {"run", "fib", "--n", "1"},
             {"health"},
             {"bench", "--requests", "1"},
             {"bench", "--requests", "1", "--lb", "least_loaded"}}) {
      std::vector<std::string> args = command;
      args.push_back("--target");
      args.push_back(target);
      CommandResult r = RunClient(args);
      EXPECT_EQ(r.rc, 2) << target << " " << command[0] << ": " << r.err;
      EXPECT_THAT(r.err, HasSubstr("--target " + target + ": port '"))
          << command[0];
      EXPECT_THAT(r.err, HasSubstr("is not a port (1-65535)"));
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  // A list of no address: gRPC takes it, and every call fails UNAVAILABLE
  // (bench after its whole connect wait).
  for (const std::string target : {"ipv4:", "ipv6:,"}) {
    ExpectTargetRefused(target, ": lists no address");
  }
  // A list without its scheme: gRPC looked it up as one name ("DNS
  // resolution failed", exit 1; bench after its whole connect wait).
  for (const std::string target :
       {"127.0.0.1:50051,127.0.0.1:50052", "dns:///a:1,b:2"}) {
    ExpectTargetRefused(
        target, ": a list of addresses needs the ipv4: or ipv6: scheme");
  }
  // Targets gRPC cannot parse (it logs a line of its own first): a usage
  // error at once, not UNKNOWN on every call after bench's connect wait.
  ExpectTargetRefused("dns:///", ": not a target gRPC can use");
  // An ipv4: or ipv6: address without a port: said before gRPC logs its
  // own lines, so the error is one line.
  for (const std::string target :
       {"ipv4:127.0.0.1", "ipv4:127.0.0.1:1,127.0.0.2", "ipv6:[::1]",
        "ipv4:///127.0.0.1", "ipv6:127.0.0.1"}) {
    ExpectTargetRefused(target, ": ");
    CommandResult r = RunClient({"health", "--target", target});
    EXPECT_THAT(r.err, HasSubstr(" has no port (an ipv4: or ipv6: address"));
    // The example is of the target's own scheme.
    EXPECT_THAT(r.err, HasSubstr(absl::StartsWith(target, "ipv6:")
                                     ? "needs one: ipv6:[::1]:50051)"
                                     : "needs one: ipv4:127.0.0.1:50051)"));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // An IP address without a port and without ipv4:/ipv6:: gRPC dialled
  // port 0 (a host name gets 443).
  for (const std::string target :
       {"127.0.0.1", "dns:///127.0.0.1", "[::1]", "[fe80::1%lo]"}) {
    ExpectTargetRefused(target, ": ");
    CommandResult r = RunClient({"health", "--target", target});
    EXPECT_THAT(r.err,
                HasSubstr(" has no port (gRPC dials port 0 for an IP address"));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  for (const std::string target :
       {"ipv6:::1", "ipv6:::1:50051", "::1", "::1:50051"}) {
    ExpectTargetRefused(target, ": ");
    EXPECT_THAT(RunClient({"health", "--target", target}).err,
                HasSubstr(" needs brackets around the IPv6 address"));
  }
  // A port's name after an IP address: gRPC dialled port 0.
  for (const std::string target :
       {"127.0.0.1:http", "[::1]:https", "ipv4:127.0.0.1:http",
        "[fe80::1%lo]:http"}) {
    ExpectTargetRefused(target, ": write the port as a number (");
  }
  for (absl::string_view target :
       {"localhost", "localhost:https", "dns:///localhost:http",
        "unix:/tmp/compute.sock", "dns:///localhost:50051",
        "dns://8.8.8.8/localhost:443", "[::1]:50051",
        "ipv6:[::1]:1,[::1]:65535", "ipv4:///127.0.0.1:1,127.0.0.2:2",
        "ipv6:///[::1]:50051"}) {
    EXPECT_TRUE(client::CheckTargetPorts(target).ok()) << target;
  }
}

// A missing input file and a malformed one are the same mistake on the
// command line: exit 2, "cannot read FILE: reason".
TEST_F(CommandsTest, InputFilesThatCannotBeReadAreUsageErrors) {
  std::string missing = TempPath("does-not-exist");
  CommandResult r = Run({"run", "sha256", "--file", missing});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: cannot read " + missing +
                       ": No such file or directory\n");

  std::string text = TempPath("not-an-image.pgm");
  ASSERT_TRUE(WriteFile(text, "hello").ok());
  r = Run({"run", "blur", "--in", text});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: cannot read " + text +
                       ": not a binary PGM image (the file must start with "
                       "P5)\n");

  r = Run({"run", "blur", "--in", missing});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: cannot read " + missing +
                       ": No such file or directory\n");

  r = Run({"run", "fib", "--ca", missing});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: --ca: cannot read " + missing +
                       ": No such file or directory\n");
}

// gRPC takes printable ASCII alone in a metadata value, and aborted the
// process on anything else (its "API misuse" assertion); the server takes
// a tenant of 128 bytes at most.
TEST_F(CommandsTest, ATenantGrpcCannotSendIsAUsageError) {
  const std::string rule =
      "--tenant must be at most 128 bytes of printable ASCII (space to ~)";
  struct Case {
    std::vector<std::string> args;
    std::string err;
  } cases[] = {
      {{"run", "fib", "--n", "5", "--tenant", "caf\xc3\xa9"},
       "compute-client run: " + rule + " (byte 4 is 0xc3)"},
      {{"run", "fib", "--n", "5", "--tenant", "a\nb"},
       "compute-client run: " + rule + " (byte 2 is 0x0a)"},
      {{"run", "fib", "--n", "5", "--tenant", std::string(129, 't')},
       "compute-client run: " + rule + " (got 129 bytes)"},
      {{"batch", "fib", "5", "--tenant", "\x7f"},
       "compute-client batch: " + rule + " (byte 1 is 0x7f)"},
      // The server refuses it (a proxy's value joined to the client's).
      {{"run", "fib", "--n", "5", "--tenant", "a,b"},
       "compute-client run: --tenant must not hold a comma"},
      {{"bench", "--task", "fib", "--n", "1", "--requests", "1", "--tenant",
        "t\tab"},
       "compute-client bench: " + rule + " (byte 2 is 0x09)"},
      {{"run", "fib", "--n", "5", "--deadline", "-5s"},
       "compute-client run: --deadline must be > 0 (got -5s)"},
      {{"batch", "fib", "5", "--deadline", "0s"},
       "compute-client batch: --deadline must be > 0 (got 0)"},
      {{"health", "--deadline", "0s"},
       "compute-client health: --deadline must be > 0 (got 0)"},
      {{"run", "sha256", "--file", ""},
       "compute-client run: --file: empty path"},
      {{"bench", "--task", "sha256", "--file", "", "--requests", "1"},
       "compute-client bench: --file: empty path"},
      // --out="$OUT" with OUT unset wrote the image to stdout.
      {{"run", "blur", "--in", "x.pgm", "--out", ""},
       "compute-client run: --out: empty path"},
      {{"run", "blur", "--in", ""}, "compute-client run: --in: empty path"},
      {{"bench", "--task", "fib", "--n", "1", "--time", "inf"},
       "compute-client bench: --time inf needs --requests N (a run must "
       "end)"},
      {{"run", "sha256", "--file", "/dev/null", "--data", ""},
       "compute-client run: sha256 takes --file or --data, not both"},
      {{"bench", "--task", "fib", "--n", "1", "--requests", "1", "--mix",
        "caf\xc3\xa9"},
       "compute-client bench: --mix: entry 'caf\\xc3\\xa9': the name must be "
       "at most 128 bytes of printable ASCII (space to ~) (byte 4 is 0xc3)"},
  };
  for (const Case& c : cases) {
    CommandResult r = Run(c.args);
    EXPECT_EQ(r.rc, 2) << c.err;
    EXPECT_EQ(r.err, c.err + "\n");
  }
  CommandResult r =
      Run({"run", "fib", "--n", "5", "--tenant", std::string(128, 't')});
  EXPECT_EQ(r.rc, 0) << r.err;
}

// A flag that does not apply is an error naming the conflict, never
// silently dropped.
TEST_F(CommandsTest, FlagsThatDoNotApplyAreUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  std::vector<Case> cases = {
      {{"run", "fib", "--duration", "5s"},
       "compute-client run: --duration is spin's and sleep's flag, not "
       "fib's"},
      {{"run", "spin", "--n", "5"},
       "compute-client run: --n is fib's flag, not spin's"},
      {{"bench", "--rate", "10", "--concurrency", "5"},
       "compute-client bench: --rate (open loop) and --concurrency (closed "
       "loop) do not go together: give one"},
      {{"bench", "--task", "spin", "--limit", "100"},
       "compute-client bench: --limit is primes's flag, not spin's"},
      {{"bench", "--task", "sha256"},
       "compute-client bench: sha256 needs --data TEXT or --file FILE"},
      {{"batch", "fib", "40", "--n", "3"},
       "compute-client batch: unknown flag --n (see --help)"},
      {{"batch", "fib", "40", "--rounds", "3"},
       "compute-client batch: --rounds is sha256's flag, not fib's"},
      // A negative number is an argument, refused with the reason (it was
      // "unknown flag --1", and the reason was left out).
      {{"batch", "fib", "3", "-1"},
       "compute-client batch: bad fib argument '-1': out of range, from 0 to "
       "4294967295"},
      {{"batch", "fib", "x"},
       "compute-client batch: bad fib argument 'x': expected a non-negative "
       "integer"},
      {{"batch", "spin", "-inf"},
       "compute-client batch: bad spin argument '-inf': a task's duration "
       "must be finite"},
      {{"batch", "spin", "10ms", "5"},
       "compute-client batch: bad spin argument '5': expected a duration "
       "such as 250ms, 10s, 1m or inf"},
      {{"health", "--retry"},
       "compute-client health: unknown flag --retry (see --help)"},
  };
  for (const Case& c : cases) {
    CommandResult r = Run(c.args);
    EXPECT_EQ(r.rc, 2) << c.err;
    EXPECT_EQ(r.err, c.err + "\n");
  }
  // --rate 0 is the closed loop (its help says so): it goes with
  // --concurrency.
  CommandResult r = Run({"bench", "--task", "fib", "--n", "1", "--rate", "0",
                         "--concurrency", "2", "--requests", "4", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Number(ParseJson(r.out), "concurrency"), 2) << r.out;
}

// Flags that were dropped without a word: bench never writes --out, an
// --mix whose every entry has its own rate= or concurrency= takes no
// --concurrency, and --server_name is TLS's.
TEST_F(CommandsTest, FlagsThatWouldBeIgnoredAreUsageErrors) {
  const std::string in_path = WriteTinyPgm("in-bench-out.pgm");
  struct Case {
    std::vector<std::string> args;
    std::string err;
  } cases[] = {
      {{"bench", "--task", "blur", "--in", in_path, "--out",
        TempPath("never.pgm"), "--requests", "1"},
       "compute-client bench: unknown flag --out (see --help)"},
      {{"bench", "--task", "fib", "--n", "1", "--requests", "1", "--mix",
        "a:rate=5,b:concurrency=2", "--concurrency", "3"},
       "compute-client bench: --concurrency applies to no --mix entry (each "
       "gives its own rate= or concurrency=): drop it"},
      {{"run", "fib", "--n", "5", "--server_name", "localhost"},
       "compute-client run: --server_name applies only with TLS (--tls, --ca, "
       "--cert or --key)"},
      {{"health", "--server_name", "localhost"},
       "compute-client health: --server_name applies only with TLS (--tls, "
       "--ca, --cert or --key)"},
      // The JSON never holds the pixels: the image would be dropped.
      {{"run", "blur", "--in", in_path, "--json"},
       "compute-client run: blur with --json needs --out FILE.pgm (the "
       "image never goes into the JSON)"},
  };
  for (const Case& c : cases) {
    CommandResult r = Run(c.args);
    EXPECT_EQ(r.rc, 2) << c.err;
    EXPECT_EQ(r.err, c.err + "\n");
  }
  EXPECT_FALSE(std::filesystem::exists(TempPath("never.pgm")));
  // --concurrency still sets the entries that take it.
  CommandResult r =
      Run({"bench", "--task", "fib", "--n", "1", "--requests", "4", "--mix",
           "a:rate=50,b", "--concurrency", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  const auto& mix = json.fields().at("mix").list_value().values();
  ASSERT_EQ(mix.size(), 2);
  EXPECT_EQ(Number(mix[1].struct_value(), "concurrency"), 2) << r.out;
  EXPECT_EQ(Number(mix[0].struct_value(), "rate"), 50) << r.out;
}

// Each command's --help lists the flags it takes, and no others.
TEST_F(CommandsTest, HelpListsOnlyTheCommandsOwnFlags) {
  auto flags_of = [](const std::string& command) {
    std::string help = RunClient({command, "--help"}).out;
    std::vector<std::string> names;
    for (size_t at = help.find("\n  --"); at != std::string::npos;
         at = help.find("\n  --", at + 1)) {
      names.push_back(help.substr(at + 5, help.find(' ', at + 5) - at - 5));
    }
    return names;
  };
  using ::testing::Contains;
  using ::testing::IsSupersetOf;
  using ::testing::Not;
  auto batch = flags_of("batch");
  EXPECT_THAT(batch, IsSupersetOf({"target", "deadline", "rounds", "retry"}));
  for (const char* other : {"in", "out", "n", "duration", "limit", "file",
                            "data", "radius", "rate", "task"}) {
    EXPECT_THAT(batch, Not(Contains(other))) << other;
  }
  auto health = flags_of("health");
  EXPECT_THAT(health, IsSupersetOf({"target", "deadline", "service"}));
  for (const char* other : {"retry", "tenant", "priority", "n", "rounds"}) {
    EXPECT_THAT(health, Not(Contains(other))) << other;
  }
  EXPECT_THAT(flags_of("bench"),
              IsSupersetOf({"task", "n", "duration", "rate", "concurrency",
                            "connect_timeout", "max_error_rate", "in"}));
  EXPECT_THAT(flags_of("bench"), Not(Contains("out")));
  EXPECT_THAT(flags_of("run"), IsSupersetOf({"n", "duration", "in", "out"}));
  EXPECT_THAT(flags_of("run"), Not(Contains("rate")));
}

TEST_F(CommandsTest, Sha256HashesStdinWhenGivenNoData) {
  const std::string abc =
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  CommandResult r =
      Run({"run", "sha256"}, {.out_is_terminal = false, .stdin_text = "abc"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sha256(3 bytes, rounds=1) = " + abc));

  r = Run({"run", "sha256"});  // stdin a terminal: nothing to hash
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err,
            "compute-client run: sha256 needs --data TEXT or --file FILE (or "
            "its data on stdin)\n");
}

// The server hashes at most 4 MiB: more is refused before it is sent, and
// never read whole (--file /dev/zero, or stdin, may have no end).
TEST_F(CommandsTest, Sha256DataOverTheServersLimitIsAUsageError) {
  const std::string limit = "sha256.data must be at most 4194304 bytes (4 MiB)";
  const std::string big = TempPath("over-4mib.bin");
  ASSERT_TRUE(WriteFile(big, std::string((4 << 20) + 1, 'x')).ok());
  CommandResult r = Run({"run", "sha256", "--file", big});
  ASSERT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.err,
            "compute-client run: " + limit + ": --file " + big + " has more\n");

  r = Run({"run", "sha256"}, {.stdin_text = std::string((4 << 20) + 1, 'x')});
  ASSERT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.err, "compute-client run: " + limit + ": stdin has more\n");

  r = Run({"run", "sha256", "--file", "/dev/zero"});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.err,
            "compute-client run: " + limit + ": --file /dev/zero has more\n");
  r = Run(
      {"bench", "--task", "sha256", "--file", "/dev/zero", "--requests", "1"});
  EXPECT_EQ(r.rc, 2) << r.err;

  const std::string most = TempPath("4mib.bin");
  ASSERT_TRUE(WriteFile(most, std::string(4 << 20, 'x')).ok());
  r = Run({"run", "sha256", "--file", most});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("sha256(4194304 bytes, rounds=1) = "));
}

// A directory read as a stream is empty: `--file /tmp` hashed 0 bytes.
TEST_F(CommandsTest, ADirectoryIsNotAnInputFile) {
  const std::string dir = TempPath("a-directory");
  std::filesystem::create_directories(dir);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"run", "sha256", "--file", dir},
                                             {"run", "blur", "--in", dir},
                                             {"run", "fib", "--ca", dir}}) {
    CommandResult r = Run(args);
    EXPECT_EQ(r.rc, 2) << args[1];
    // A TLS file's error names its flag too.
    const std::string flag = args[2] == "--ca" ? "--ca: " : "";
    EXPECT_EQ(r.err, "compute-client run: " + flag + "cannot read " + dir +
                         ": Is a directory\n");
  }
}

// A pipe in one end and out the other, as a path (/dev/fd/N): an input
// that can be read once, and has no size.
class Pipe {
 public:
  explicit Pipe(const std::string& contents) {
    EXPECT_EQ(pipe(fds_), 0);
    // Within the pipe's buffer (64 KiB): written whole before any read.
    EXPECT_EQ(write(fds_[1], contents.data(), contents.size()),
              static_cast<ssize_t>(contents.size()));
    close(fds_[1]);
  }
  ~Pipe() { close(fds_[0]); }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  std::string path() const { return "/dev/fd/" + std::to_string(fds_[0]); }

 private:
  int fds_[2] = {-1, -1};
};

// The output keeps the input's maxval, which was read again from --in
// after the call: from a pipe, already read, it was 255.
TEST_F(CommandsTest, BlurFromAPipeKeepsTheInputsMaxval) {
  client::GrayImage in;
  in.width = 3;
  in.height = 1;
  in.maxval = 100;
  in.pixels = std::string("\x00\x60\x00", 3);
  Pipe to_stdout(client::EncodePgm(in));
  CommandResult r = Run({"run", "blur", "--in", to_stdout.path()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "P5\n3 1\n100\n" + std::string("\x20\x20\x20", 3));

  Pipe to_file(client::EncodePgm(in));
  const std::string out_path = TempPath("maxval.pgm");
  r = Run({"run", "blur", "--in", to_file.path(), "--out", out_path});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto out = client::ReadPgm(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->maxval, 100u);
}

// A header alone promised 3.6 GB of pixels from a pipe, which has no size
// to check it against.
TEST_F(CommandsTest, BlurOfMorePixelsThanTheServerTakesIsAUsageError) {
  Pipe header("P5\n60000 60000\n255\n");
  CommandResult r = Run({"run", "blur", "--in", header.path()});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: cannot read " + header.path() +
                       ": PGM: 60000x60000 is 3600000000 pixels, over the "
                       "16777216 a blur takes\n");
}

TEST_F(CommandsTest, BlurWithoutOutWritesTheImageToStdoutOrSaysItDidNot) {
  const std::string in_path = WriteTinyPgm("in-stdout.pgm");

  CommandResult piped = Run({"run", "blur", "--in", in_path});
  ASSERT_EQ(piped.rc, 0) << piped.err;
  auto image = client::ParsePgm(piped.out);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->pixels, std::string("\x30\x30\x30", 3));
  EXPECT_THAT(piped.err, StartsWith("blur(3x1, radius=1) = 3x1 image\n"));

  CommandResult terminal =
      Run({"run", "blur", "--in", in_path},
          {.out_is_terminal = true, .stdin_text = std::nullopt});
  ASSERT_EQ(terminal.rc, 0) << terminal.err;
  EXPECT_THAT(terminal.out, StartsWith("blur(3x1, radius=1) = 3x1 image\n"));
  EXPECT_EQ(terminal.err,
            "compute-client run: the blurred image was not written (give "
            "--out FILE.pgm, or redirect stdout)\n");
}

TEST_F(CommandsTest, SpinOfAnInfiniteDurationIsAUsageError) {
  CommandResult r = Run({"run", "spin", "--duration", "inf"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "compute-client run: --duration must be finite (got inf)\n");
}

TEST_F(CommandsTest, HelpGoesToStdoutAndExits0) {
  CommandResult r = RunClient({"bench", "--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("--concurrency"));
  EXPECT_THAT(r.out, HasSubstr("--target"));
  EXPECT_EQ(RunClient({"--help"}).rc, 0);
}

TEST_F(CommandsTest, BatchPrintsInInputOrder) {
  // With four workers these finish in the order 1ms, 20ms, 100ms, 200ms;
  // the output must still follow the command line.
  CommandResult r = Run({"batch", "spin", "200ms", "1ms", "100ms", "20ms"});
  ASSERT_EQ(r.rc, 0) << r.err;
  size_t a = r.out.find("spin(duration=200ms)");
  size_t b = r.out.find("spin(duration=1.00ms)");
  size_t c = r.out.find("spin(duration=100ms)");
  size_t d = r.out.find("spin(duration=20.0ms)");
  size_t wall = r.out.find("wall time ");
  ASSERT_NE(a, std::string::npos) << r.out;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
  EXPECT_LT(d, wall);
  EXPECT_THAT(r.out, HasSubstr("for 4 calls"));
  EXPECT_THAT(r.out, ::testing::MatchesRegex(
                         "(.|\n)*; connect [0-9.]+ ms before\\)\n"));
}

TEST_F(CommandsTest, BatchOfTheSeed) {
  CommandResult r =
      Run({"batch", "fib", "20", "21", "22", "18", "19", "23", "17", "24"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const char* expected[] = {"fib(n=20) = 6765",  "fib(n=21) = 10946",
                            "fib(n=22) = 17711", "fib(n=18) = 2584",
                            "fib(n=19) = 4181",  "fib(n=23) = 28657",
                            "fib(n=17) = 1597",  "fib(n=24) = 46368"};
  size_t at = 0;
  for (const char* line : expected) {
    size_t found = r.out.find(line, at);
    ASSERT_NE(found, std::string::npos) << line << "\n" << r.out;
    at = found;
  }
  EXPECT_EQ(server_->pool().Stats().accepted, 8u);
}

TEST_F(CommandsTest, BatchJsonAndAFailedCall) {
  CommandResult r = Run({"batch", "fib", "10", "99", "--json"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("1 of 2 calls failed"));
  google::protobuf::Struct json = ParseJson(r.out);
  const auto& results = json.fields().at("results").list_value();
  ASSERT_EQ(results.values_size(), 2);
  EXPECT_EQ(results.values(0).struct_value().fields().at("task").string_value(),
            "fib(n=10)");
  EXPECT_EQ(results.values(1).struct_value().fields().at("code").string_value(),
            "INVALID_ARGUMENT");
  EXPECT_EQ(Number(json, "failed"), 1);
}

TEST_F(CommandsTest, HealthServing) {
  CommandResult r = Run({"health"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Run({"health", "--service", "compute.v1.Compute", "--json"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out).fields().at("status").string_value(), "SERVING");
}

TEST_F(CommandsTest, HealthOfAnUnknownServiceOrNoServerIsExit1) {
  CommandResult r = Run({"health", "--service", "no.such.Service"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("NOT_FOUND: "));
  // No server: a port held closed, so that no other test's server takes it.
  LoopbackPort closed;
  r = RunClient({"health", "--deadline", "5s", "--target", closed.target()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("UNAVAILABLE: "));
}

// The built binary: what the container's HEALTHCHECK and scripts see.
// `stdout_to`: a file for its stdout (only stderr is in *output then);
// `env`: variables for it (NAME=value ...).
int RunBinary(const std::string& args, std::string* output,
              const std::string& stdout_to = "", const std::string& env = "") {
  std::string command = "env " + env + " " + COMPUTE_CLIENT_BINARY + " " +
                        args + " 2>&1" +
                        (stdout_to.empty() ? "" : " >" + stdout_to);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(CommandsTest, BinaryExitCodes) {
  std::string out;
  EXPECT_EQ(RunBinary("health --target " + target_, &out), 0) << out;
  EXPECT_EQ(out, "SERVING\n");
  out.clear();
  EXPECT_EQ(RunBinary("run fib --n 10 --target " + target_, &out), 0) << out;
  EXPECT_THAT(out, StartsWith("fib(n=10) = 55\n"));
  out.clear();
  EXPECT_EQ(RunBinary("bench --bogus", &out), 2);
  EXPECT_EQ(out, "compute-client bench: unknown flag --bogus (see --help)\n");
  out.clear();
  EXPECT_EQ(RunBinary("run fib --n 51 --target " + target_, &out), 1);
  EXPECT_THAT(out, StartsWith("INVALID_ARGUMENT: "));
}

// stdin that cannot be read (a directory, a closed descriptor) is a usage
// error naming the reason, not empty data: until 2026-12-06 the
// binary's std::cin took the failed read for the end, and `run sha256 < DIR`
// printed the digest of 0 bytes and exited 0.
TEST_F(CommandsTest, StdinThatCannotBeReadIsAnErrorNotEmptyData) {
  const std::string dir = ::testing::TempDir();
  std::string out;
  EXPECT_EQ(RunBinary("run sha256 --target " + target_ + " < " + dir, &out), 2);
  EXPECT_EQ(out, "compute-client run: cannot read stdin: Is a directory\n");
  out.clear();
  // Closed: gRPC's start-up takes descriptor 0 for an eventfd of its own
  // (EAGAIN); whatever the read says, it is an error, not 0 bytes.
  EXPECT_EQ(RunBinary("run sha256 --target " + target_ + " <&-", &out), 2);
  EXPECT_THAT(out, StartsWith("compute-client run: cannot read stdin: "));
  out.clear();
  EXPECT_EQ(RunBinary("run sha256 --target " + target_ + " < /dev/null", &out),
            0)
      << out;
  EXPECT_THAT(out, StartsWith("sha256(0 bytes, rounds=1) = e3b0c442"));
}

// A failure gRPC logs lines of its own for (a TLS handshake with a
// plaintext server) is the status's one line; GRPC_VERBOSITY brings
// gRPC's lines back.
TEST_F(CommandsTest, TheBinarysErrorIsOneLineUnlessGrpcIsAskedToLog) {
  const std::string args = "health --tls --deadline 5s --target " + target_;
  std::string out;
  EXPECT_EQ(RunBinary(args, &out), 1);
  EXPECT_THAT(out, StartsWith("UNAVAILABLE: "));
  EXPECT_THAT(out, HasSubstr("handshake failed"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  out.clear();
  EXPECT_EQ(RunBinary(args, &out, "", "GRPC_VERBOSITY=ERROR"), 1);
  EXPECT_THAT(out, HasSubstr("Handshake failed with fatal error"));
  EXPECT_GT(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

// Output that never reached stdout (a full disk, a closed pipe) is a
// failure, not success: the image or the result is lost.
TEST_F(CommandsTest, AFailedWriteToStdoutExits1) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string in_path = WriteTinyPgm("in-full.pgm");
  const std::string full = ": cannot write stdout: No space left on device\n";
  struct Case {
    std::string args;
    std::string err;
  } cases[] = {
      {"run fib --n 10", "compute-client run" + full},
      {"run blur --in " + in_path, "compute-client run" + full},
      {"run fib --n 10 --json", "compute-client run" + full},
      {"batch fib 5 6", "compute-client batch" + full},
      {"bench --task fib --n 1 --requests 5 --json",
       "compute-client bench" + full},
      {"health", "compute-client health" + full},
      {"--help", "compute-client" + full},
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(RunBinary(c.args + " --target " + target_, &out, "/dev/full"), 1)
        << c.args << "\n"
        << out;
    EXPECT_EQ(out, c.err) << c.args;
  }
}

}  // namespace
}  // namespace compute::testing
