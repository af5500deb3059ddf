// The crash loop (see crash_loop.h for what it checks and why).
//
// Threads: each iteration runs four threads (two producers, two consumers),
// each with its own Client. What a thread records lives in a struct it
// co-owns through a shared_ptr, and the main thread reads it only after the
// thread has finished, so nothing is shared while it changes except a few
// atomics. A thread that does not finish within a bound after the kill is
// reported and detached; it can then only touch what it co-owns.
//
// The main thread keeps the ledger: everything confirmed, sent and delivered
// over all iterations, against which each iteration's records are checked.
#include "crash_loop.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kTopic[] = "crash-loop";
constexpr const char* kSubscriptions[] = {"loop-a", "loop-b"};
constexpr int kProducers = 2;
constexpr int kConsumers = 2;  // one on each subscription
constexpr size_t kMaxViolations = 40;
// Bounds for one iteration's threads; the kill comes long before these.
constexpr auto kThreadRunLimit = 30s;
constexpr auto kThreadExitLimit = 10s;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What the threads of one iteration share.
struct Run {
  std::string address;
  // Set just before the kill: errors after it are the expected way out.
  std::atomic<bool> killed{false};
  // The latest now_ns() taken before sending a publish that was then
  // confirmed. A consumer's ack barrier is passed once this is later than
  // its Pong (see crash_loop.h).
  std::atomic<int64_t> confirmed_send_ns{0};

  void note_confirmed_send(int64_t sent_ns) {
    int64_t seen = confirmed_send_ns.load();
    while (seen < sent_ns &&
           !confirmed_send_ns.compare_exchange_weak(seen, sent_ns)) {
    }
  }
};

struct ProducerRun {
  std::shared_ptr<Run> run;
  std::string prefix;  // payloads are prefix + sequence number: all unique
  uint64_t seed = 0;

  std::mutex mu;
  // In callback order, which is confirm order on one connection.
  std::vector<std::pair<uint64_t, std::string>> confirmed;  // guarded by mu
  size_t bad_callbacks = 0;                                 // guarded by mu

  // Confirmed retries that the broker recognised as already stored.
  std::vector<std::pair<uint64_t, std::string>> duplicates;  // guarded by mu

  std::vector<std::string> retry;  // published first, with their old ids
  std::vector<std::string> sent;  // producer thread only until done
  std::string error;              // an error that was not the kill
  std::atomic<bool> done{false};
};

struct Received {
  uint64_t offset;
  uint32_t attempt;
  std::string payload;
};

struct ConsumerRun {
  std::shared_ptr<Run> run;
  std::string subscription;

  // Consumer thread only until done.
  std::vector<Received> received;
  std::vector<uint64_t> acked;  // in the order the acks were sent
  size_t committed_acks = 0;    // this many of `acked` are known committed
  std::string error;
  std::atomic<bool> done{false};
};

