// The broker's HTTP endpoints (--http): /metrics with exact counter values,
// health and readiness, monitor tokens when there are users, and the
// settings' errors.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

// A broker serving HTTP on a port of its own; `extra`: more flags.
struct HttpBroker {
  explicit HttpBroker(std::vector<std::string> extra = {})
      : port(free_port()), broker(options(port, std::move(extra))) {}

  static BrokerOptions options(uint16_t port, std::vector<std::string> extra) {
    BrokerOptions o;
    o.http = "127.0.0.1:" + std::to_string(port);
    o.extra_args = std::move(extra);
    return o;
  }

  httplib::Result get(const std::string& path, const std::string& token = "") {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Get(path, headers);
  }

  // Waits (the broker publishes its figures once a second) until /metrics
  // has the line `line`; returns the last body seen.
  std::string metrics_with(const std::string& line,
                           const std::string& token = "") {
    std::string body;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto res = get("/metrics", token);
      if (res && res->status == 200) {
        body = res->body;
        if (("\n" + body).find("\n" + line + "\n") != std::string::npos) break;
      }
      std::this_thread::sleep_for(100ms);
    }
    return body;
  }

  uint16_t port;
  BrokerProcess broker;
};

bool has_line(const std::string& body, const std::string& line) {
  return ("\n" + body).find("\n" + line + "\n") != std::string::npos;
}

TEST_CASE(
    "http: /metrics counts what was published, acked, nacked and "
    "dead-lettered") {
  HttpBroker b;
  auto client = Client::connect(b.broker.address());
  for (int i = 0; i < 10; ++i)
    client->publish("orders", "m" + std::to_string(i));
  CHECK_THROWS_AS(client->publish("bad topic", "x"), Error);
  auto sub = client->subscribe(durable("orders", "billing"));
  std::vector<Message> got = receive(sub, 10, 2s, 20s, /*ack=*/false);
  REQUIRE(got.size() == 10);
  for (int i = 0; i < 6; ++i) sub.ack(got[i]);
  sub.reject(got[6]);
  sub.reject(got[7]);
  // got[8] and got[9] stay pending.

  std::string body = b.metrics_with(
      "tern_subscription_acked_total{topic=\"orders\",subscription=\"billing\"}"
      " 6");
  INFO(body);
  const std::string billing = "{topic=\"orders\",subscription=\"billing\"} ";
  CHECK(has_line(body,
                 "tern_topic_appended_messages_total{topic=\"orders\"} 10"));
  CHECK(has_line(body, "tern_topic_stored_messages{topic=\"orders\"} 10"));
  CHECK(has_line(body, "tern_subscription_delivered_total" + billing + "10"));
  CHECK(has_line(body, "tern_subscription_redelivered_total" + billing + "0"));
  CHECK(has_line(body, "tern_subscription_nacked_total" + billing + "2"));
  CHECK(
      has_line(body, "tern_subscription_dead_lettered_total" + billing + "2"));
  CHECK(has_line(body, "tern_subscription_pending" + billing + "2"));
  CHECK(has_line(body, "tern_subscription_lag" + billing + "2"));
  CHECK(has_line(body, "tern_subscription_consumers" + billing + "1"));
  CHECK(has_line(body,
                 "tern_topic_appended_messages_total{topic=\"orders.dlq\"} 2"));
  CHECK(has_line(body, "tern_connections 1"));
  CHECK(has_line(body, "tern_storage_writable 1"));
  CHECK(has_line(body, "tern_frames_received_total{type=\"Hello\"} 1"));
  CHECK(has_line(body, "tern_frames_received_total{type=\"Publish\"} 11"));
  CHECK(has_line(body, "tern_errors_sent_total{code=\"InvalidTopic\"} 1"));
  CHECK(body.find("\ntern_commit_writes_bucket{le=\"+Inf\"} ") !=
        std::string::npos);
  CHECK(body.find("\ntern_commit_duration_seconds_count ") !=
        std::string::npos);
  CHECK(body.find("\ntern_rocksdb_memtable_bytes ") != std::string::npos);
  CHECK(body.find("process_resident_memory_bytes ") != std::string::npos);
  CHECK(body.find("# TYPE tern_subscription_acked_total counter\n") !=
        std::string::npos);

  // The same figures as JSON.
  auto topics = nlohmann::json::parse(b.get("/api/topics")->body);
  nlohmann::json orders;
  for (const auto& t : topics)
    if (t["name"] == "orders") orders = t;
  CHECK(orders["stored_messages"] == 10);
  CHECK(orders.contains("appended_per_s"));
  REQUIRE(orders["subscriptions"].size() == 1);
  CHECK(orders["subscriptions"][0]["name"] == "billing");
  CHECK(orders["subscriptions"][0]["acked"] == 6);
  CHECK(orders["subscriptions"][0]["pending"] == 2);
  auto subscriptions = nlohmann::json::parse(b.get("/api/subscriptions")->body);
  REQUIRE(subscriptions.size() == 1);
  CHECK(subscriptions[0]["topic"] == "orders");
  CHECK(subscriptions[0]["lag"] == 2);
  auto connections = nlohmann::json::parse(b.get("/api/connections")->body);
  REQUIRE(connections.size() == 1);
  CHECK(connections[0]["client_name"] == "tern-cpp");
  CHECK(connections[0]["bytes_in"] > 0);
  CHECK(connections[0]["bytes_out"] > 0);
  auto broker = nlohmann::json::parse(b.get("/api/broker")->body);
  CHECK(broker["storage_writable"] == true);
  CHECK(broker["fsync"] == "always");
  CHECK(broker["connections"] == 1);

  // Prometheus's own checker (make test installs Debian's prometheus):
  // the format, and its naming conventions, which it reports on stdout.
  RunResult promtool =
      run_program({"/usr/bin/promtool", "check", "metrics"}, body, 10s);
  INFO("promtool: " << promtool.out << promtool.err);
  CHECK(promtool.exit_code == 0);
  CHECK(promtool.out.empty());
}

