// run_reconnect_crash_loop (crash_loop.h): kill -9 the broker again and again
// under producers that leave every retry to the reconnecting client.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "crash_loop.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kProducers = 2;
constexpr char kTopic[] = "reconnect-crash";

// One producer for the whole loop: batches of 1-16 messages whose payloads
// name it and a sequence number; no ids of its own, no retries.
struct Producer {
  std::mutex mu;
  std::map<std::string, uint64_t> confirmed;  // payload -> offset
  size_t published = 0;
  size_t failed = 0;
  size_t duplicates = 0;
  std::string first_error;
};

void produce(const std::string& address, int index, uint64_t seed,
             const std::atomic<bool>& stop, Producer& p) {
  try {
    ClientOptions options;
    options.client_name = "crash-loop-reconnecting-producer";
    options.max_unconfirmed = 256;
    options.heartbeat = 1s;
    // The broker here is up for only 50-400 ms between kills: with the
    // default backoff (up to 5 s) a client can miss several of those windows
    // in a row and, after the default 10 s, give up on a call. Settings, not
    // retry code: a shorter backoff ceiling and a longer timeout.
    options.reconnect_max_delay = 500ms;
    options.timeout = 60s;
    auto client = Client::connect(address, options);
    std::mt19937_64 rng(seed);
    size_t seq = 0;
    while (!stop) {
      size_t count = 1 + rng() % 16;
      std::vector<OutgoingMessage> batch(count);
      auto payloads = std::make_shared<std::vector<std::string>>();
      for (auto& m : batch) {
        m.payload = "p" + std::to_string(index) + "-" + std::to_string(seq++);
        payloads->push_back(m.payload);
      }
      client->publish_async(
          kTopic, batch,
          [&p, payloads](const std::vector<PublishResult>& results) {
            std::lock_guard<std::mutex> lock(p.mu);
            for (size_t i = 0; i < results.size(); ++i) {
              if (results[i].error != ErrorCode::kNone) {
                ++p.failed;
                continue;
              }
              p.duplicates += results[i].duplicate;
              p.confirmed[(*payloads)[i]] = results[i].offset;
            }
          });
      std::lock_guard<std::mutex> lock(p.mu);
      p.published += count;
    }
    client->flush();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(p.mu);
    p.first_error = e.what();
  }
}

}  // namespace

std::string ReconnectLoopReport::summary() const {
  char line[512];
  std::snprintf(line, sizeof line,
                "reconnect crash loop: seed %llu, %d kills in %.1f s: %zu "
                "published, %zu confirmed, %zu failed, %zu re-sent and found "
                "stored, %zu in the log; lost %zu, stored twice %zu",
                (unsigned long long)seed, iterations, seconds, published,
                confirmed, failed, duplicate_results, log_messages, lost,
                stored_twice);
  return line;
}

ReconnectLoopReport run_reconnect_crash_loop(const CrashLoopOptions& options) {
  auto start = Clock::now();
  ReconnectLoopReport report;
  report.seed = crash_loop_seed(options);
  std::mt19937_64 rng(report.seed);
  std::uniform_int_distribution<int64_t> kill_delay(
      options.min_kill_delay.count(), options.max_kill_delay.count());
  BrokerProcess broker;
  std::atomic<bool> stop{false};
  std::vector<Producer> producers(kProducers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kProducers; ++i) {
    threads.emplace_back([&, i, seed = rng()] {
      produce(broker.address(), i, seed, stop, producers[i]);
    });
  }
  for (int run = 0; run < options.iterations; ++run) {
    if (Clock::now() - start >= options.time_budget) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_delay(rng)));
    broker.kill9();
    broker.restart_on_same_port();
    report.iterations = run + 1;
    if (options.verbose) {
      size_t confirmed = 0;
      for (auto& p : producers) {
        std::lock_guard<std::mutex> lock(p.mu);
        confirmed += p.confirmed.size();
      }
      std::printf("kill %3d: %zu confirmed so far\n", run + 1, confirmed);
      std::fflush(stdout);
    }
  }
  // A last stretch without kills, so that the producers end confirmed.
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& t : threads) t.join();

  std::map<std::string, uint64_t> confirmed;
  for (int i = 0; i < kProducers; ++i) {
    Producer& p = producers[i];
    report.published += p.published;
    report.failed += p.failed;
    report.duplicate_results += p.duplicates;
    confirmed.insert(p.confirmed.begin(), p.confirmed.end());
    if (!p.first_error.empty()) {
      report.violations.push_back("producer " + std::to_string(i) +
                                  " threw: " + p.first_error);
    }
  }
  report.confirmed = confirmed.size();
  if (report.failed > 0) {
    report.violations.push_back(std::to_string(report.failed) +
                                " messages confirmed with an error");
  }
  if (report.confirmed != report.published) {
    report.violations.push_back(
        std::to_string(report.published) + " published but " +
        std::to_string(report.confirmed) + " confirmed");
  }

  // The whole log, however long the run made it (a thousand kills leave
  // tens of millions): read until nothing more comes for a few seconds,
  // keeping only what the checks below need.
  std::map<std::string, std::vector<uint64_t>> stored;
  {
    auto reader = Client::connect(broker.address());
    auto sub = reader->subscribe(durable(kTopic, "log-reader"));
    while (auto m = sub.next(5s)) {
      sub.ack(*m);
      ++report.log_messages;
      stored[m->payload].push_back(m->offset);
    }
  }
  for (const auto& [payload, offsets] : stored) {
    if (offsets.size() > 1) {
      ++report.stored_twice;
      if (report.violations.size() < 20) {
        report.violations.push_back("'" + payload + "' stored " +
                                    std::to_string(offsets.size()) + " times");
      }
    }
  }
  for (const auto& [payload, offset] : confirmed) {
    auto it = stored.find(payload);
    if (it == stored.end() || it->second.front() != offset) {
      ++report.lost;
      if (report.violations.size() < 20) {
        report.violations.push_back("'" + payload + "' confirmed at " +
                                    std::to_string(offset) +
                                    " but not there in the log");
      }
    }
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace tern::test
