// Permissions: publish, subscribe and admin rules per user (deny wins), the
// default ones, what a denied request gets (NotAuthorized, nothing changed,
// the connection open), wildcard consumers and ListTopics seeing only what a
// user may read, private inboxes and replies, and SIGHUP reloading users.
//
// The users log in with tokens: a password check is slow on purpose, and
// these tests connect often.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

std::string token_hash(const std::string& token) {
  RunResult run =
      run_program({broker_binary(), "hash-token"}, token + "\n", 10s);
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.out.rfind("sha256:", 0) == 0);
  return run.out.substr(0, run.out.find('\n'));
}

// Each user's token is "token-of-NAME-" padded to 32 characters.
std::string token_of(const std::string& user) {
  std::string token = "token-of-" + user + "-";
  token.resize(40, 'x');
  return token;
}

// A [users.NAME] table logging in with token_of(NAME), and `rules` (TOML
// lines such as `publish.allow = ["a"]`).
std::string user_table(const std::string& name, const std::string& rules) {
  return "[users." + name + "]\ntoken = \"" + token_hash(token_of(name)) +
         "\"\n" + rules + "\n";
}

// The users of most tests: admin may do anything; alice is allowed orders.eu (an exact name) and
// pay.* (a pattern) but not pay.secret (deny wins); bob is denied exactly
// those two; nobody may do what the default allows: nothing.
std::string matrix_config() {
  const char* alice_lists =
      "{ allow = [\"orders.eu\", \"pay.*\"], deny = [\"pay.secret\"] }";
  const char* bob_lists = "{ deny = [\"orders.eu\", \"pay.*\"] }";
  std::string alice, bob;
  for (const char* action : {"publish", "subscribe", "admin"}) {
    alice += std::string(action) + " = " + alice_lists + "\n";
    bob += std::string(action) + " = " + bob_lists + "\n";
  }
  return user_table("admin",
                    "publish.allow = [\">\"]\nsubscribe.allow = [\">\"]\n"
                    "admin.allow = [\">\"]") +
         user_table("alice", alice) + user_table("bob", bob) +
         user_table("nobody", "") +
         "[default_permissions]\n"
         "publish.allow = []\nsubscribe.allow = []\nadmin.allow = []\n";
}

struct BrokerWithPermissions {
  explicit BrokerWithPermissions(const std::string& config)
      : dir(make_temp_dir("tern-permissions")),
        broker(options(dir, config)) {}
  ~BrokerWithPermissions() { remove_tree(dir); }

  static BrokerOptions options(const std::string& dir,
                               const std::string& config) {
    std::ofstream(dir + "/tern.toml") << config;
    BrokerOptions o;
    o.extra_args = {"--config", dir + "/tern.toml"};
    return o;
  }

  std::unique_ptr<Client> as(const std::string& user) {
    ClientOptions o;
    o.token = token_of(user);
    return Client::connect(broker.address(), o);
  }