TEST_CASE("http: retention and expiry are counted") {
  HttpBroker b({"--retention-interval", "50ms"});
  auto client = Client::connect(b.broker.address());
  TopicSettings settings;
  settings.max_messages = 3;
  client->create_topic("short", settings);
  for (int i = 0; i < 10; ++i) client->publish("short", std::string(10, 'x'));
  OutgoingMessage brief;
  brief.payload = "gone soon";
  brief.ttl = 1ms;
  client->publish("brief", brief);
  client->publish("brief", brief);
  std::this_thread::sleep_for(50ms);
  // Both have expired by the time the subscription would hand them out.
  auto sub = client->subscribe(durable("brief", "late"));
  CHECK(receive(sub, 1, 500ms, 2s).empty());

  std::string body = b.metrics_with(
      "tern_topic_retention_removed_messages_total{topic=\"short\"} 7");
  INFO(body);
  CHECK(has_line(
      body, "tern_topic_retention_removed_messages_total{topic=\"short\"} 7"));
  CHECK(has_line(body, "tern_topic_stored_messages{topic=\"short\"} 3"));
  CHECK(
      body.find(
          "\ntern_topic_retention_removed_bytes_total{topic=\"short\"} 0\n") ==
      std::string::npos);
  CHECK(has_line(body,
                 "tern_subscription_expired_total{topic=\"brief\","
                 "subscription=\"late\"} 2"));
  CHECK(has_line(body,
                 "tern_subscription_dead_lettered_total{topic=\"brief\","
                 "subscription=\"late\"} 0"));
  auto topics = nlohmann::json::parse(b.get("/api/topics")->body);
  for (const auto& t : topics)
    if (t["name"] == "short") CHECK(t["retention_removed_messages"] == 7);
}

TEST_CASE("http: beyond --metrics-topics, topics are summed as (other)") {
  HttpBroker b({"--metrics-topics", "2"});
  auto client = Client::connect(b.broker.address());
  for (const char* topic : {"a", "b", "c", "d"}) client->publish(topic, "x");
  client->publish("d", "y");
  std::string body =
      b.metrics_with("tern_topic_appended_messages_total{topic=\"(other)\"} 3");
  INFO(body);
  CHECK(has_line(body, "tern_topic_appended_messages_total{topic=\"a\"} 1"));
  CHECK(has_line(body, "tern_topic_appended_messages_total{topic=\"b\"} 1"));
  CHECK(has_line(body,
                 "tern_topic_appended_messages_total{topic=\"(other)\"} 3"));
  CHECK(body.find("topic=\"c\"") == std::string::npos);
}

