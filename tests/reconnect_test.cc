// The reconnecting client: a producer and a consumer written with no retry
// code of their own keep working while the broker is killed (kill -9) and
// started again, nothing confirmed is lost and nothing is stored twice; a
// frozen broker (SIGSTOP) is noticed through heartbeats within a few seconds;
// with reconnect off, a lost connection still ends the client; and the
// tern tool's sub carries on across a broker restart.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Publishes `count` messages "m<i>" with publish_async in batches of 10,
// recording every result; no retry code: the client resends by itself.
struct Producer {
  explicit Producer(const std::string& address)
      : client(Client::connect(address)) {}

  void run(int count) {
    for (int i = 0; i < count; i += 10) {
      std::vector<OutgoingMessage> batch;
      for (int j = i; j < i + 10 && j < count; ++j) {
        batch.push_back(
            OutgoingMessage{"m" + std::to_string(j), {}, "", "", {}});
      }
      client->publish_async("orders", batch,
                            [this](const std::vector<PublishResult>& results) {
                              std::lock_guard<std::mutex> lock(mu);
                              ++callbacks;
                              for (const auto& r : results) {
                                if (r.error != ErrorCode::kNone) ++failed;
                              }
                              confirmed += results.size();
                            });
      sent = i + 10;
      std::this_thread::sleep_for(1ms);
    }
    client->flush();
  }

  std::unique_ptr<Client> client;
  std::atomic<int> sent{0};
  std::mutex mu;
  size_t callbacks = 0;
  size_t confirmed = 0;
  size_t failed = 0;
};

void wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
}

TEST_CASE(
    "reconnect: kill -9 and restart under a producer and a consumer; "
    "every message delivered, none stored twice") {
  constexpr int kCount = 3000;
  BrokerProcess broker;
  Producer producer(broker.address());
  auto consumer_client = Client::connect(broker.address());
  Subscription sub =
      consumer_client->subscribe(durable("orders", "audit", 200));

  std::mutex mu;
  std::set<std::string> received;
  size_t deliveries = 0;
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    while (!stop) {
      auto m = sub.next(200ms);
      if (!m) continue;
      sub.ack(*m);
      std::lock_guard<std::mutex> lock(mu);
      received.insert(m->payload);
      ++deliveries;
    }
  });
  auto start = Clock::now();
  std::thread publisher([&] { producer.run(kCount); });

  for (int crash = 1; crash <= 2; ++crash) {
    wait_until([&] { return producer.sent >= crash * kCount / 3; }, 30s);
    broker.kill9();
    std::this_thread::sleep_for(300ms);  // calls made now wait
    broker.restart_on_same_port();
  }
  publisher.join();
  wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return received.size() >= size_t(kCount);
      },
      30s);
  stop = true;
  consumer.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  MESSAGE("3000 messages over 2 crashes in " << seconds << " s, " << deliveries
                                             << " deliveries");

  // Every publish_async ended in one callback, and none failed.
  CHECK(producer.callbacks == size_t(kCount / 10));
  CHECK(producer.confirmed == size_t(kCount));
  CHECK(producer.failed == 0);
  CHECK(received.size() == size_t(kCount));
  // At-least-once: a few acks may die with a connection; not many.
  CHECK(deliveries < size_t(kCount) + 2000);
  CHECK(seconds < 60);

  // The topic holds each message once, at strictly increasing offsets.
  std::vector<Message> log = read_topic(broker.address(), "orders");
  std::map<std::string, int> copies;
  uint64_t last = 0;
  bool increasing = true;
  for (size_t i = 0; i < log.size(); ++i) {
    ++copies[log[i].payload];
    if (i > 0 && log[i].offset <= last) increasing = false;
    last = log[i].offset;
  }
  CHECK(increasing);
  CHECK(log.size() == size_t(kCount));
  int stored_twice = 0;
  for (const auto& [payload, n] : copies) stored_twice += n > 1;
  CHECK(stored_twice == 0);
  CHECK(copies.size() == size_t(kCount));
}

TEST_CASE(
    "reconnect: blocking calls made while the broker is down wait for "
    "it, and a subscription goes on") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  Subscription sub = client->subscribe(durable("jobs", "workers"));
  client->publish("jobs", "before");
  auto m = sub.next(5s);
  REQUIRE(m);
  sub.ack(*m);

  broker.kill9();
  std::thread restarter([&] {
    std::this_thread::sleep_for(500ms);
    broker.restart_on_same_port();
  });
  // Made while nothing listens: waits for the reconnect instead of throwing.
  CHECK(client->publish("jobs", "during") > 0);
  restarter.join();
  CHECK(client->connected());
  // An ack of a delivery from the old connection is dropped, not misrouted.
  sub.ack(*m);
  // "before" comes again if its ack was not committed before the kill.
  std::optional<Message> next;
  do {
    next = sub.next(10s);
    REQUIRE(next);
    sub.ack(*next);
  } while (next->payload == "before");
  CHECK(next->payload == "during");
  CHECK(client->ping().count() > 0);
}

TEST_CASE(
    "reconnect: a frozen broker (SIGSTOP) is noticed within a few "
    "seconds by its heartbeats") {
  BrokerProcess broker;
  ClientOptions once;
  once.heartbeat = 500ms;
  once.reconnect = false;
  auto fragile = Client::connect(broker.address(), once);
  Subscription sub = fragile->subscribe(durable("quiet", "s"));
  ClientOptions again;
  again.heartbeat = 500ms;
  auto sturdy = Client::connect(broker.address(), again);
  sturdy->publish("quiet", "first");
  REQUIRE(sub.next(5s));

  REQUIRE(::kill(broker.pid(), SIGSTOP) == 0);
  auto start = Clock::now();
  std::string what;
  try {
    while (sub.next(20s)) {
    }
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kConnectionLost);
    what = e.what();
  }
  auto noticed = Clock::now() - start;
  wait_until([&] { return !sturdy->connected(); }, 5s);
  bool sturdy_noticed = !sturdy->connected();
  REQUIRE(::kill(broker.pid(), SIGCONT) == 0);

  CHECK(what.find("no frame from the broker") != std::string::npos);
  CHECK(noticed < 3s);  // two intervals, plus a quarter, plus slack
  CHECK(sturdy_noticed);
  // Back: the reconnecting client carries on by itself.
  CHECK(sturdy->publish("quiet", "second") > 0);
  CHECK(sturdy->connected());
}