  // Writes a new config file and has the broker read it (SIGHUP); waits
  // until the log says `expect_in_log` once more.
  void reload(const std::string& config, const std::string& expect_in_log) {
    auto count = [&] {
      std::string log = broker.log();
      size_t n = 0;
      for (size_t at = log.find(expect_in_log); at != std::string::npos;
           at = log.find(expect_in_log, at + 1))
        ++n;
      return n;
    };
    size_t before = count();
    std::ofstream(dir + "/tern.toml") << config;
    REQUIRE(::kill(broker.pid(), SIGHUP) == 0);
    for (int i = 0; i < 100; ++i) {
      if (count() > before) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL("the broker did not log '" << expect_in_log << "' after SIGHUP");
  }

  std::string dir;
  BrokerProcess broker;
};

// The error `call` throws: kNone if it does not.
ErrorCode error_of(const std::function<void()>& call,
                   std::string* message = nullptr) {
  try {
    call();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kNone;
}

// Everything ListTopics says that a request could change, one line a topic.
std::string snapshot(Client& client) {
  std::ostringstream out;
  for (const TopicInfo& t : client.topics()) {
    out << t.name << " " << t.first_offset << "-" << t.next_offset
        << " age=" << t.settings.max_age.count()
        << " messages=" << t.settings.max_messages;
    for (const SubscriptionInfo& s : t.subscriptions)
      out << " [" << s.name << " floor=" << s.ack_floor
          << " ack_timeout=" << s.ack_timeout_ms
          << " dlq=" << s.dead_letter_topic << "]";
    out << "\n";
  }
  return out.str();
}

SubscribeOptions durable(const std::string& topic) {
  SubscribeOptions o;
  o.topic = topic;
  o.subscription = "s";
  o.start = StartPosition::kEarliest;
  return o;
}

// Every request that names a topic or a subscription, on `topic`.
std::vector<std::pair<std::string, std::function<void(Client&)>>> requests(
    const std::string& topic) {
  TopicSettings limits;
  limits.max_messages = 5;
  return {
      {"publish", [=](Client& c) { c.publish(topic, "x"); }},
      {"subscribe", [=](Client& c) { c.subscribe(durable(topic)); }},
      {"subscribe with a new subscription",
       [=](Client& c) {
         SubscribeOptions o = durable(topic);
         o.subscription = "new";
         c.subscribe(o);
       }},
      {"create topic", [=](Client& c) { c.create_topic(topic, {}); }},
      {"alter topic", [=](Client& c) { c.alter_topic(topic, limits); }},
      {"reset subscription",
       [=](Client& c) {
         SubscribeOptions o = durable(topic);
         o.start = StartPosition::kLatest;
         c.reset_subscription(o);
       }},
      {"delete subscription",
       [=](Client& c) { c.delete_subscription(topic, "s"); }},
      {"delete topic", [=](Client& c) { c.delete_topic(topic); }},
  };
}

TEST_CASE("permissions: every request naming a topic is checked; a denied "
          "one gets NotAuthorized and changes nothing") {
  BrokerWithPermissions b(matrix_config());
  const std::vector<std::string> topics = {"orders.eu", "pay.cards",
                                           "pay.secret"};
  {
    auto admin = b.as("admin");
    for (const std::string& topic : topics) {
      admin->publish(topic, "first");
      admin->subscribe(durable(topic)).unsubscribe();
    }
  }
  std::string before = snapshot(*b.as("admin"));

  // Denied: bob on the exact name and on the pattern, alice where deny
  // wins over her allow, and nobody (the default) everywhere.
  std::vector<std::pair<std::string, std::string>> denied = {
      {"bob", "orders.eu"},     {"bob", "pay.cards"},
      {"alice", "pay.secret"},  {"nobody", "orders.eu"},
      {"nobody", "pay.cards"},
  };
  for (const auto& [user, topic] : denied) {
    auto client = b.as(user);
    for (const auto& [what, call] : requests(topic)) {
      CAPTURE(user);
      CAPTURE(what);
      CAPTURE(topic);
      std::string message;
      CHECK(error_of([&] { call(*client); }, &message) ==
            ErrorCode::kNotAuthorized);
      CHECK(message.find(user) != std::string::npos);
      CHECK(message.find(topic) != std::string::npos);
      CHECK(client->connected());  // a denial does not end the connection
    }
    client->ping();
  }
  CHECK(snapshot(*b.as("admin")) == before);

  // The store says the same after a restart.
  b.broker.stop();
  b.broker.restart();
  CHECK(snapshot(*b.as("admin")) == before);

  // Allowed: alice on the exact name and the pattern (delete topic last,
  // as it takes the subscriptions with it).
  auto alice = b.as("alice");
  for (const std::string topic : {"orders.eu", "pay.cards"})
    for (const auto& [what, call] : requests(topic)) {
      CAPTURE(what);
      CAPTURE(topic);
      CHECK(error_of([&] { call(*alice); }) == ErrorCode::kNone);
    }
  // orders.eu allows that one name: not the ones below it.
  CHECK(error_of([&] { alice->create_topic("orders.eu.child", {}); }) ==
        ErrorCode::kNotAuthorized);
  std::string after = snapshot(*b.as("admin"));
  CHECK(after.find("orders.eu ") == std::string::npos);  // deleted
  CHECK(after.find("pay.secret ") != std::string::npos);
}

TEST_CASE("permissions: ListTopics and wildcard consumers show only the "
          "topics a user may read, later ones too") {
  BrokerWithPermissions b(matrix_config() +
                          user_table("writer", "publish.allow = [\"pay.in\"]"
                                               "\nsubscribe.allow = []"));
  auto admin = b.as("admin");
  for (const std::string topic : {"orders.eu", "pay.cards", "pay.secret",
                                  "other"})
    admin->publish(topic, "before");

  auto names = [](Client& c) {
    std::string all;
    for (const TopicInfo& t : c.topics()) all += t.name + " ";
    return all;
  };
  auto alice = b.as("alice");
  CHECK(names(*alice) == "orders.eu pay.cards ");
  CHECK(names(*b.as("nobody")) == "");
  admin->publish("pay.in", "x");
  CHECK(names(*b.as("writer")) == "pay.in ");  // publish only is enough

  SubscribeOptions everything;
  everything.topic = ">";
  everything.start = StartPosition::kEarliest;
  Subscription sub = alice->subscribe(everything);
  admin->publish("pay.new", "later");    // created now: she may read it
  admin->publish("pay.secret", "no");    // denied
  admin->publish("elsewhere", "no");     // not allowed
  std::multiset<std::string> got;
  while (auto m = sub.next(1500ms)) {
    got.insert(m->topic + ":" + m->payload);
    sub.ack(*m);
  }
  CHECK(got == std::multiset<std::string>{"orders.eu:before", "pay.cards:before",
                                          "pay.in:x", "pay.new:later"});
}

TEST_CASE("permissions: an inbox is read only by the connection that made "
          "it; a responder replies without publish rights on inboxes") {
  BrokerWithPermissions b(
      user_table("client", "publish.allow = [\"svc\"]") +
      user_table("server", "subscribe.allow = [\"svc\"]\npublish.allow = []") +
      user_table("snoop", ""));
  auto server = b.as("server");
  Responder responder = server->respond(
      "svc", [](const Message& m) { return "re:" + m.payload; });
  auto client = b.as("client");
  std::thread serve([&] { responder.serve_one(5s); });
  Message reply = client->request("svc", "ping", 5s);
  serve.join();
  CHECK(reply.payload == "re:ping");
  std::string inbox = reply.topic;
  REQUIRE(inbox.rfind("_inbox.", 0) == 0);

  // One reply per request: a second message to the inbox is refused.
  std::string message;
  CHECK(error_of([&] { server->publish(inbox, "again"); }, &message) ==
        ErrorCode::kNotAuthorized);
  CHECK(message.find("publish") != std::string::npos);

  // Nobody else reads the inbox, not even a user allowed everything.
  SubscribeOptions o;
  o.topic = inbox;
  CHECK(error_of([&] { b.as("snoop")->subscribe(o); }, &message) ==
        ErrorCode::kNotAuthorized);
  CHECK(message.find("another connection") != std::string::npos);
  // A topic a client may not publish to cannot be its dead-letter topic.
  SubscribeOptions dlq;
  dlq.topic = "svc";
  dlq.dead_letter_topic = "svc.failed";
  CHECK(error_of([&] { server->subscribe(dlq); }) ==
        ErrorCode::kNotAuthorized);
}

TEST_CASE("permissions: SIGHUP reloads users and permissions") {
  BrokerWithPermissions b(matrix_config());
  auto alice = b.as("alice");
  auto bob = b.as("bob");
  SubscribeOptions o = durable("pay.cards");
  Subscription sub = alice->subscribe(o);
  CHECK(error_of([&] { bob->publish("pay.cards", "x"); }) ==
        ErrorCode::kNotAuthorized);

  // bob may now publish anywhere; alice is gone.
  b.reload(user_table("admin", "") + user_table("bob", ""),
           "configuration reloaded");
  CHECK(bob->publish("pay.cards", "now allowed") == 0);
  CHECK(error_of([&] { alice->ping(); }) != ErrorCode::kNone);
  CHECK(error_of([&] { b.as("alice"); }) == ErrorCode::kNotAuthorized);

  // A file that no longer parses changes nothing.
  b.reload("[users.bob]\npassword = \"plain text\"\n",
           "configuration not reloaded");
  CHECK(bob->publish("pay.cards", "still allowed") == 1);

  // Taking a permission away closes the consumers it allowed.
  auto admin = b.as("admin");
  Subscription watching = bob->subscribe(durable("pay.cards"));
  b.reload(user_table("admin", "") +
               user_table("bob", "subscribe.deny = [\"pay.*\"]"),
           "configuration reloaded");
  std::string message;
  CHECK(error_of(
            [&] {
              while (watching.next(2s)) {
              }
            },
            &message) == ErrorCode::kNotAuthorized);
  CHECK(message.find("pay.cards") != std::string::npos);
}

TEST_CASE("permissions: rules in the config file are checked at start") {
  std::string dir = make_temp_dir("tern-permissions");
  auto start_with = [&](const std::string& config) {
    std::ofstream(dir + "/tern.toml") << config;
    return run_program({broker_binary(), "--config", dir + "/tern.toml",
                        "--data", dir + "/data", "--listen", "127.0.0.1:1"},
                       "", 10s);
  };
  RunResult bad_pattern = start_with(
      "[users.a]\ntoken = \"sha256:00\"\npublish.allow = [\"a.>.b\"]\n");
  CHECK(bad_pattern.exit_code == 2);
  CHECK(bad_pattern.err.find("tern.toml:3: users.a.publish.allow") !=
        std::string::npos);
  RunResult unknown = start_with(
      "[users.a]\ntoken = \"sha256:00\"\npublish.allows = [\"a\"]\n");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("allow or deny") != std::string::npos);
  RunResult plain = start_with("[users.a]\ntoken = \"my-token\"\n");
  CHECK(plain.exit_code == 2);
  CHECK(plain.err.find("hash-token") != std::string::npos);
  RunResult short_token =
      run_program({broker_binary(), "hash-token"}, "short\n", 10s);
  CHECK(short_token.exit_code == 2);
  remove_tree(dir);
}

TEST_CASE("permissions: the example config (examples/users.toml) works") {
  BrokerOptions options;
  options.extra_args = {"--config", "examples/users.toml"};
  BrokerProcess broker(options);
  ClientOptions billing_login;
  billing_login.user = "billing";
  billing_login.password = "billing-password-change-me";
  auto billing = Client::connect(broker.address(), billing_login);
  ClientOptions shipping_login;
  shipping_login.token = "shipping-token-change-me-0123456789abcdef";
  auto shipping = Client::connect(broker.address(), shipping_login);

  billing->publish("invoices.eu", "invoice 1");
  billing->publish("invoices.internal", "audit");
  CHECK(error_of([&] { shipping->publish("invoices.eu", "x"); }) ==
        ErrorCode::kNotAuthorized);
  CHECK(error_of([&] { billing->publish("orders.eu", "x"); }) ==
        ErrorCode::kNotAuthorized);
  SubscribeOptions o;
  o.topic = "invoices.>";
  o.start = StartPosition::kEarliest;
  Subscription invoices = shipping->subscribe(o);
  auto m = invoices.next(2s);
  REQUIRE(m);
  CHECK(m->payload == "invoice 1");  // not the internal one
  CHECK(!invoices.next(300ms));
}

}  // namespace
}  // namespace tern::test
