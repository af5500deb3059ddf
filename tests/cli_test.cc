// CLI tests: the `tern` command-line tool against a real broker.
#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

RunResult tern_cli(const std::vector<std::string>& args,
                   const std::string& input = "") {
  std::vector<std::string> argv = {cli_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, input, 10s);
}

// Payloads joined by '|': readable when a check fails.
std::string payloads_in(const std::string& address, const std::string& topic) {
  std::string payloads;
  for (const auto& m : read_topic(address, topic)) {
    if (!payloads.empty()) payloads += '|';
    payloads += m.payload;
  }
  return payloads;
}

// The non-empty lines of `text`, joined by '|'.
std::string lines(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (!out.empty()) out += '|';
    out += line;
  }
  return out;
}

}  // namespace

TEST_CASE("cli: pub publishes its arguments") {
  BrokerProcess broker;
  auto result = tern_cli(
      {"--server", broker.address(), "pub", "greetings", "a", "b", "c"});
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 0);
  CHECK(payloads_in(broker.address(), "greetings") == "a|b|c");
}

TEST_CASE("cli: pub without payloads publishes stdin lines") {
  BrokerProcess broker;
  auto result =
      tern_cli({"--server", broker.address(), "pub", "lines"}, "x\ny\n");
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 0);
  CHECK(payloads_in(broker.address(), "lines") == "x|y");
}

namespace {

// Runs `tern sub feed <extra...> --from earliest --count 5` on a topic holding
// 8 messages and checks that exactly the first 5 payloads are printed.
void check_sub_prints_first_five(const std::vector<std::string>& extra) {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    for (int i = 0; i < 8; ++i) {
      client->publish("feed", "payload-" + std::to_string(i));
    }
  }
  std::vector<std::string> args = {"--server", broker.address(), "sub", "feed"};
  args.insert(args.end(), extra.begin(), extra.end());
  // --timeout only bounds a failing run; a passing one stops at --count.
  for (const char* arg :
       {"--from", "earliest", "--count", "5", "--timeout", "3"}) {
    args.push_back(arg);
  }
  auto result = tern_cli(args);
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 0);
  CHECK(lines(result.out) ==
        "payload-0|payload-1|payload-2|payload-3|payload-4");
}

}  // namespace

TEST_CASE(
    "cli: sub --from earliest prints the requested number of payloads in "
    "order") {
  check_sub_prints_first_five({});
}

TEST_CASE(
    "cli: sub with a named subscription prints payloads from the earliest") {
  check_sub_prints_first_five({"--subscription", "cli-reader"});
}

TEST_CASE("cli: an unreachable broker is a clear failure") {
  std::string address = "127.0.0.1:" + std::to_string(free_port());
  auto result = tern_cli({"--server", address, "pub", "t", "x"});
  INFO("stderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code != 0);
  CHECK(result.err.find("cannot connect") != std::string::npos);
}

}  // namespace tern::test

namespace tern::test {
namespace {

TEST_CASE("cli: sub with a pattern prints each message's topic") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("orders.eu", "one");
  client->publish("orders.eu.paris", "not matched by *");
  client->publish("orders.us", "two");
  auto result = tern_cli({"--server", broker.address(), "sub", "orders.*",
                          "--from", "earliest", "--count", "2"});
  INFO("stderr: " << result.err);
  CHECK(result.exit_code == 0);
  // Each topic in order; between topics, in no set order.
  std::string got = lines(result.out);
  CHECK((got == "orders.eu\tone|orders.us\ttwo" ||
         got == "orders.us\ttwo|orders.eu\tone"));
}

TEST_CASE("cli: top --once --json shows subscriptions, the worst lag first") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  for (int i = 0; i < 40; ++i) client->publish("orders", "m");
  for (auto [name, count] : {std::pair{"billing", "30"}, {"audit", "10"}}) {
    auto result = tern_cli({"--server", broker.address(), "sub", "orders",
                            "--subscription", name, "--from", "earliest",
                            "--count", count});
    REQUIRE(result.exit_code == 0);
  }
  auto result = tern_cli({"--server", broker.address(), "top", "--once",
                          "--json", "--interval", "0.2"});
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  REQUIRE(result.exit_code == 0);
  auto view = nlohmann::json::parse(result.out);
  REQUIRE(view["subscriptions"].size() == 2);
  CHECK(view["subscriptions"][0]["name"] == "audit");
  CHECK(view["subscriptions"][0]["lag"] == 30);
  CHECK(view["subscriptions"][1]["name"] == "billing");
  CHECK(view["subscriptions"][1]["lag"] == 10);
  REQUIRE(view["topics"].size() == 1);
  CHECK(view["topics"][0]["messages"] == 40);

  // The table, for people.
  auto table = tern_cli(
      {"--server", broker.address(), "top", "--once", "--interval", "0.2"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("SUBSCRIPTION") != std::string::npos);
  CHECK(table.out.find("audit") < table.out.find("billing"));
}

TEST_CASE("cli: sub --json prints each message whole, binary as base64") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  OutgoingMessage text;
  text.payload = "h\xc3\xa9llo \"you\"";  // UTF-8, with quotes to escape
  text.key = "k1";
  text.headers = {{"trace", "abc"}};
  client->publish("events", text);
  OutgoingMessage binary;
  binary.payload = std::string("\xff\x00\x01", 3);
  client->publish("events", binary);
  auto result =
      tern_cli({"--server", broker.address(), "sub", "events", "--subscription",
                "debug", "--from", "earliest", "--count", "2", "--json"});
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  REQUIRE(result.exit_code == 0);
  std::istringstream out(result.out);
  std::string line;
  REQUIRE(std::getline(out, line));
  auto first = nlohmann::json::parse(line);
  CHECK(first["topic"] == "events");
  CHECK(first["subscription"] == "debug");
  CHECK(first["offset"] == 0);
  CHECK(first["attempt"] == 1);
  CHECK(first["timestamp_ms"] > 0);
  CHECK(first["key"] == "k1");
  CHECK(first["payload"] == text.payload);
  REQUIRE(first["headers"].size() == 1);
  CHECK(first["headers"][0]["name"] == "trace");
  CHECK(first["headers"][0]["value"] == "abc");
  REQUIRE(std::getline(out, line));
  auto second = nlohmann::json::parse(line);
  CHECK(second["offset"] == 1);
  CHECK_FALSE(second.contains("payload"));
  CHECK(second["payload_base64"] == "/wAB");
}

}  // namespace
}  // namespace tern::test
