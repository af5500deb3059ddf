// Creating and deleting topics and subscriptions: through the client
// (create_topic, delete_topic, delete_subscription, the new TopicInfo fields)
// and through `tern topics create/info/delete`, `tern subs delete`, and
// `tern request` / `tern reply --exec`.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

RunResult tern_cli(const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = 10s) {
  std::vector<std::string> argv = {cli_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, "", timeout);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Calls sub.next() until it throws; returns the error code (kNone if it
// never threw within `within`).
ErrorCode next_until_error(Subscription& sub, std::chrono::milliseconds within,
                           std::string* message = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      sub.next(100ms);
    } catch (const Error& e) {
      if (message) *message = e.what();
      return e.code();
    }
  }
  return ErrorCode::kNone;
}

}  // namespace

TEST_CASE(
    "admin: create_topic is idempotent with the same settings and refuses "
    "others") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_age = 24h;
  settings.max_bytes = 1ull << 30;
  settings.max_messages = 1000;
  settings.work_queue = true;
  CHECK(client->create_topic("jobs", settings));
  CHECK_FALSE(client->create_topic("jobs", settings));  // same: fine

  TopicSettings other = settings;
  other.max_messages = 5;
  try {
    client->create_topic("jobs", other);
    FAIL_CHECK("create_topic accepted other settings");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kTopicExists);
  }
  CHECK(client->connected());  // a request error, not a connection error

  auto info = client->topics("jobs");
  REQUIRE(info.size() == 1);
  CHECK(info[0].settings == settings);
  CHECK_FALSE(info[0].temporary);
  CHECK(info[0].messages == 0);
  client->publish("jobs", "j1");
  client->publish("jobs", "j2");
  info = client->topics("jobs");
  REQUIRE(info.size() == 1);
  CHECK(info[0].messages == 2);
  CHECK(info[0].bytes > 0);

  // _inbox.* names are for temporary topics only.
  CHECK_THROWS_AS(client->create_topic("_inbox.0123456789abcdef"), Error);
  CHECK(client->create_topic("_inbox.0123456789abcdef", {}, true));
  info = client->topics("_inbox.0123456789abcdef");
  REQUIRE(info.size() == 1);
  CHECK(info[0].temporary);
}

TEST_CASE(
    "admin: delete_topic removes it and ends its consumers with kDeleted") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto other = Client::connect(broker.address());
  client->publish("doomed", "a");
  auto sub = other->subscribe(durable("doomed", "reader"));
  auto first = sub.next(5s);
  REQUIRE(first);
  CHECK(first->payload == "a");

  client->delete_topic("doomed");
  CHECK(client->topics().empty());
  std::string message;
  CHECK(next_until_error(sub, 5s, &message) == ErrorCode::kDeleted);
  INFO("message: " << message);
  CHECK_FALSE(message.empty());
  sub.unsubscribe();  // nothing to do: the broker ended it
  CHECK(other->connected());
  CHECK(other->ping().count() >= 0);

  try {
    client->delete_topic("doomed");
    FAIL_CHECK("deleting a deleted topic succeeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownTopic);
  }
  // A new topic of the same name starts empty.
  client->publish("doomed", "b");
  auto info = client->topics("doomed");
  REQUIRE(info.size() == 1);
  CHECK(info[0].subscriptions.empty());
  CHECK(info[0].messages == 1);
}

TEST_CASE("admin: delete_subscription removes it and ends its consumers") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("orders", "o1");
  auto billing = client->subscribe(durable("orders", "billing"));
  auto audit = client->subscribe(durable("orders", "audit"));
  REQUIRE(billing.next(5s));
  REQUIRE(audit.next(5s));

  client->delete_subscription("orders", "billing");
  CHECK(next_until_error(billing, 5s) == ErrorCode::kDeleted);
  // The other subscription and the topic are untouched.
  auto info = client->topics("orders");
  REQUIRE(info.size() == 1);
  REQUIRE(info[0].subscriptions.size() == 1);
  CHECK(info[0].subscriptions[0].name == "audit");
  CHECK(info[0].messages == 1);
  CHECK_FALSE(audit.next(200ms));  // alive, just nothing new

  try {
    client->delete_subscription("orders", "billing");
    FAIL_CHECK("deleting a deleted subscription succeeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownSubscription);
  }
  try {
    client->delete_subscription("no-such-topic", "billing");
    FAIL_CHECK("deleting a subscription of a missing topic succeeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownTopic);
  }
  // A new subscription of the same name starts afresh: it sees o1 again.
  auto again = client->subscribe(durable("orders", "billing"));
  auto m = again.next(5s);
  REQUIRE(m);
  CHECK(m->payload == "o1");
}

TEST_CASE(
    "admin: a missing _inbox topic is never created by publish or subscribe") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  try {
    client->publish("_inbox.ffffffffffffffff", "x");
    FAIL_CHECK("publish created an inbox");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownTopic);
  }
  SubscribeOptions options;
  options.topic = "_inbox.ffffffffffffffff";
  try {
    client->subscribe(options);
    FAIL_CHECK("subscribe created an inbox");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownTopic);
  }
  CHECK(client->topics().empty());
  CHECK(client->connected());
}

