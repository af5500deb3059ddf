// The memory budget (--memory-budget, broker/memory_budget.h): thousands of
// topics holding three times the budget, hundreds of consumers that stop
// reading and hundreds of idle connections keep the broker's peak resident
// memory within the budget plus its documented fixed overhead (README.md,
// "Memory"), while a producer and a consumer keep working; the coldest
// topics give their tails back, and their messages are read back from the
// store when a consumer wants them.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

constexpr long kBudgetMiB = 64;
// The broker's resident memory besides the budget, as README.md documents
// it: the process and RocksDB (memtables, block caches), and 64 KiB of input
// buffer per connection.
constexpr long kFixedOverheadMiB = 256;
constexpr long kPerConnectionKiB = 64;

constexpr int kTopics = 3000;
constexpr int kPerTopic = 8;
constexpr size_t kPayload = 8 * 1024;  // 3000 x 8 x 8 KiB: 188 MiB
constexpr int kStalled = 200;
constexpr int kIdle = 300;
constexpr int kLive = kTopics / 10;

// VmHWM (peak resident memory) of process `pid`, in MiB; -1 if unknown.
long peak_rss_mib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.compare(0, 6, "VmHWM:") == 0)
      return std::stol(line.substr(6)) / 1024;
  return -1;
}

// A consumer that subscribes with a large prefetch and never reads again.
std::unique_ptr<RawConnection> stalled_consumer(const std::string& address,
                                                const char* topic) {
  auto raw = std::make_unique<RawConnection>(address);
  REQUIRE(raw->hello().type == wire::Body::HelloOk);
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(fbb, wire::Body::Subscribe,
                wire::CreateSubscribeDirect(
                    fbb, 7, topic, "", wire::StartPosition::Earliest, 1000000)
                    .Union());
  REQUIRE(raw->send_frame(fbb));
  REQUIRE(raw->next(5s).type == wire::Body::SubscribeOk);
  return raw;
}

std::string payload_of(int topic, int i) {
  std::string payload(kPayload, char('a' + (topic + i) % 26));
  payload.replace(0, 16, std::to_string(topic) + "/" + std::to_string(i) + ";");
  return payload;
}

TEST_CASE(
    "memory: thousands of topics, stalled consumers and idle connections "
    "stay within --memory-budget while a producer and consumer keep "
    "working") {
  BrokerOptions options;
  options.fsync = "never";  // the disk is not what is measured here
  options.extra_args = {"--memory-budget", std::to_string(kBudgetMiB) + "MiB"};
  BrokerProcess broker(options);
  const std::string address = broker.address();

  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<RawConnection>(address));
    REQUIRE(idle.back()->hello().type == wire::Body::HelloOk);
  }

  // The normal consumer, reading throughout on its own thread.
  auto reader = Client::connect(address);
  Subscription live = reader->subscribe(durable("live", "reader", 100));
  std::vector<std::string> received;
  std::thread reading;
  struct Join {
    std::thread& thread;
    ~Join() {
      if (thread.joinable()) thread.join();
    }
  } join{reading};
  reading = std::thread([&] {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (int(received.size()) < kLive &&
           std::chrono::steady_clock::now() < deadline) {
      auto m = live.next(1s);
      if (!m) continue;
      received.push_back(m->payload);
      live.ack(*m);
    }
  });

  // Stalled consumers: each wants everything of "wide" and reads nothing.
  auto producer = Client::connect(address);
  producer->publish("wide", "first");
  std::vector<std::unique_ptr<RawConnection>> stalled;
  for (int i = 0; i < kStalled; ++i)
    stalled.push_back(stalled_consumer(address, "wide"));

  for (int t = 0; t < kTopics; ++t) {
    std::vector<OutgoingMessage> messages(kPerTopic);
    for (int i = 0; i < kPerTopic; ++i) messages[i].payload = payload_of(t, i);
    producer->publish_async("bulk." + std::to_string(t), messages);
    if (t % 10 == 0) {  // 19 MiB in all for the stalled consumers
      producer->publish_async("wide", messages);
      std::vector<OutgoingMessage> live_message(1);
      live_message[0].payload = "live " + std::to_string(t / 10);
      producer->publish_async("live", live_message);
    }
  }
  producer->flush();
  reading.join();
  REQUIRE(int(received.size()) == kLive);
  for (int i = 0; i < kLive; ++i)
    CHECK(received[i] == "live " + std::to_string(i));

  // The coldest topics gave their tails back; the broker reports what it
  // holds, within the budget.
  std::vector<TopicInfo> topics = producer->topics();
  uint64_t held = 0;
  for (const TopicInfo& t : topics) held += t.memory_bytes;
  auto info = [&](const std::string& name) {
    for (const TopicInfo& t : topics)
      if (t.name == name) return t;
    return TopicInfo();
  };
  CHECK(info("bulk.0").messages == kPerTopic);
  CHECK(info("bulk.0").memory_bytes == 0);
  CHECK(info("bulk." + std::to_string(kTopics - 1)).memory_bytes > 0);
  CHECK(held <= uint64_t(kBudgetMiB) << 20);

  // Every message of every topic, most read back from the store.
  auto checker = Client::connect(address);
  SubscribeOptions all;
  all.topic = "bulk.>";
  all.start = StartPosition::kEarliest;
  Subscription everything = checker->subscribe(all);
  std::map<std::string, int> per_topic;
  int wrong = 0;
  for (int n = 0; n < kTopics * kPerTopic; ++n) {
    auto m = everything.next(10s);
    if (!m) break;
    int t = std::stoi(m->topic.substr(5));
    if (m->payload != payload_of(t, int(m->offset))) ++wrong;
    ++per_topic[m->topic];
    everything.ack(*m);
  }
  CHECK(wrong == 0);
  CHECK(per_topic.size() == size_t(kTopics));
  int complete = 0;
  for (auto& [name, count] : per_topic) complete += count == kPerTopic;
  CHECK(complete == kTopics);
  CHECK(producer->publish("live", "still here") == kLive);

  long peak = peak_rss_mib(broker.pid());
  INFO("broker peak RSS " << peak << " MiB with a budget of " << kBudgetMiB
                          << " MiB; " << held / 1024 << " KiB held in tails");
  CHECK(peak > 0);
  // Sanitizers keep freed memory a while: not checked under them.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  const long connections = kIdle + kStalled + 4;
  CHECK(peak < kBudgetMiB + kFixedOverheadMiB +
                   connections * kPerConnectionKiB / 1024);
#endif
  CHECK(broker.running());
}

}  // namespace
}  // namespace tern::test