void produce(const std::shared_ptr<ProducerRun>& p) {
  try {
    ClientOptions options;
    options.client_name = "crash-loop-producer";
    options.max_unconfirmed = 256;
    options.timeout = 5s;
    // This loop's producers end at the kill and retry by hand (the ids
    // below); run_reconnect_crash_loop() leaves it to the client.
    options.reconnect = false;
    auto client = Client::connect(p->run->address, options);
    std::mt19937_64 rng(p->seed);
    auto deadline = Clock::now() + kThreadRunLimit;
    size_t seq = 0;
    size_t retried = 0;
    while (Clock::now() < deadline) {
      size_t count = 1 + rng() % 16;
      std::vector<OutgoingMessage> messages(count);
      std::vector<std::string> payloads;
      payloads.reserve(count);
      for (auto& m : messages) {
        // What the previous run left unconfirmed goes first, as it was.
        m.payload = retried < p->retry.size()
                        ? p->retry[retried++]
                        : p->prefix + std::to_string(seq++);
        m.id = m.payload;  // unique, so it can serve as the id
        payloads.push_back(m.payload);
        p->sent.push_back(m.payload);
      }
      int64_t sent_ns = now_ns();
      ProducerRun* self = p.get();  // the client, and so every callback,
                                    // ends inside this function
      client->publish_async(
          kTopic, messages,
          [self, payloads = std::move(payloads),
           sent_ns](const std::vector<PublishResult>& results) {
            std::lock_guard<std::mutex> lock(self->mu);
            if (results.size() != payloads.size()) {
              ++self->bad_callbacks;
              return;
            }
            bool any = false;
            for (size_t i = 0; i < results.size(); ++i) {
              if (results[i].error != ErrorCode::kNone) continue;
              (results[i].duplicate ? self->duplicates : self->confirmed)
                  .emplace_back(results[i].offset, payloads[i]);
              any = true;
            }
            if (any) self->run->note_confirmed_send(sent_ns);
          });
    }
    p->error = "still publishing " + std::to_string(kThreadRunLimit.count()) +
               " s after start";
  } catch (const Error& e) {
    if (!p->run->killed) p->error = e.what();
  } catch (const std::exception& e) {
    p->error = e.what();
  }
  p->done = true;
}

// What `p` sent and never saw confirmed, in the order sent.
std::vector<std::string> unconfirmed(ProducerRun& p) {
  std::lock_guard<std::mutex> lock(p.mu);
  std::unordered_set<std::string> done;
  for (const auto& [offset, payload] : p.confirmed) done.insert(payload);
  for (const auto& [offset, payload] : p.duplicates) done.insert(payload);
  std::vector<std::string> left;
  for (const auto& payload : p.sent)
    if (done.count(payload) == 0) left.push_back(payload);
  return left;
}

void consume(const std::shared_ptr<ConsumerRun>& c) {
  try {
    ClientOptions options;
    options.client_name = "crash-loop-consumer";
    options.timeout = 5s;
    options.reconnect = false;
    auto client = Client::connect(c->run->address, options);
    SubscribeOptions subscribe;
    subscribe.topic = kTopic;
    subscribe.subscription = c->subscription;
    subscribe.start = StartPosition::kEarliest;
    subscribe.prefetch = 256;
    auto sub = client->subscribe(subscribe);

    // (Pong time, acks sent before the Ping) of the barrier in progress.
    std::optional<std::pair<int64_t, size_t>> barrier;
    auto last_barrier = Clock::now();
    auto deadline = Clock::now() + kThreadRunLimit;
    while (Clock::now() < deadline) {
      if (auto m = sub.next(10ms)) {
        c->received.push_back({m->offset, m->attempt, m->payload});
        sub.ack(*m);
        c->acked.push_back(m->offset);
      }
      if (barrier && c->run->confirmed_send_ns.load() > barrier->first) {
        c->committed_acks = barrier->second;
        barrier.reset();
      }
      if (!barrier && c->acked.size() > c->committed_acks &&
          Clock::now() - last_barrier >= 20ms) {
        size_t acks = c->acked.size();
        client->ping();  // the broker has read every ack sent before this
        barrier.emplace(now_ns(), acks);
        last_barrier = Clock::now();
      }
    }
    c->error = "still consuming " + std::to_string(kThreadRunLimit.count()) +
               " s after start";
  } catch (const Error& e) {
    if (!c->run->killed) c->error = e.what();
  } catch (const std::exception& e) {
    c->error = e.what();
  }
  c->done = true;
}

// Per subscription, by offset.
struct SubscriptionLedger {
  enum AckState : uint8_t { kNotAcked, kAckSent, kAckCommitted };
  std::string name;
  std::vector<uint32_t> deliveries;
  std::vector<int> last_run;  // the run of the latest delivery, -1 if none
  std::vector<uint8_t> ack;   // AckState

