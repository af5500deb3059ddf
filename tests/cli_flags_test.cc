// The command line of the `tern` tool: errors for bad flags, values and
// commands, the --help of every command, and arguments passed on verbatim.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

RunResult tern_cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {cli_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, "", 10s);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Nothing listens there: a command line that got as far as connecting would
// fail with exit status 1, not 2.
std::string no_server() { return "127.0.0.1:" + std::to_string(free_port()); }

// Runs `tern --server <nowhere> <args>` and checks that it is refused as a
// bad command line: exit status 2, and on stderr one line "tern: ..." holding
// every one of `parts`, then one line pointing to `help` ("tern sub --help").
void check_refused(const std::vector<std::string>& args,
                   const std::vector<std::string>& parts,
                   const std::string& help) {
  std::vector<std::string> argv = {"--server", no_server()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = tern_cli(argv);
  std::string shown;
  for (const auto& arg : args) shown += arg + " ";
  INFO("args: " << shown << "\nstderr: " << result.err);
  CHECK(result.exit_code == 2);
  CHECK(result.out.empty());
  size_t end = result.err.find('\n');
  REQUIRE(end != std::string::npos);
  std::string first = result.err.substr(0, end);
  CHECK(first.rfind("tern: ", 0) == 0);
  for (const auto& part : parts) CHECK(contains(first, part));
  CHECK(result.err.substr(end + 1) == "Run '" + help + "' for usage.\n");
}

}  // namespace

TEST_CASE("cli flags: an unknown flag is named") {
  check_refused({"sub", "t", "--bogus"}, {"--bogus"}, "tern sub --help");
  check_refused({"topics", "create", "t", "--max-ages", "1d"}, {"--max-ages"},
                "tern topics create --help");
  check_refused({"--bogus", "sub", "t"}, {"--bogus"}, "tern sub --help");
}

TEST_CASE("cli flags: a bad value names the flag and the form it wants") {
  check_refused({"topics", "create", "t", "--max-bytes", "10XB"},
                {"--max-bytes must be", "KiB", "'10XB'"},
                "tern topics create --help");
  check_refused({"topics", "alter", "t", "--max-bytes=0"},
                {"--max-bytes must be", "'0'"}, "tern topics alter --help");
  check_refused({"topics", "create", "t", "--max-age", "3 days"},
                {"--max-age must be", "24h", "'3 days'"},
                "tern topics create --help");
  check_refused({"request", "t", "m", "--timeout", "60d"},
                {"--timeout must be at most", "'60d'"}, "tern request --help");
  check_refused({"sub", "t", "--from", "yesterday"},
                {"--from must be", "earliest, latest, offset:N or time:UNIX_MS",
                 "'yesterday'"},
                "tern sub --help");
  check_refused({"subs", "reset", "t", "s", "--to", "time:soon"},
                {"--to must be", "time:UNIX_MS"}, "tern subs reset --help");
  check_refused({"sub", "t", "--timeout", "soon"},
                {"--timeout must be a number of seconds"}, "tern sub --help");
  check_refused({"sub", "t", "--prefetch", "5000000000"},
                {"--prefetch must be", "4294967295"}, "tern sub --help");
  check_refused({"reply", "t", "--exec", ""}, {"--exec must not be empty"},
                "tern reply --help");
}

TEST_CASE("cli flags: an unknown or missing command is named") {
  check_refused({"frobnicate", "t"}, {"unknown command 'frobnicate'"},
                "tern --help");
  check_refused({"topics", "frobnicate"}, {"unknown command 'frobnicate'"},
                "tern topics --help");
  check_refused({}, {"missing a command", "pub", "reply"}, "tern --help");
  check_refused({"subs"}, {"missing a command: reset or delete"},
                "tern subs --help");
}

TEST_CASE("cli flags: a missing argument is named") {
  check_refused({"sub"}, {"missing TOPIC"}, "tern sub --help");
  check_refused({"subs", "reset", "t", "s"},
                {"missing --to POSITION", "'subs delete TOPIC NAME'"},
                "tern subs reset --help");
  check_refused({"sub", "t", "--count"}, {"--count"}, "tern sub --help");
  check_refused({"sub", "t", "extra"}, {"extra"}, "tern sub --help");
}