// --- the CLI ---

TEST_CASE("cli: topics create, info and delete") {
  BrokerProcess broker;
  const std::string server = broker.address();
  auto created =
      tern_cli({"--server", server, "topics", "create", "events", "--max-age",
                "24h", "--max-bytes", "1GiB", "--max-messages", "500",
                "--work-queue", "--dead-letter-expired"});
  INFO("stdout: " << created.out << "\nstderr: " << created.err);
  CHECK(created.exit_code == 0);
  CHECK(contains(created.out, "created topic events"));

  auto client = Client::connect(server);
  auto info = client->topics("events");
  REQUIRE(info.size() == 1);
  CHECK(info[0].settings.max_age == 24h);
  CHECK(info[0].settings.max_bytes == (1ull << 30));
  CHECK(info[0].settings.max_messages == 500);
  CHECK(info[0].settings.work_queue);
  CHECK(info[0].settings.dead_letter_expired);

  // Same settings again: fine. Others: refused, exit 1.
  auto same =
      tern_cli({"--server", server, "topics", "create", "events",
                "--max-age=1d", "--max-bytes=1024MiB", "--max-messages=500",
                "--work-queue", "--dead-letter-expired"});
  CHECK(same.exit_code == 0);
  CHECK(contains(same.out, "exists already"));
  auto clash = tern_cli({"--server", server, "topics", "create", "events"});
  CHECK(clash.exit_code == 1);
  CHECK(contains(clash.err, "TopicExists"));

  client->publish("events", "e1");
  SubscribeOptions options = durable("events", "billing");
  auto sub = client->subscribe(options);
  auto shown = tern_cli({"--server", server, "topics", "info", "events"});
  INFO("info: " << shown.out);
  CHECK(shown.exit_code == 0);
  CHECK(contains(shown.out, "messages 1, bytes "));
  CHECK(contains(shown.out, "temporary no"));
  CHECK(contains(shown.out,
                 "max age 1d, max bytes 1GiB, max messages 500, work queue "
                 "yes, dead-letter expired yes"));
  CHECK(contains(shown.out, "subscription billing"));
  CHECK(contains(shown.out, "skipped 0"));

  // Alter changes what it is given and keeps the rest.
  auto altered =
      tern_cli({"--server", server, "topics", "alter", "events", "--max-age",
                "none", "--max-messages", "20", "--no-dead-letter-expired"});
  INFO("alter: " << altered.out << altered.err);
  CHECK(altered.exit_code == 0);
  CHECK(contains(altered.out, "altered topic events"));
  info = client->topics("events");
  REQUIRE(info.size() == 1);
  CHECK(info[0].settings.max_age == 0ms);
  CHECK(info[0].settings.max_bytes == (1ull << 30));
  CHECK(info[0].settings.max_messages == 20);
  CHECK(info[0].settings.work_queue);
  CHECK_FALSE(info[0].settings.dead_letter_expired);
  auto unknown = tern_cli(
      {"--server", server, "topics", "alter", "nowhere", "--max-messages", "5"});
  CHECK(unknown.exit_code == 1);
  CHECK(contains(unknown.err, "no topic named nowhere"));

  auto deleted = tern_cli({"--server", server, "topics", "delete", "events"});
  CHECK(deleted.exit_code == 0);
  CHECK(contains(deleted.out, "deleted topic events"));
  CHECK(client->topics("events").empty());
  auto again = tern_cli({"--server", server, "topics", "delete", "events"});
  CHECK(again.exit_code == 1);
  CHECK(contains(again.err, "UnknownTopic"));
}

TEST_CASE("cli: subs delete") {
  BrokerProcess broker;
  const std::string server = broker.address();
  auto client = Client::connect(server);
  client->publish("orders", "o1");
  { auto sub = client->subscribe(durable("orders", "billing")); }
  REQUIRE(client->topics("orders")[0].subscriptions.size() == 1);

  auto deleted =
      tern_cli({"--server", server, "subs", "delete", "orders", "billing"});
  INFO("stdout: " << deleted.out << "\nstderr: " << deleted.err);
  CHECK(deleted.exit_code == 0);
  CHECK(contains(deleted.out, "deleted subscription billing on orders"));
  CHECK(client->topics("orders")[0].subscriptions.empty());
  auto again =
      tern_cli({"--server", server, "subs", "delete", "orders", "billing"});
  CHECK(again.exit_code == 1);
  CHECK(contains(again.err, "UnknownSubscription"));
}