  void grow(uint64_t offset) {
    if (offset < deliveries.size()) return;
    size_t size = std::max<size_t>(offset + 1, deliveries.size() * 2);
    deliveries.resize(size, 0);
    last_run.resize(size, -1);
    ack.resize(size, kNotAcked);
  }
};

class Ledger {
 public:
  explicit Ledger(CrashLoopReport& report) : report_(report) {
    for (int i = 0; i < kConsumers; ++i) subs_[i].name = kSubscriptions[i];
  }

  void violation(const std::string& what) {
    if (report_.violations.size() < kMaxViolations) {
      report_.violations.push_back(what);
    } else if (report_.violations.size() == kMaxViolations) {
      report_.violations.push_back("... (further violations not listed)");
    }
  }

  void add_producer(int run, ProducerRun& p) {
    // The producer's client, and so every callback, has finished; the lock
    // only keeps the access pattern uniform.
    std::lock_guard<std::mutex> lock(p.mu);
    if (!p.error.empty())
      violation("run " + std::to_string(run) + ", producer " + p.prefix +
                ": unexpected error before the kill: " + p.error);
    if (p.bad_callbacks > 0)
      violation("run " + std::to_string(run) + ", producer " + p.prefix + ": " +
                std::to_string(p.bad_callbacks) +
                " confirm callbacks with the wrong number of results");
    sent_.insert(p.sent.begin(), p.sent.end());
    std::optional<uint64_t> previous;
    for (const auto& [offset, payload] : p.confirmed) {
      if (previous && offset <= *previous)
        violation("run " + std::to_string(run) + ": confirm for offset " +
                  std::to_string(offset) + " after one for " +
                  std::to_string(*previous) + " on the same connection");
      previous = offset;
      if (offset < confirmed_end_before_run_)
        violation("run " + std::to_string(run) + ": offset " +
                  std::to_string(offset) +
                  " confirmed after a restart, below offsets confirmed before "
                  "it (next offset was " +
                  std::to_string(confirmed_end_before_run_) + ")");
      if (!confirmed_.emplace(offset, payload).second)
        violation("offset " + std::to_string(offset) + " confirmed twice");
      auto delivered = delivered_.find(offset);
      if (delivered != delivered_.end() && delivered->second != payload)
        violation("offset " + std::to_string(offset) + " was delivered as '" +
                  delivered->second + "' but confirmed as '" + payload + "'");
      confirmed_end_ = std::max(confirmed_end_, offset + 1);
    }
    // A retry the broker knew: stored before the kill, never confirmed, so
    // its offset lies anywhere below; it must not be confirmed otherwise.
    report_.retried += p.retry.size();
    report_.retried_stored += p.duplicates.size();
    for (const auto& [offset, payload] : p.duplicates) {
      if (!confirmed_.emplace(offset, payload).second)
        violation("run " + std::to_string(run) + ": retry of '" + payload +
                  "' confirmed as a duplicate of offset " +
                  std::to_string(offset) + ", which holds '" +
                  confirmed_[offset] + "'");
    }
  }

