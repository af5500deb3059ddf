// --log-format json: one JSON object per line, events with their fields.
#include <doctest/doctest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("log format json: every line an object, refusals as events") {
  BrokerOptions options;
  options.extra_args = {"--log-format", "json", "--max-connections", "3"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  client->publish("orders", "x");
  // Connections beyond the limit are refused, and logged so. (The start-up
  // probe's connection may still count for a moment: open up to five.)
  std::vector<std::unique_ptr<RawConnection>> held;
  bool closed = false;
  for (int i = 0; i < 5 && !closed; ++i) {
    held.push_back(std::make_unique<RawConnection>(broker.address()));
    closed = held.back()->wait_closed(1s);
  }
  REQUIRE(closed);

  bool refused = false;
  std::istringstream log(broker.log());
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.empty()) continue;
    ++lines;
    INFO(line);
    nlohmann::json event;
    REQUIRE_NOTHROW(event = nlohmann::json::parse(line));
    CHECK(event.contains("time"));
    CHECK(event.contains("level"));
    CHECK(event.contains("msg"));
    if (event.value("event", "") == "connection_refused") {
      refused = true;
      CHECK(event["level"] == "warn");
      CHECK(event["peer"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
      CHECK(event["error"].get<std::string>().find("connections") !=
            std::string::npos);
    }
  }
  CHECK(lines >= 3);  // loaded, listening, the refusal
  CHECK(refused);
}

// The last line of `broker`'s log that is the event `name`, waiting up to
// 10 s for one; null if none came.
nlohmann::json wait_for_event(const BrokerProcess& broker,
                              const std::string& name) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  nlohmann::json found;
  while (found.is_null() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    std::istringstream log(broker.log());
    for (std::string line; std::getline(log, line);) {
      if (line.empty()) continue;
      nlohmann::json event = nlohmann::json::parse(line);
      if (event.value("event", "") == name) found = event;
    }
  }
  return found;
}

// The events a message's life ends in: retention and a dead letter.
TEST_CASE("log format json: retention and dead letters are events") {
  BrokerOptions options;
  options.extra_args = {"--log-format", "json", "--retention-interval", "50ms"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 2;
  client->create_topic("jobs", settings);
  client->publish_async("jobs", std::vector<OutgoingMessage>(5));
  client->flush();

  nlohmann::json removed = wait_for_event(broker, "retention_removed");
  INFO(broker.log());
  REQUIRE(!removed.is_null());
  CHECK(removed["topic"] == "jobs");
  CHECK(removed["first"] == "0");
  CHECK(removed["last"] == "2");
  CHECK(removed["messages"] == "3");

  auto sub = client->subscribe(durable("jobs", "workers"));
  std::vector<Message> got = receive(sub, 2, 2s, 10s, /*ack=*/false);
  REQUIRE(got.size() == 2);
  CHECK(got[0].offset == 3);
  sub.reject(got[0]);
  nlohmann::json dead = wait_for_event(broker, "dead_lettered");
  REQUIRE(!dead.is_null());
  CHECK(dead["topic"] == "jobs");
  CHECK(dead["subscription"] == "workers");
  CHECK(dead["offset"] == "3");
  CHECK(dead["attempts"] == "1");
  CHECK(dead["reason"] == "rejected");
  CHECK(dead["dead_letter_topic"] == "jobs.dlq");
}

}  // namespace
}  // namespace tern::test
