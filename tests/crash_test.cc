// Crash test: a confirmed message survives kill -9 of the broker.
//
// A producer pipelines publishes and records every confirm it gets. In the
// middle of that stream the broker is killed with SIGKILL and started again on
// the same data directory; then the whole topic is read back. Every confirmed
// message must be there exactly once, at the offset its confirm named.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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

constexpr char kTopic[] = "crash";
// The kill comes once this many messages are confirmed or 300 ms after the
// first confirm, whichever is sooner, so the log read back stays small. The
// producer's own cap is far above that and only bounds a broken run.
constexpr size_t kKillAfterConfirms = 20000;
constexpr size_t kMaxMessagesPerRound = 500000;

// Shared with the producer thread through a shared_ptr so that a thread that
// fails to finish can be detached without leaving it dangling references.
struct Producer {
  std::unique_ptr<Client> client;
  std::string prefix;

  std::mutex mu;
  std::vector<std::pair<uint64_t, std::string>> confirmed;  // guarded by mu
  std::atomic<size_t> confirmed_count{0};
  std::atomic<bool> callback_mismatch{false};

  std::vector<std::string> sent;    // written by the producer thread only
  std::atomic<bool> killed{false};  // set just before the broker is killed
  std::atomic<bool> early_error{false};
  std::string early_error_text;
  std::atomic<bool> done{false};
};

void produce(const std::shared_ptr<Producer>& p) {
  try {
    size_t seq = 0;
    for (int batch = 0; seq < kMaxMessagesPerRound; ++batch) {
      size_t size = 1 + batch % 16;
      std::vector<OutgoingMessage> messages(size);
      std::vector<std::string> payloads;
      for (auto& m : messages) {
        m.payload = p->prefix + std::to_string(seq++);
        payloads.push_back(m.payload);
        p->sent.push_back(m.payload);
      }
      std::weak_ptr<Producer> weak = p;
      p->client->publish_async(
          kTopic, messages,
          [weak, payloads](const std::vector<PublishResult>& results) {
            auto self = weak.lock();
            if (!self) return;
            if (results.size() != payloads.size()) {
              self->callback_mismatch = true;
              return;
            }
            std::lock_guard<std::mutex> lock(self->mu);
            for (size_t i = 0; i < results.size(); ++i) {
              if (results[i].error != ErrorCode::kNone) continue;
              self->confirmed.emplace_back(results[i].offset, payloads[i]);
              ++self->confirmed_count;
            }
          });
    }
  } catch (const Error& e) {
    // After the kill the connection is gone, which is the expected way out.
    if (!p->killed) {
      p->early_error_text = e.what();
      p->early_error = true;
    }
  } catch (const std::exception& e) {
    p->early_error_text = e.what();
    p->early_error = true;
  }
  p->done = true;
}

bool wait_for(const std::function<bool()>& condition,
              std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("crash: confirmed messages survive kill -9 during a publish stream") {
  BrokerProcess broker;
  std::map<uint64_t, std::string> confirmed;  // over all rounds
  std::set<std::string> sent;

  for (int round = 0; round < 3; ++round) {
    auto producer = std::make_shared<Producer>();
    producer->prefix = "round" + std::to_string(round) + "-";
    ClientOptions options;
    options.max_unconfirmed = 200;
    options.timeout = 5s;
    producer->client = Client::connect(broker.address(), options);

    std::thread thread(produce, producer);
    // Let confirms flow, then kill while publishes are still in flight.
    bool flowing = wait_for([&] { return producer->confirmed_count > 0; }, 5s);
    if (flowing) {
      wait_for([&] { return producer->confirmed_count >= kKillAfterConfirms; },
               300ms);
    }
    size_t in_flight = producer->client->unconfirmed();
    producer->killed = true;
    broker.kill9();

    bool finished = wait_for([&] { return producer->done.load(); }, 10s);
    if (finished) {
      thread.join();
    } else {
      thread.detach();  // only touches *producer, which it co-owns
    }
    INFO("round " << round << ": " << producer->confirmed_count.load()
                  << " confirmed, " << in_flight << " unconfirmed at kill");
    REQUIRE_MESSAGE(finished, "producer did not notice the dead broker");
    producer->client.reset();
    REQUIRE_MESSAGE(flowing, "no confirm within 5 s; broker stderr:\n"
                                 << broker.log());
    CHECK_FALSE(producer->callback_mismatch);
    // The producer was still going when the broker died.
    CHECK(producer->sent.size() < kMaxMessagesPerRound);
    INFO("producer error: " << producer->early_error_text);
    CHECK_FALSE(producer->early_error);

    {
      std::lock_guard<std::mutex> lock(producer->mu);
      for (const auto& [offset, payload] : producer->confirmed) {
        bool fresh = confirmed.emplace(offset, payload).second;
        CHECK_MESSAGE(fresh, "offset " << offset << " confirmed twice");
      }
    }
    sent.insert(producer->sent.begin(), producer->sent.end());

    broker.restart();
    auto log = read_topic(broker.address(), kTopic, 1s);
    INFO("broker stderr:\n" << broker.log());

    std::map<uint64_t, std::string> stored;
    std::set<std::string> payloads;
    size_t not_increasing = 0, duplicates = 0, unknown = 0;
    for (size_t i = 0; i < log.size(); ++i) {
      if (i > 0 && log[i].offset <= log[i - 1].offset) ++not_increasing;
      stored.emplace(log[i].offset, log[i].payload);
      if (!payloads.insert(log[i].payload).second) ++duplicates;
      if (sent.count(log[i].payload) == 0) ++unknown;
    }
    CHECK(not_increasing == 0);
    CHECK(duplicates == 0);
    CHECK(unknown == 0);

    size_t missing = 0, moved = 0;
    for (const auto& [offset, payload] : confirmed) {
      auto it = stored.find(offset);
      if (it == stored.end()) {
        ++missing;
      } else if (it->second != payload) {
        ++moved;
      }
    }
    CHECK_MESSAGE(missing == 0, missing << " confirmed messages lost of "
                                        << confirmed.size());
    CHECK_MESSAGE(moved == 0, moved << " confirmed messages at another offset");
    CHECK(log.size() >= confirmed.size());
  }
}

}  // namespace tern::test