  // After all producers of `run` were added.
  void add_consumer(int run, int sub_index, ConsumerRun& c) {
    SubscriptionLedger& sub = subs_[sub_index];
    std::string where =
        "run " + std::to_string(run) + ", subscription " + sub.name + ": ";
    if (!c.error.empty())
      violation(where + "unexpected error before the kill: " + c.error);
    std::optional<uint64_t> last_first_delivery;
    for (const Received& r : c.received) {
      ++report_.delivered;
      std::string at = where + "offset " + std::to_string(r.offset) + " ";
      auto confirmed = confirmed_.find(r.offset);
      if (confirmed != confirmed_.end() && confirmed->second != r.payload)
        violation(at + "delivered as '" + r.payload + "', confirmed as '" +
                  confirmed->second + "'");
      if (sent_.count(r.payload) == 0)
        violation(at + "delivered as '" + r.payload + "', which nobody sent");
      auto [seen, fresh] = delivered_.emplace(r.offset, r.payload);
      if (!fresh && seen->second != r.payload)
        violation(at + "delivered as '" + r.payload + "' and earlier as '" +
                  seen->second + "'");

      sub.grow(r.offset);
      if (sub.ack[r.offset] == SubscriptionLedger::kAckCommitted)
        violation(at + "redelivered after its ack was committed");
      if (sub.deliveries[r.offset] > 0) {
        if (sub.last_run[r.offset] == run) {
          violation(at + "delivered twice without a crash in between");
        } else {
          ++report_.duplicates;
          if (sub.ack[r.offset] == SubscriptionLedger::kAckSent)
            ++report_.duplicates_after_ack;
        }
      }
      if (r.attempt == 1) {
        if (last_first_delivery && r.offset <= *last_first_delivery)
          violation(at + "first delivered after offset " +
                    std::to_string(*last_first_delivery));
        last_first_delivery = r.offset;
      }
      ++sub.deliveries[r.offset];
      sub.last_run[r.offset] = run;
    }
    report_.acks_sent += c.acked.size();
    report_.acks_committed += c.committed_acks;
    for (size_t i = 0; i < c.acked.size(); ++i) {
      uint64_t offset = c.acked[i];
      sub.grow(offset);
      auto state = i < c.committed_acks ? SubscriptionLedger::kAckCommitted
                                        : SubscriptionLedger::kAckSent;
      sub.ack[offset] = std::max<uint8_t>(sub.ack[offset], state);
    }
  }

  void end_run() { confirmed_end_before_run_ = confirmed_end_; }

  // Confirmed offsets `sub_index` has not received yet.
  std::unordered_set<uint64_t> undelivered(int sub_index) const {
    const SubscriptionLedger& sub = subs_[sub_index];
    std::unordered_set<uint64_t> missing;
    for (const auto& [offset, payload] : confirmed_)
      if (offset >= sub.deliveries.size() || sub.deliveries[offset] == 0)
        missing.insert(offset);
    return missing;
  }

  // The whole topic as read back at the end, in delivery order.
  void check_log(const std::vector<Received>& log) {
    report_.log_messages = log.size();
    std::unordered_map<uint64_t, const std::string*> stored;
    std::unordered_set<std::string> payloads;
    for (size_t i = 0; i < log.size(); ++i) {
      const Received& r = log[i];
      std::string at = "log offset " + std::to_string(r.offset) + ": ";
      if (i > 0 && r.offset <= log[i - 1].offset)
        violation(at + "follows offset " + std::to_string(log[i - 1].offset));
      if (!payloads.insert(r.payload).second)
        violation(at + "'" + r.payload + "' is stored twice");
      if (sent_.count(r.payload) == 0)
        violation(at + "'" + r.payload + "' was never sent");
      stored.emplace(r.offset, &r.payload);
    }
    for (const auto& [offset, payload] : confirmed_) {
      auto it = stored.find(offset);
      if (it != stored.end() && *it->second == payload) continue;
      ++report_.lost;
      violation("confirmed offset " + std::to_string(offset) + " ('" + payload +
                "') " +
                (it == stored.end() ? "is missing from the log"
                                    : "holds '" + *it->second + "'"));
    }
    for (const auto& [offset, payload] : delivered_) {
      auto it = stored.find(offset);
      if (it == stored.end() || *it->second != payload)
        violation("delivered offset " + std::to_string(offset) + " ('" +
                  payload + "') is not in the log as delivered");
    }
  }

  void check_delivered_everything() {
    for (int i = 0; i < kConsumers; ++i) {
      auto missing = undelivered(i);
      report_.undelivered += missing.size();
      if (!missing.empty())
        violation("subscription " + subs_[i].name + " never received " +
                  std::to_string(missing.size()) +
                  " confirmed messages, e.g. offset " +
                  std::to_string(*missing.begin()));
    }
  }

  size_t confirmed() const { return confirmed_.size(); }

