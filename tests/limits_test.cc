// Limits and back-pressure: what one client (or a full disk) can do to the
// broker is bounded, gets a clear error, and loses nothing confirmed.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "small_disk.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

BrokerOptions with_flags(std::vector<std::string> flags) {
  BrokerOptions options;
  options.extra_args = std::move(flags);
  return options;
}

// A field of /proc/PID/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

ErrorCode publish_error(Client& client, const std::string& topic,
                        const std::string& payload) {
  try {
    client.publish(topic, payload);
    return ErrorCode::kNone;
  } catch (const Error& e) {
    return e.code();
  }
}

TEST_CASE("limits: connections beyond --max-connections are refused") {
  BrokerProcess broker(with_flags({"--max-connections", "2"}));
  auto first = Client::connect(broker.address());
  auto second = Client::connect(broker.address());
  ErrorCode refused = ErrorCode::kNone;
  try {
    Client::connect(broker.address());
  } catch (const Error& e) {
    refused = e.code();
    CHECK(std::string(e.what()).find("connections") != std::string::npos);
  }
  CHECK(refused == ErrorCode::kLimitExceeded);
  CHECK(first->publish("t", "still served") == 0);

  // A slot freed is a slot taken again.
  second->close();
  second.reset();
  bool reconnected = false;
  for (int i = 0; i < 50 && !reconnected; ++i) {
    try {
      auto again = Client::connect(broker.address());
      reconnected = true;
    } catch (const Error&) {
      std::this_thread::sleep_for(20ms);  // the broker has not seen the close
    }
  }
  CHECK(reconnected);
}

TEST_CASE("limits: topics and subscriptions beyond their limits are refused") {
  BrokerProcess broker(
      with_flags({"--max-topics", "2", "--max-subscriptions", "2"}));
  auto client = Client::connect(broker.address());
  client->publish("one", "x");
  client->publish("two", "x");
  CHECK(publish_error(*client, "three", "x") == ErrorCode::kLimitExceeded);
  CHECK(client->publish("two", "existing topics still work") == 1);

  SubscribeOptions options;
  options.topic = "one";
  options.subscription = "a";
  auto a = client->subscribe(options);
  options.subscription = "b";
  auto b = client->subscribe(options);
  options.subscription = "c";
  ErrorCode refused = ErrorCode::kNone;
  try {
    client->subscribe(options);
  } catch (const Error& e) {
    refused = e.code();
  }
  CHECK(refused == ErrorCode::kLimitExceeded);
  CHECK(client->ping().count() >= 0);  // the connection stays usable
}

TEST_CASE(
    "limits: a consumer that stops reading does not grow broker memory while "
    "a producer keeps publishing") {
  BrokerProcess broker(with_flags({"--max-output", "4MiB"}));
  // A consumer with the largest prefetch that never reads its socket.
  RawConnection stalled(broker.address());
  REQUIRE(stalled.ok());
  REQUIRE(stalled.hello().type == wire::Body::HelloOk);
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(fbb, wire::Body::Subscribe,
                wire::CreateSubscribeDirect(fbb, 2, "flood", "stalled",
                                            wire::StartPosition::Latest,
                                            1000000)
                    .Union());
  REQUIRE(stalled.send_frame(fbb));
  REQUIRE(stalled.next(3s).type == wire::Body::SubscribeOk);

  // 128 MiB published while it does not read: 32,768 messages of 4 KiB.
  auto producer = Client::connect(broker.address());
  const std::string payload(4096, 'p');
  long rss_before = status_kib(broker.pid(), "VmRSS");
  for (int batch = 0; batch < 512; ++batch) {
    std::vector<OutgoingMessage> messages(64);
    for (auto& m : messages) m.payload = payload;
    producer->publish_async("flood", messages);
  }
  producer->flush();

  // Deliveries to it paused once its socket stopped draining, so the broker
  // holds a bounded amount for it (its in-memory tail is bounded too).
  long peak_mib = status_kib(broker.pid(), "VmHWM") / 1024;
  INFO("broker RSS before " << rss_before / 1024 << " MiB, peak " << peak_mib
                            << " MiB for 128 MiB published");
  CHECK(peak_mib > 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(peak_mib < 256);  // sanitizer builds keep freed memory in quarantine
#endif
  CHECK(broker.running());

  // Once it is gone, everything it held comes back to the subscription.
  stalled.close();
  auto consumer = Client::connect(broker.address());
  SubscribeOptions options;
  options.topic = "flood";
  options.subscription = "stalled";
  auto sub = consumer->subscribe(options);
  auto got = receive(sub, 32768, 3s, 60s);
  CHECK(got.size() == 32768);
}

TEST_CASE(
    "disk full: publishes fail with StorageFailure, nothing unconfirmed is "
    "delivered, and publishing resumes when space returns") {
  SmallDisk disk;
  bool mounted = disk.mounted();
  if (!mounted) {
    MESSAGE("cannot mount a tmpfs (not root?): testing with --min-free "
            "above the free space instead");
  }
  BrokerOptions options = disk.broker_options();
  // Without a tmpfs the limit is set above any real free space.
  if (!mounted) options.extra_args = {"--min-free", "1048576GiB"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  if (mounted) {
    CHECK(client->publish("disk", "before") == 0);
    REQUIRE(disk.fill());
  }

  CHECK(publish_error(*client, "disk", "refused") ==
        ErrorCode::kStorageFailure);
  std::vector<PublishResult> results;
  client->publish_async("disk", {{"refused too", {}, {}, {}}},
                        [&](const std::vector<PublishResult>& r) { results = r; });
  CHECK_THROWS_AS(client->flush(), Error);
  REQUIRE(results.size() == 1);
  CHECK(results[0].error == ErrorCode::kStorageFailure);
  CHECK(broker.log().find("disk full") != std::string::npos);

  if (!mounted) return;
  disk.empty();  // space returns
  uint64_t offset = client->publish("disk", "after");
  auto stored = read_topic(broker.address(), "disk");
  std::vector<std::string> payloads;
  for (const auto& m : stored) payloads.push_back(m.payload);
  CHECK(payloads == std::vector<std::string>{"before", "after"});
  CHECK(offset > 0);
}

}  // namespace
}  // namespace tern::test
