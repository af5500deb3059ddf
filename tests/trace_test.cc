// Trace context: the traceparent header parsed and written as W3C has it,
// carried through redeliveries, dead letters and request/reply, and named
// in the broker's log lines about a message.
#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"
#include "traceparent.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

constexpr char kParent[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST_CASE("trace: traceparent is parsed and written as W3C has it") {
  trace::Traceparent p;
  REQUIRE(trace::parse(kParent, &p));
  CHECK(p.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(p.parent_id == "00f067aa0ba902b7");
  CHECK(p.flags == 1);
  CHECK(trace::format(p) == kParent);
  // A later version may add fields after a '-'.
  CHECK(trace::parse(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", &p));
  for (const char* bad :
       {"", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"}) {
    INFO(bad);
    CHECK_FALSE(trace::parse(bad, &p));
  }
}

TEST_CASE("trace: TraceContext starts, follows and reads traces") {
  TraceContext a = TraceContext::start(), b = TraceContext::start();
  CHECK(a.trace_id().size() == 32);
  CHECK(a.trace_id() != b.trace_id());
  TraceContext child = a.child();
  CHECK(child.trace_id() == a.trace_id());
  CHECK(child.traceparent != a.traceparent);
  OutgoingMessage m;
  m.headers = {{"traceparent", "old"}, {"x", "1"}};
  TraceContext with_state{kParent, "vendor=abc"};
  with_state.attach(&m);
  CHECK(m.headers.size() == 3);
  Message delivered;
  delivered.headers = m.headers;
  TraceContext got = TraceContext::of(delivered);
  CHECK(got.traceparent == kParent);
  CHECK(got.tracestate == "vendor=abc");
  delivered.headers = {{"traceparent", "not a traceparent"}};
  CHECK(TraceContext::of(delivered).traceparent.empty());
  CHECK(TraceContext{}.child().traceparent.empty());
}

// The JSON log lines of `broker` that are the event `name`.
std::vector<nlohmann::json> events(const BrokerProcess& broker,
                                   const std::string& name) {
  std::vector<nlohmann::json> found;
  std::istringstream log(broker.log());
  for (std::string line; std::getline(log, line);) {
    if (line.empty() || line[0] != '{') continue;
    auto event = nlohmann::json::parse(line);
    if (event.value("event", "") == name) found.push_back(event);
  }
  return found;
}

TEST_CASE(
    "trace: kept through redelivery, dead letters and expiry, and "
    "named in the broker's log") {
  BrokerOptions options;
  options.extra_args = {"--log-format", "json", "--log-level", "debug"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  TraceContext trace{kParent, "vendor=abc"};
  OutgoingMessage m;
  m.payload = "order 7";
  trace.attach(&m);
  client->publish("orders", m);
  OutgoingMessage brief = m;
  brief.ttl = 1ms;
  client->publish("brief", brief);

  SubscribeOptions sub_options = durable("orders", "billing");
  sub_options.retry_delays = {0ms};
  auto sub = client->subscribe(sub_options);
  auto first = sub.next(5s);
  REQUIRE(first);
  CHECK(TraceContext::of(*first).traceparent == kParent);
  sub.nack(*first);
  auto again = sub.next(5s);
  REQUIRE(again);
  CHECK(again->attempt == 2);
  CHECK(TraceContext::of(*again).tracestate == "vendor=abc");
  sub.reject(*again);
  auto dead = client->subscribe(durable("orders.dlq", "ops")).next(5s);
  REQUIRE(dead);
  CHECK(TraceContext::of(*dead).traceparent == kParent);
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(client->subscribe(durable("brief", "late")).next(500ms));
  CHECK(client->ping().count() >= 0);

  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto dead_events = events(broker, "dead_lettered");
  REQUIRE(dead_events.size() == 1);
  CHECK(dead_events[0]["trace_id"] == trace_id);
  auto redelivered = events(broker, "redelivered");
  REQUIRE(redelivered.size() == 1);
  CHECK(redelivered[0]["trace_id"] == trace_id);
  CHECK(redelivered[0]["subscription"] == "billing");
  auto expired = events(broker, "expired");
  REQUIRE(expired.size() == 1);
  CHECK(expired[0]["trace_id"] == trace_id);
  CHECK(expired[0]["topic"] == "brief");
}

TEST_CASE(
    "trace: a reply carries its request's trace; tern sub --headers "
    "shows it") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto responder = client->respond(
      "prices", [](const Message& m) { return "price of " + m.payload; });
  std::thread serving([&] { responder.serve_one(10s); });
  auto other = Client::connect(broker.address());
  Message reply =
      other->request("prices", "AAPL", 10s, {{"traceparent", kParent}});
  serving.join();
  TraceContext got = TraceContext::of(reply);
  CHECK(got.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(got.traceparent != kParent);  // the responder's own span

  OutgoingMessage m;
  m.payload = "hello";
  m.headers = {{"traceparent", kParent}, {"odd", std::string("a b=\x01", 5)}};
  client->publish("shown", m);
  RunResult run =
      run_program({cli_binary(), "sub", "shown", "--from", "earliest",
                   "--count", "1", "--headers", "--server", broker.address()},
                  "", 20s);
  CHECK(run.exit_code == 0);
  CHECK(run.out == std::string("traceparent=") + kParent +
                       " odd=a\\x20b\\x3d\\x01\thello\n");
}

}  // namespace
}  // namespace tern::test