 private:
  CrashLoopReport& report_;
  std::unordered_map<uint64_t, std::string> confirmed_;
  uint64_t confirmed_end_ = 0;             // one past the highest confirmed
  uint64_t confirmed_end_before_run_ = 0;  // the same, before this run
  std::unordered_set<std::string> sent_;
  std::unordered_map<uint64_t, std::string> delivered_;  // offset -> payload
  SubscriptionLedger subs_[kConsumers];
};

// Waits for a thread's done flag, then joins it; detaches it (it co-owns its
// state) and returns false if it does not finish in time.
template <typename State>
bool finish_thread(std::thread& thread, const State& state,
                   Clock::time_point deadline) {
  while (!state->done && Clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  if (!state->done) {
    thread.detach();
    return false;
  }
  thread.join();
  return true;
}

// Receives on `sub`, acking everything, until nothing arrives for `idle`, or
// (if `wanted` is given) as soon as every offset in it arrived; bounded by
// `total`.
std::vector<Received> drain(Subscription& sub,
                            std::optional<std::unordered_set<uint64_t>> wanted,
                            std::chrono::milliseconds idle,
                            std::chrono::seconds total) {
  std::vector<Received> got;
  auto deadline = Clock::now() + total;
  while (Clock::now() < deadline) {
    bool complete = wanted && wanted->empty();
    auto message = sub.next(complete ? 0ms : idle);
    if (!message) break;
    sub.ack(*message);
    if (wanted) wanted->erase(message->offset);
    got.push_back({message->offset, message->attempt, message->payload});
  }
  return got;
}

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text, &end, 10);
  return *end == '\0' ? value : fallback;
}

}  // namespace

std::string CrashLoopReport::summary() const {
  std::ostringstream out;
  out << "crash loop: seed " << seed << ", " << iterations << " iterations"
      << (stopped_by_time_budget ? " (stopped by the time budget)" : "")
      << ", messages confirmed " << confirmed << " (" << retried
      << " unconfirmed at a kill were published again, " << retried_stored
      << " of them found already stored), lost " << lost
      << ", undelivered " << undelivered << ", duplicates delivered "
      << duplicates << " (" << duplicates_after_ack
      << " of them acked before the crash), acks " << acks_sent << " ("
      << acks_committed << " known committed), deliveries " << delivered
      << ", log " << log_messages << " messages, violations "
      << violations.size() << ", " << static_cast<int>(seconds + 0.5) << " s";
  return out.str();
}

CrashLoopOptions crash_loop_options_from_env(CrashLoopOptions defaults) {
  defaults.iterations = static_cast<int>(env_number(
      "CRASH_ITERATIONS", static_cast<uint64_t>(defaults.iterations)));
  defaults.seed = env_number("CRASH_SEED", defaults.seed);
  defaults.time_budget = std::chrono::seconds(env_number(
      "CRASH_SECONDS", static_cast<uint64_t>(defaults.time_budget.count())));
  return defaults;
}

uint64_t crash_loop_seed(const CrashLoopOptions& options) {
  return options.seed != 0
             ? options.seed
             : (uint64_t(std::random_device()()) << 32 | std::random_device()());
}

