// Topic and subscription listing: over the protocol and with `tern topics`.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("admin: topics list and info report offsets, lag and pending") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  for (int i = 0; i < 10; ++i) client->publish("orders", "o" + std::to_string(i));
  client->publish("audit", "a");

  SubscribeOptions options = durable("orders", "billing", 4);
  auto sub = client->subscribe(options);
  auto got = receive(sub, 4, 1s, 5s, /*ack=*/false);
  REQUIRE(got.size() == 4);
  sub.ack(got[0]);
  sub.ack(got[1]);
  CHECK(client->ping().count() >= 0);  // the acks are in

  auto all = client->topics();
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "audit");
  CHECK(all[1].name == "orders");
  CHECK(all[1].next_offset == 10);

  auto orders = client->topics("orders");
  REQUIRE(orders.size() == 1);
  REQUIRE(orders[0].subscriptions.size() == 1);
  const auto& s = orders[0].subscriptions[0];
  CHECK(s.name == "billing");
  CHECK(s.consumers == 1);
  CHECK(s.ack_floor == 2);
  CHECK(s.lag == 8);
  // Two more went out as the acks returned credit: 4 pending again.
  CHECK(s.pending == 4);
  CHECK(s.dead_letter_topic == "orders.dlq");
  CHECK(client->topics("nope").empty());

  auto list = run_program({cli_binary(), "--server", broker.address(), "topics",
                           "list"},
                          "", 10s);
  CHECK(list.exit_code == 0);
  CHECK(list.out.find("orders\tfirst offset 0\tnext offset 10\t1 subscriptions") !=
        std::string::npos);
  auto info = run_program({cli_binary(), "--server", broker.address(), "topics",
                           "info", "orders"},
                          "", 10s);
  CHECK(info.exit_code == 0);
  CHECK(info.out.find("subscription billing") != std::string::npos);
  CHECK(info.out.find("lag 8") != std::string::npos);
  auto missing = run_program({cli_binary(), "--server", broker.address(),
                              "topics", "info", "nope"},
                             "", 10s);
  CHECK(missing.exit_code == 1);
}

}  // namespace
}  // namespace tern::test