TEST_CASE("cli flags: --help lists every command and every option") {
  auto main_help = tern_cli({"--help"});
  CHECK(main_help.exit_code == 0);
  for (const char* part :
       {"--server HOST:PORT", "$TERN_SERVER", "pub TOPIC [MESSAGE...]",
        "sub TOPIC", "topics list", "topics info TOPIC", "topics create TOPIC",
        "topics alter TOPIC", "topics delete TOPIC",
        "subs reset TOPIC NAME --to POSITION", "subs delete TOPIC NAME",
        "request TOPIC MESSAGE", "reply TOPIC --exec CMD"}) {
    CHECK_MESSAGE(contains(main_help.out, part), part);
  }
  // `tern help` is kept from before as the same page.
  CHECK(tern_cli({"help"}).out == main_help.out);

  const std::vector<std::string> retention = {
      "--max-age DURATION",    "--max-bytes SIZE",
      "--max-messages N",      "--work-queue",
      "--dead-letter-expired", "--no-dead-letter-expired"};
  struct Case {
    std::vector<std::string> command;
    std::vector<std::string> options;
  };
  std::vector<Case> cases = {
      {{"pub"}, {"TOPIC", "MESSAGE", "'--'"}},
      {{"sub"},
       {"TOPIC", "--subscription NAME", "--from POSITION", "--count N",
        "--timeout SECONDS", "--prefetch N", "orders.>"}},
      {{"topics"}, {"topics list", "topics alter TOPIC"}},
      {{"topics", "list"}, {}},
      {{"topics", "info"}, {"TOPIC", "lag"}},
      {{"topics", "create"}, retention},
      {{"topics", "alter"}, retention},
      {{"topics", "delete"}, {"TOPIC"}},
      {{"subs"}, {"subs reset TOPIC NAME --to POSITION"}},
      {{"subs", "reset"}, {"TOPIC", "NAME", "--to POSITION", "offset:N"}},
      {{"subs", "delete"}, {"TOPIC", "NAME"}},
      {{"request"}, {"TOPIC", "MESSAGE", "--timeout DURATION", "5s"}},
      {{"reply"},
       {"TOPIC", "--exec CMD", "--subscription NAME", "responders", "--count N",
        "/bin/sh -c"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.command;
    args.push_back("--help");
    auto result = tern_cli(args);
    std::string name;
    for (const auto& word : c.command) name += word + " ";
    INFO("tern " << name << "--help:\n" << result.out << result.err);
    CHECK(result.exit_code == 0);
    CHECK(contains(result.out, "Usage: tern " + name));
    CHECK(contains(result.out, "--help"));
    CHECK(contains(result.out, "--server HOST:PORT"));
    for (const auto& option : c.options) CHECK(contains(result.out, option));
  }
  // Refused there, so not offered.
  CHECK_FALSE(contains(tern_cli({"topics", "info", "--help"}).out, "--max-"));
}

TEST_CASE("cli flags: --server and options may follow the command's name") {
  BrokerProcess broker;
  auto result = tern_cli({"topics", "create", "late", "--server",
                          broker.address(), "--max-messages=3"});
  INFO("stderr: " << result.err);
  CHECK(result.exit_code == 0);
  auto client = Client::connect(broker.address());
  auto info = client->topics("late");
  REQUIRE(info.size() == 1);
  CHECK(info[0].settings.max_messages == 3);
}

TEST_CASE("cli flags: pub publishes every argument as it is") {
  BrokerProcess broker;
  // Each a word CLI11 gives a meaning to elsewhere: a list, an empty list, a
  // command's name, the end of the options and what looks like an option.
  auto result = tern_cli({"--server", broker.address(), "pub", "verbatim",
                          "[a,b]", "{}", "sub", "--", "-x", "--help"});
  INFO("stderr: " << result.err);
  CHECK(result.exit_code == 0);
  std::vector<std::string> payloads;
  for (const auto& m : read_topic(broker.address(), "verbatim")) {
    payloads.push_back(m.payload);
  }
  CHECK(payloads ==
        std::vector<std::string>{"[a,b]", "{}", "sub", "-x", "--help"});
}

}  // namespace tern::test
