// --log-format json: one JSON object per line, events with their fields.
#include <doctest/doctest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
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

}  // namespace
}  // namespace tern::test