TEST_CASE("cli: request and reply --exec") {
  BrokerProcess broker;
  const std::string server = broker.address();
  RunResult replier;
  // --count 1: answers one request and exits. Started first or not, it
  // finds the request: its new subscription starts at the earliest one.
  std::thread reply_thread([&] {
    replier = tern_cli({"--server", server, "reply", "upper", "--exec",
                        "tr a-z A-Z", "--count", "1"},
                       15s);
  });
  auto requested = tern_cli({"--server", server, "request", "upper",
                             "hello world", "--timeout", "10s"},
                            15s);
  reply_thread.join();
  INFO("request: " << requested.out << " / " << requested.err);
  INFO("reply: " << replier.out << " / " << replier.err);
  CHECK(requested.exit_code == 0);
  CHECK(requested.out == "HELLO WORLD\n");
  CHECK(replier.exit_code == 0);
  CHECK_FALSE(replier.timed_out);
}

TEST_CASE("cli: a failing --exec command makes the request fail") {
  BrokerProcess broker;
  const std::string server = broker.address();
  RunResult replier;
  std::thread reply_thread([&] {
    replier = tern_cli({"--server", server, "reply", "grumpy", "--exec",
                        "cat >/dev/null; exit 3", "--count", "1"},
                       15s);
  });
  auto requested = tern_cli(
      {"--server", server, "request", "grumpy", "x", "--timeout", "10s"}, 15s);
  reply_thread.join();
  INFO("request: " << requested.out << " / " << requested.err);
  INFO("reply: " << replier.out << " / " << replier.err);
  CHECK(requested.exit_code == 1);
  CHECK(contains(requested.err,
                 "responder failed: command exited with status 3"));
  CHECK(replier.exit_code == 0);
}

TEST_CASE("cli: request without a responder times out with a clear message") {
  BrokerProcess broker;
  auto result = tern_cli({"--server", broker.address(), "request", "void",
                          "anyone?", "--timeout", "300ms"});
  CHECK(result.exit_code == 1);
  CHECK_FALSE(result.timed_out);
  CHECK(contains(result.err, "no reply to request on 'void' within 300 ms"));
}

TEST_CASE("cli: reply stops on SIGTERM") {
  BrokerProcess broker;
  // No --count: runs until signalled. `timeout` sends SIGTERM after 1 s and
  // exits with tern's status.
  auto result = run_program(
      {"/usr/bin/timeout", "--preserve-status", "1", cli_binary(), "--server",
       broker.address(), "reply", "idle", "--exec", "cat"},
      "", 10s);
  INFO("stderr: " << result.err);
  CHECK(result.exit_code == 0);
  CHECK(contains(result.err, "answered 0 requests on idle"));
}

TEST_CASE("cli: bad retention values and durations are usage errors") {
  // No broker needed: the command line is checked before connecting.
  const std::string server = "127.0.0.1:" + std::to_string(free_port());
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"topics", "create", "t", "--max-age", "5"}, "--max-age must be"},
      {{"topics", "create", "t", "--max-age", "1y"}, "--max-age must be"},
      {{"topics", "create", "t", "--max-age", "0s"}, "--max-age must be"},
      {{"topics", "create", "t", "--max-bytes", "1.5GiB"},
       "--max-bytes must be"},
      {{"topics", "create", "t", "--max-bytes", "10XB"}, "--max-bytes must be"},
      {{"topics", "create", "t", "--max-bytes", "99999999999999999999"},
       "--max-bytes must be"},
      {{"topics", "create", "t", "--max-bytes", "20000000TiB"},
       "--max-bytes must be"},
      {{"topics", "create", "t", "--max-messages", "-1"},
       "--max-messages must be"},
      {{"topics", "info", "t", "--work-queue"},
       "with 'topics create' and 'topics alter' only"},
      {{"topics", "alter", "t"}, "needs at least one option"},
      {{"topics", "alter", "t", "--max-messages", "0"},
       "--max-messages must be"},
      {{"topics", "delete"}, "want 'topics list'"},
      {{"subs", "delete", "t"}, "want 'subs reset"},
      {{"request", "t"}, "missing MESSAGE"},
      {{"request", "t", "m", "--timeout", "5"}, "--timeout must be"},
      {{"reply", "t"}, "missing --exec"},
      {{"reply", "t", "--exec", "cat", "--count", "0"}, "--count must be"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--server", server};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto result = tern_cli(args);
    INFO("args: " << c.args[0] << " " << c.args[1]
                  << " ...\nstderr: " << result.err);
    CHECK(result.exit_code == 2);
    CHECK(contains(result.err, c.message));
  }
}

TEST_CASE("cli: --help lists the new commands") {
  auto result = tern_cli({"--help"});
  CHECK(result.exit_code == 0);
  for (const char* command : {"topics create", "topics alter", "topics delete",
                              "subs delete",
                              "request TOPIC", "reply TOPIC"}) {
    CHECK(contains(result.out, command));
  }
}

}  // namespace tern::test