CrashLoopReport run_crash_loop(const CrashLoopOptions& options) {
  auto start = Clock::now();
  CrashLoopReport report;
  report.seed = crash_loop_seed(options);
  std::mt19937_64 rng(report.seed);
  std::uniform_int_distribution<int64_t> kill_delay(
      options.min_kill_delay.count(), options.max_kill_delay.count());
  Ledger ledger(report);
  BrokerProcess broker;
  // The producers of the latest run, whose unconfirmed messages the next
  // run's producers publish again.
  std::vector<std::shared_ptr<ProducerRun>> producers(kProducers);

  for (int run = 0; run < options.iterations; ++run) {
    if (Clock::now() - start >= options.time_budget) {
      report.stopped_by_time_budget = true;
      break;
    }
    if (run > 0) broker.restart();
    auto shared = std::make_shared<Run>();
    shared->address = broker.address();

    std::vector<std::shared_ptr<ConsumerRun>> consumers;
    std::vector<std::thread> threads;
    for (int i = 0; i < kProducers; ++i) {
      auto p = std::make_shared<ProducerRun>();
      p->run = shared;
      p->prefix = "r" + std::to_string(run) + "p" + std::to_string(i) + "-";
      p->seed = rng();
      if (run > 0) p->retry = unconfirmed(*producers[i]);
      producers[i] = p;
      threads.emplace_back([p] { produce(p); });
    }
    for (int i = 0; i < kConsumers; ++i) {
      auto c = std::make_shared<ConsumerRun>();
      c->run = shared;
      c->subscription = kSubscriptions[i];
      consumers.push_back(c);
      threads.emplace_back([c] { consume(c); });
    }

    auto delay = std::chrono::milliseconds(kill_delay(rng));
    std::this_thread::sleep_for(delay);
    shared->killed = true;
    broker.kill9();

    auto deadline = Clock::now() + kThreadExitLimit;
    bool all_finished = true;
    for (int i = 0; i < kProducers; ++i)
      all_finished &= finish_thread(threads[i], producers[i], deadline);
    for (int i = 0; i < kConsumers; ++i)
      all_finished &=
          finish_thread(threads[kProducers + i], consumers[i], deadline);
    report.iterations = run + 1;
    if (!all_finished) {
      ledger.violation("run " + std::to_string(run) +
                       ": a client thread did not notice the dead broker "
                       "within 10 s");
      break;  // its records cannot be read safely
    }

    size_t confirmed_before = ledger.confirmed();
    size_t delivered_before = report.delivered;
    size_t duplicates_before = report.duplicates;
    for (auto& p : producers) ledger.add_producer(run, *p);
    for (int i = 0; i < kConsumers; ++i)
      ledger.add_consumer(run, i, *consumers[i]);
    ledger.end_run();
    if (options.verbose) {
      std::printf(
          "run %3d: killed after %3lld ms: %6zu confirmed, %6zu delivered, "
          "%4zu duplicates\n",
          run, static_cast<long long>(delay.count()),
          ledger.confirmed() - confirmed_before,
          report.delivered - delivered_before,
          report.duplicates - duplicates_before);
      std::fflush(stdout);
    }
  }

  // The last restart: the subscriptions catch up, then the audit.
  try {
    broker.restart();
    ClientOptions client_options;
    client_options.timeout = 10s;
    auto client = Client::connect(broker.address(), client_options);
    for (int i = 0; i < kConsumers; ++i) {
      SubscribeOptions subscribe;
      subscribe.topic = kTopic;
      subscribe.subscription = kSubscriptions[i];
      subscribe.prefetch = 1000;
      auto sub = client->subscribe(subscribe);
      ConsumerRun final_run;
      final_run.received = drain(sub, ledger.undelivered(i), 2000ms, 120s);
      ledger.add_consumer(report.iterations, i, final_run);
    }
    ledger.check_delivered_everything();

    SubscribeOptions audit;
    audit.topic = kTopic;
    audit.subscription = "audit";
    audit.start = StartPosition::kEarliest;
    audit.prefetch = 10000;
    auto sub = client->subscribe(audit);
    ledger.check_log(drain(sub, std::nullopt, 1000ms, 120s));
    sub.unsubscribe();
    client->close();
  } catch (const Error& e) {
    ledger.violation(std::string("after the last restart: ") + e.what());
  }

  int code = broker.stop();
  if (code != 0)
    ledger.violation("the broker exited with " + std::to_string(code) +
                     " on SIGTERM at the end");
  std::string log = broker.log();
  if (log.find("Sanitizer") != std::string::npos ||
      log.find("runtime error:") != std::string::npos)
    ledger.violation("sanitizer report in the broker's stderr");
  report.confirmed = ledger.confirmed();
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace tern::test