TEST_CASE("http: 200 half-sent HTTP requests do not slow publishing") {
  HttpBroker b;
  std::vector<std::unique_ptr<RawConnection>> stalled;
  for (int i = 0; i < 200; ++i) {
    auto c =
        std::make_unique<RawConnection>("127.0.0.1:" + std::to_string(b.port));
    REQUIRE(c->ok());
    CHECK(c->send_bytes(std::string("GET /metrics HTTP/1.1\r\nHost: x\r\n")));
    stalled.push_back(std::move(c));
  }
  // HTTP has threads of its own: the loop serves clients as before.
  auto client = Client::connect(b.broker.address());
  auto start = std::chrono::steady_clock::now();
  std::vector<OutgoingMessage> batch(100);
  for (auto& m : batch) m.payload = std::string(256, 'x');
  for (int i = 0; i < 100; ++i) client->publish_async("busy", batch);
  client->flush();
  auto took = std::chrono::steady_clock::now() - start;
  MESSAGE("10,000 confirmed messages with 200 stalled HTTP requests in "
          << std::chrono::duration<double>(took).count() << " s");
  CHECK(took < 10s);
  CHECK(read_topic(b.broker.address(), "busy").size() == 10000);
}

TEST_CASE("http: health and readiness answer while the broker serves") {
  HttpBroker b;
  auto health = b.get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "ok\n");
  auto ready = b.get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  // The dashboard: one page from the binary that asks /api/ for figures.
  auto page = b.get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  for (const char* needed :
       {"/api/broker", "/api/topics", "/api/subscriptions", "/api/connections",
        "<table id=\"subscriptions\">"})
    CHECK(page->body.find(needed) != std::string::npos);
  CHECK(page->body.find("http://") == std::string::npos);  // nothing remote
  CHECK(page->body.find("https://") == std::string::npos);
  auto unknown = b.get("/nothing-here");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  // A stopped broker stops answering (a check that it is down, not stuck).
  CHECK(b.broker.stop() == 0);
  CHECK_FALSE(b.get("/healthz"));
}

TEST_CASE("http: with users, /metrics needs the token of a monitor user") {
  std::string dir = make_temp_dir("tern-http");
  auto token_hash = [](const std::string& token) {
    RunResult run =
        run_program({broker_binary(), "hash-token"}, token + "\n", 10s);
    REQUIRE(run.exit_code == 0);
    return run.out.substr(0, run.out.find('\n'));
  };
  const std::string watcher = "watcher-token-0123456789abcdef0123456789";
  const std::string robot = "robot-token-0123456789abcdef0123456789ab";
  std::ofstream(dir + "/users.toml")
      << "[users.watcher]\ntoken = \"" << token_hash(watcher)
      << "\"\nmonitor = true\n"
      << "[users.robot]\ntoken = \"" << token_hash(robot) << "\"\n";
  HttpBroker b({"--config", dir + "/users.toml"});

  auto none = b.get("/metrics");
  REQUIRE(none);
  CHECK(none->status == 401);
  auto not_monitor = b.get("/metrics", robot);
  REQUIRE(not_monitor);
  CHECK(not_monitor->status == 401);
  auto wrong = b.get("/metrics", watcher + "x");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto api = b.get("/api/topics");
  REQUIRE(api);
  CHECK(api->status == 401);
  auto api_watcher = b.get("/api/topics", watcher);
  REQUIRE(api_watcher);
  CHECK(api_watcher->status == 200);
  CHECK(has_line(b.metrics_with("tern_storage_writable 1", watcher),
                 "tern_storage_writable 1"));
  // Health checks say nothing secret: no token needed.
  auto health = b.get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  remove_tree(dir);
}

TEST_CASE("http: bad --http settings are clear errors") {
  std::string dir = make_temp_dir("tern-http");
  SUBCASE("beyond loopback without users") {
    RunResult run =
        run_program({broker_binary(), "--data", dir + "/data", "--listen",
                     "127.0.0.1:" + std::to_string(free_port()), "--http",
                     "0.0.0.0:" + std::to_string(free_port())},
                    "", 10s);
    INFO(run.err);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("refusing to serve HTTP on 0.0.0.0") !=
          std::string::npos);
  }
  SUBCASE("not an address") {
    RunResult run = run_program(
        {broker_binary(), "--data", dir + "/data", "--http", "7412"}, "", 10s);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("--http") != std::string::npos);
  }
  SUBCASE("a port in use") {
    BrokerProcess other;
    std::string taken = other.address();
    RunResult run = run_program(
        {broker_binary(), "--data", dir + "/data", "--listen",
         "127.0.0.1:" + std::to_string(free_port()), "--http", taken},
        "", 10s);
    INFO(run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("cannot serve HTTP on " + taken) != std::string::npos);
  }
  remove_tree(dir);
}

}  // namespace
}  // namespace tern::test
