// tern-broker's flags and config file, and tern-bench's flags: a bad one is
// refused at start in one line that names it, a good one applies, and --help
// lists them all.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Runs tern-broker with `args` and a data directory that must not be created
// (the broker stops before opening anything); returns its result.
RunResult refused_broker(const std::vector<std::string>& args) {
  std::string dir = make_temp_dir("tern-config");
  std::vector<std::string> argv = {broker_binary(), "--data", dir + "/data"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult result = run_program(argv, "", 5s);
  CHECK_FALSE(exists(dir + "/data"));
  remove_tree(dir);
  return result;
}

// A usage error: exit status 2, one line on stderr holding every one of
// `words`.
void check_usage_error(const RunResult& result,
                       const std::vector<std::string>& words) {
  INFO("stderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 2);
  CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
  for (const std::string& word : words)
    CHECK(result.err.find(word) != std::string::npos);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

ErrorCode publish_error(Client& client, const std::string& topic) {
  try {
    client.publish(topic, "x");
    return ErrorCode::kNone;
  } catch (const Error& e) {
    return e.code();
  }
}

// The value after `option` in --help: "(default VALUE)".
std::string help_default(const std::string& help, const std::string& option) {
  size_t at = help.find("  " + option + " ");
  if (at == std::string::npos) return "";
  size_t begin = help.find("(default ", at);
  if (begin == std::string::npos) return "";
  begin += 9;
  return help.substr(begin, help.find(')', begin) - begin);
}

}  // namespace

TEST_CASE("config: a bad flag is refused in one line naming it") {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> words;
  };
  const Case cases[] = {
      {{"--no-such-flag"}, {"--no-such-flag"}},
      {{"--max-topics"}, {"--max-topics", "N"}},
      {{"--max-frame", "lots"}, {"--max-frame", "lots", "MiB"}},
      {{"--max-frame", "2GiB"}, {"--max-frame", "64KiB", "1GiB"}},
      {{"--max-topics", "0"}, {"--max-topics", "1 to 100000000"}},
      {{"--fsync", "sometimes"}, {"--fsync", "always or never"}},
      {{"--ack-timeout", "0"}, {"--ack-timeout", "1ms to 1d"}},
      {{"--retention-interval", "5"}, {"--retention-interval", "10ms to 1h"}},
      {{"--listen", "nowhere"}, {"--listen", "HOST:PORT"}},
      {{"--log-level", "loud"}, {"--log-level", "debug, info, warn or error"}},
  };
  for (const Case& c : cases) {
    INFO("args: " << c.args[0]);
    check_usage_error(refused_broker(c.args), c.words);
  }
}

TEST_CASE(
    "config: a bad config file is refused in one line naming the file, line "
    "and key") {
  struct Case {
    std::string text;
    std::string line;
    std::vector<std::string> words;
  };
  const Case cases[] = {
      {"# limits\nmax-topics = 5\nmax-topicz = 3\n",
       "3",
       {"max-topicz", "unknown key"}},
      {"\nmax-topics = \"many\"\n", "2", {"max-topics", "integer", "string"}},
      {"max-frame = 1.5\n", "1", {"max-frame", "string or an integer"}},
      {"fsync = true\n", "1", {"fsync", "string", "boolean"}},
      {"max-frame = \"2GiB\"\n", "1", {"max-frame", "64KiB to 1GiB"}},
      {"retention-interval = 5\n", "1", {"retention-interval", "10ms to 1h"}},
      {"max-dedupe-ids = -1\n", "1", {"max-dedupe-ids", "-1"}},
      {"listen = \"127.0.0.1:7411\"\nfsync = always\n", "2", {"fsync"}},
  };
  std::string dir = make_temp_dir("tern-config-file");
  for (const Case& c : cases) {
    INFO("file: " << c.text);
    std::string path = dir + "/tern.toml";
    write_file(path, c.text);
    RunResult result = refused_broker({"--config", path});
    check_usage_error(result, c.words);
    CHECK(result.err.find(path + ":" + c.line + ": ") != std::string::npos);
  }
  check_usage_error(refused_broker({"--config", dir + "/missing.toml"}),
                    {dir + "/missing.toml", "No such file"});
  remove_tree(dir);
}

TEST_CASE("config: the config file applies, and flags override it") {
  std::string dir = make_temp_dir("tern-config-applies");
  std::string path = dir + "/tern.toml";
  write_file(path, "max-topics = 1\ntail-bytes = \"64KiB\"\n");
  {
    BrokerOptions options;
    options.extra_args = {"--config", path};
    BrokerProcess broker(options);
    auto client = Client::connect(broker.address());
    CHECK(publish_error(*client, "one") == ErrorCode::kNone);
    CHECK(publish_error(*client, "two") == ErrorCode::kLimitExceeded);
  }
  {
    // Given before --config, the flag still wins.
    BrokerOptions options;
    options.extra_args = {"--max-topics", "2", "--config", path};
    BrokerProcess broker(options);
    auto client = Client::connect(broker.address());
    CHECK(publish_error(*client, "one") == ErrorCode::kNone);
    CHECK(publish_error(*client, "two") == ErrorCode::kNone);
    CHECK(publish_error(*client, "three") == ErrorCode::kLimitExceeded);
  }
  remove_tree(dir);
}

TEST_CASE("config: tern.toml lists every setting with its default") {
  // Run from the top of the checkout, as `make test` does.
  std::string example = read_file("tern.toml");
  REQUIRE_FALSE(example.empty());
  RunResult help = run_program({broker_binary(), "--help"}, "", 5s);
  REQUIRE(help.exit_code == 0);

  // Each "# key = value" line, uncommented, must be a valid file; every flag
  // but --config and --help must be one of them, set to the default --help
  // states.
  std::string uncommented;
  std::vector<std::string> keys;
  std::istringstream lines(example);
  for (std::string line; std::getline(lines, line);) {
    size_t equals = line.find(" = ");
    if (line.rfind("# ", 0) != 0 || equals == std::string::npos ||
        line.find(' ', 2) != equals)
      continue;
    std::string key = line.substr(2, equals - 2);
    std::string value = line.substr(equals + 3);
    value.erase(std::remove(value.begin(), value.end(), '"'), value.end());
    INFO("key: " << key);
    CHECK(help_default(help.out, "--" + key) == value);
    keys.push_back(key);
    uncommented += line.substr(2) + "\n";
  }
  for (const char* flag :
       {"listen", "data", "fsync", "max-frame", "max-output", "max-connections",
        "max-connections-per-ip", "hello-timeout", "allow-anonymous",
        "max-topics", "max-subscriptions", "min-free", "ack-timeout",
        "dedupe-window", "max-dedupe-ids", "retention-interval", "tail-bytes",
        "log-level"}) {
    INFO("flag: " << flag);
    CHECK(help.out.find(std::string("  --") + flag + " ") != std::string::npos);
    CHECK(std::find(keys.begin(), keys.end(), flag) != keys.end());
  }
  CHECK(help.out.find("  --config FILE") != std::string::npos);

  std::string dir = make_temp_dir("tern-config-example");
  write_file(dir + "/tern.toml", uncommented);
  {
    // BrokerProcess's own --listen, --data and --fsync override the file's.
    BrokerOptions options;
    options.extra_args = {"--config", dir + "/tern.toml"};
    BrokerProcess broker(options);
    auto client = Client::connect(broker.address());
    CHECK_NOTHROW(client->publish("t", "x"));
    CHECK(broker.stop() == 0);
  }
  remove_tree(dir);
}

TEST_CASE(
    "config: tern-bench --help lists every option, bad ones are refused") {
  // Next to tern-broker: `make test` builds both.
  std::string bench = broker_binary();
  bench.replace(bench.rfind("tern-broker"), 11, "tern-bench");
  REQUIRE_MESSAGE(access(bench.c_str(), X_OK) == 0, "no " << bench);
  RunResult help = run_program({bench, "--help"}, "", 5s);
  INFO("stdout: " << help.out);
  CHECK(help.exit_code == 0);
  for (const char* option :
       {"--server",    "--topic",         "--fixed-topic",   "--producers",
        "--consumers", "--subscriptions", "--topics",        "--size",
        "--count",     "--duration",      "--rate",          "--window",
        "--batch",     "--prefetch",      "--no-confirm",    "--no-ack",
        "--replay",    "--warmup",        "--drain-timeout", "--stall-timeout",
        "--quiet",     "--json",          "--latency-out"}) {
    CHECK(help.out.find(std::string("  ") + option + " ") != std::string::npos);
  }

  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> words;
  };
  const Case cases[] = {
      {{"--no-such-flag"}, {"--no-such-flag"}},
      {{"--size", "10"}, {"--size", "24B to 16MiB"}},
      {{"--producers", "2000"}, {"--producers", "1 to 1024"}},
      {{"--duration", "soon"}, {"--duration", "seconds"}},
      {{"--rate", "-1"}, {"--rate"}},
      {{"--producers", "1", "--topics", "2"}, {"--producers", "--topics"}},
  };
  for (const Case& c : cases) {
    INFO("args: " << c.args[0]);
    std::vector<std::string> argv = {bench, "--server", "127.0.0.1:1"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    check_usage_error(run_program(argv, "", 5s), c.words);
  }
}

}  // namespace tern::test