TEST_CASE(
    "reconnect: a refused request does not stop the client from coming "
    "back after a restart") {
  std::string dir = make_temp_dir("tern-reconnect-users");
  BrokerOptions options;
  options.extra_args = {
      "--config",
      users_file(dir, "alice", "s3cret", "publish.allow = [\"allowed.>\"]")};
  BrokerProcess broker(options);
  ClientOptions alice;
  alice.user = "alice";
  alice.password = "s3cret";
  auto client = Client::connect(broker.address(), alice);
  // Refused with the request's id: about that request, not the connection.
  try {
    client->publish("denied", "x");
    FAIL("publishing without permission did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNotAuthorized);
  }
  broker.kill9();
  broker.restart_on_same_port();
  CHECK(client->publish("allowed.one", "x") == 0);
  CHECK(client->connected());
  remove_tree(dir);
}

TEST_CASE("reconnect: off, a lost connection ends the client as before") {
  BrokerProcess broker;
  ClientOptions options;
  options.reconnect = false;
  auto client = Client::connect(broker.address(), options);
  client->publish("t", "x");
  broker.kill9();
  wait_until([&] { return !client->connected(); }, 5s);
  CHECK_FALSE(client->connected());
  broker.restart_on_same_port();
  try {
    client->publish("t", "y");
    FAIL("publish after a lost connection did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kConnectionLost);
  }
}

// A CA and a broker certificate for 127.0.0.1, made with openssl.
struct TlsFiles {
  TlsFiles() : dir(make_temp_dir("tern-reconnect-tls")) {
    std::string ext = dir + "/ext";
    std::ofstream(ext) << "subjectAltName=IP:127.0.0.1\n";
    run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/ca.key",
         "-out", dir + "/ca.crt", "-days", "2", "-subj", "/CN=ca"});
    run({"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         dir + "/broker.key", "-out", dir + "/broker.csr", "-subj",
         "/CN=broker"});
    run({"/usr/bin/openssl", "x509", "-req", "-in", dir + "/broker.csr", "-CA",
         dir + "/ca.crt", "-CAkey", dir + "/ca.key", "-CAcreateserial", "-out",
         dir + "/broker.crt", "-days", "2", "-extfile", ext});
  }
  ~TlsFiles() { remove_tree(dir); }
  static void run(const std::vector<std::string>& argv) {
    RunResult r = run_program(argv, "", 20s);
    INFO("openssl: " << r.err);
    REQUIRE(r.exit_code == 0);
  }
  std::string dir;
};

TEST_CASE(
    "reconnect: over TLS, heartbeats notice a frozen broker and the "
    "client comes back after a restart") {
  TlsFiles files;
  BrokerOptions options;
  options.extra_args = {"--tls-cert", files.dir + "/broker.crt", "--tls-key",
                        files.dir + "/broker.key"};
  BrokerProcess broker(options);
  ClientOptions tls;
  tls.tls_ca_file = files.dir + "/ca.crt";
  tls.heartbeat = 500ms;
  ClientOptions once = tls;
  once.reconnect = false;
  auto fragile = Client::connect(broker.address(), once);
  auto sturdy = Client::connect(broker.address(), tls);
  Subscription sub = sturdy->subscribe(durable("secure", "s"));
  sturdy->publish("secure", "one");

  REQUIRE(::kill(broker.pid(), SIGSTOP) == 0);
  auto start = Clock::now();
  wait_until([&] { return !fragile->connected(); }, 5s);
  auto noticed = Clock::now() - start;
  REQUIRE(::kill(broker.pid(), SIGCONT) == 0);
  CHECK_FALSE(fragile->connected());
  CHECK(noticed < 3s);

  broker.kill9();
  broker.restart_on_same_port();
  sturdy->publish("secure", "two");
  std::set<std::string> got;
  while (got.size() < 2) {
    auto m = sub.next(10s);
    REQUIRE(m);
    sub.ack(*m);
    got.insert(m->payload);
  }
  CHECK(sturdy->connected());
}

TEST_CASE("reconnect: tern sub keeps printing across a broker restart") {
  BrokerProcess broker;
  RunResult result;
  std::thread cli([&] {
    result = run_program({cli_binary(), "--server", broker.address(), "sub",
                          "feed", "--count", "2"},
                         "", 40s);
  });
  auto client = Client::connect(broker.address());
  // The ephemeral subscription starts at the latest message: publish until
  // the tool has one, which it then prints.
  wait_until(
      [&] {
        auto topics = client->topics("feed");
        return !topics.empty() && !topics[0].subscriptions.empty() &&
               topics[0].subscriptions[0].consumers > 0;
      },
      10s);
  client->publish("feed", "one");
  std::this_thread::sleep_for(300ms);
  broker.kill9();
  broker.restart_on_same_port();
  // It resumes right after the last message it printed, so this one, sent
  // perhaps before it is back, still reaches it.
  client->publish("feed", "two");
  cli.join();
  CHECK(result.exit_code == 0);
  CHECK(result.out == "one\ntwo\n");
  INFO(result.err);
}

}  // namespace
}  // namespace tern::test
