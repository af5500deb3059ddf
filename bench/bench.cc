#include "bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <thread>

#include "payload.h"

namespace tern::bench {
namespace {

constexpr int64_t kSecond = 1000000000;
constexpr auto kWatchTick = std::chrono::milliseconds(50);
constexpr uint32_t kMaxPrefetch = 1000000;
// With --no-ack nothing is ever settled; no redelivery should muddy the run.
constexpr std::chrono::milliseconds kNoAckTimeout{24 * 3600 * 1000};
// Producer sequence numbers at or above this are taken for corruption.
constexpr uint64_t kMaxSequence = uint64_t(1) << 40;

int64_t seconds_to_ns(double s) { return int64_t(s * double(kSecond)); }

}  // namespace

Bench::Bench(const Options& options) : options_(options) {
  run_id_ =
      std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  std::string base =
      options_.fixed_topic ? options_.topic : options_.topic + "-" + run_id_;
  for (int t = 0; t < options_.topics; ++t) {
    topics_.push_back(options_.topics == 1 ? base
                                           : base + "-" + std::to_string(t));
  }
  prefetch_ = options_.prefetch;
  if (!options_.ack) {
    // Unacked messages hold their place in the prefetch window for good, so
    // the window must fit the whole run, or delivery stops at prefetch.
    uint64_t per_subscription = options_.count;  // an upper bound
    prefetch_ = uint32_t(std::max<uint64_t>(
        prefetch_, std::min<uint64_t>(per_subscription, kMaxPrefetch)));
    ack_timeout_ = kNoAckTimeout;
    if (per_subscription > kMaxPrefetch && !options_.publish_only()) {
      std::fprintf(stderr,
                   "tern-bench: warning: --no-ack with more than %u messages "
                   "per subscription stalls once %u are unacked\n",
                   kMaxPrefetch, kMaxPrefetch);
    }
  }
}

Bench::~Bench() {
  // If run() threw half-way, threads may still be running: stop them before
  // the members they use go. After a complete run() this changes nothing.
  control_.fail("aborted");
  for (auto& p : producers_) p->close();
  for (auto& c : consumers_) c->close();
}

void Bench::set_up() {
  const uint32_t subscriptions = options_.subscriptions_total();
  // The largest producer quota; count may be "unlimited" (2^64-1).
  const uint64_t quota_max =
      std::min(options_.count / uint64_t(options_.producers), kMaxSequence) + 1;
  for (uint32_t s = 0; s < subscriptions; ++s) {
    int topic = int(s % uint32_t(options_.topics));
    checks_.push_back(std::make_unique<DeliveryCheck>(
        "bench-" + run_id_ + "-" + std::to_string(s), topic, options_.topics,
        options_.producers, quota_max));
  }

  // Subscriptions first, so that they see every message.
  for (int c = 0; c < options_.consumers; ++c) {
    DeliveryCheck& check = *checks_[size_t(c) % subscriptions];
    std::unique_ptr<Client> client = Client::connect(
        options_.server,
        client_options("tern-bench-consumer-" + std::to_string(c)));
    SubscribeOptions sub;
    sub.topic = topics_[size_t(c) % subscriptions % size_t(options_.topics)];
    sub.subscription = check.name();
    sub.start = StartPosition::kLatest;
    sub.prefetch = prefetch_;
    sub.ack_timeout = ack_timeout_;
    Subscription subscription = client->subscribe(sub);
    consumers_.push_back(
        std::make_unique<Consumer>(uint32_t(c), options_, control_, check,
                                   std::move(client), std::move(subscription)));
  }

  for (int p = 0; p < options_.producers; ++p) {
    ClientOptions producer =
        client_options("tern-bench-producer-" + std::to_string(p));
    producer.max_unconfirmed = options_.window;
    uint64_t quota =
        options_.count / uint64_t(options_.producers) +
        (uint64_t(p) < options_.count % uint64_t(options_.producers) ? 1 : 0);
    producers_.push_back(std::make_unique<Producer>(
        uint32_t(p), options_, control_,
        topics_[size_t(p) % size_t(options_.topics)], quota,
        Client::connect(options_.server, producer)));
  }
}

ClientOptions Bench::client_options(const std::string& name) const {
  ClientOptions options;
  options.client_name = name;
  options.user = options_.login.user;
  options.password = options_.login.password;
  options.token = options_.login.token;
  options.tls = options_.tls;
  options.tls_ca_file = options_.tls_ca;
  options.tls_cert_file = options_.tls_cert;
  options.tls_key_file = options_.tls_key;
  options.tls_server_name = options_.tls_server_name;
  return options;
}

Results Bench::run() {
  set_up();
  // Set before any thread starts, so they all read it without a lock.
  int64_t start_ns = now_ns();
  control_.measure_from_ns = start_ns + seconds_to_ns(options_.warmup_s);
  if (!options_.replay) start_consumers(start_ns);
  int64_t stop_at_ns =
      options_.duration_s > 0
          ? control_.measure_from_ns + seconds_to_ns(options_.duration_s)
          : 0;
  for (auto& p : producers_) p->start(start_ns, stop_at_ns);
  watch(start_ns);
  tear_down();
  return collect(start_ns);
}

void Bench::start_consumers(int64_t now) {
  consumers_started_ns_ = now;
  for (auto& c : consumers_) c->start();
}

bool Bench::all_delivered() const {
  std::vector<uint64_t> published;
  for (const auto& p : producers_) published.push_back(p->confirmed());
  for (const auto& check : checks_) {
    if (check->unique() < check->expected(published)) return false;
  }
  return true;
}

void Bench::watch(int64_t start_ns) {
  const int64_t stall_ns = seconds_to_ns(options_.stall_timeout_s);
  const int64_t drain_ns = seconds_to_ns(options_.drain_timeout_s);
  int64_t last_print_ns = start_ns;
  int64_t last_change_ns = start_ns;
  uint64_t last_activity = 0;
  int64_t producers_done_ns = 0;
  for (;;) {
    std::this_thread::sleep_for(kWatchTick);
    if (control_.failed()) return;
    int64_t now = now_ns();

    uint64_t sent = 0, confirmed = 0, delivered = 0;
    for (const auto& p : producers_) {
      sent += p->sent();
      confirmed += p->confirmed();
    }
    for (const auto& c : consumers_) delivered += c->delivered();
    uint64_t activity = sent + confirmed + delivered;
    if (activity != last_activity) {
      last_activity = activity;
      last_change_ns = now;
    } else if (now - last_change_ns > stall_ns) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%g", options_.stall_timeout_s);
      control_.fail(std::string("stalled: nothing sent, confirmed or "
                                "delivered for ") +
                    seconds + " s (sent " + std::to_string(sent) +
                    ", confirmed " + std::to_string(confirmed) +
                    ", delivered " + std::to_string(delivered) + ")");
      return;
    }

    if (options_.progress && now - last_print_ns >= kSecond) {
      print_progress(double(now - start_ns) / kSecond,
                     double(now - last_print_ns) / kSecond);
      last_print_ns = now;
    }

    if (producers_done_ns == 0) {
      bool done = std::all_of(producers_.begin(), producers_.end(),
                              [](const auto& p) { return p->finished(); });
      if (!done) continue;
      producers_done_ns = now;
      if (options_.replay) start_consumers(now);
    }
    if (all_delivered()) return;
    if (now - producers_done_ns > drain_ns) {
      drained_ = false;
      return;
    }
  }
}

void Bench::print_progress(double elapsed_s, double interval_s) {
  uint64_t sent = 0, published = 0, failed = 0, delivered = 0, acked = 0;
  for (const auto& p : producers_) {
    sent += p->sent();
    published += p->confirmed();
    failed += p->failed_messages();
  }
  for (const auto& c : consumers_) {
    delivered += c->delivered();
    acked += c->acked();
  }
  if (options_.publish_only()) {
    std::fprintf(stderr,
                 "[%6.1fs] published %9.0f/s  unconfirmed %6" PRIu64 "\n",
                 elapsed_s, double(published - last_published_) / interval_s,
                 sent - published - failed);
  } else {
    std::fprintf(stderr,
                 "[%6.1fs] published %9.0f/s  delivered %9.0f/s  "
                 "unconfirmed %6" PRIu64 "  unacked %7" PRIu64 "\n",
                 elapsed_s, double(published - last_published_) / interval_s,
                 double(delivered - last_delivered_) / interval_s,
                 sent - published - failed,
                 options_.ack ? delivered - acked : delivered);
  }
  last_published_ = published;
  last_delivered_ = delivered;
}

void Bench::tear_down() {
  control_.set_stop_producers();
  if (control_.failed()) {
    // Threads may be blocked on a broker that no longer answers: closing the
    // connections wakes them with an error.
    for (auto& p : producers_) p->close();
    for (auto& c : consumers_) c->close();
  }
  for (auto& p : producers_) p->join();
  control_.set_stop_consumers();
  for (auto& c : consumers_) c->join();
  // Joins the client reader threads: the confirm callbacks are all done.
  for (auto& p : producers_) p->close();
  for (auto& c : consumers_) c->close();
}

Results Bench::collect(int64_t start_ns) const {
  Results r;
  r.run_id = run_id_;
  r.topics = topics_;
  r.prefetch = prefetch_;
  r.elapsed_seconds = double(now_ns() - start_ns) / kSecond;

  std::vector<uint64_t> published;
  int64_t first_send_ns = 0, last_confirm_ns = 0, last_delivery_ns = 0;
  for (const auto& p : producers_) {
    published.push_back(p->confirmed());
    r.sent += p->sent();
    r.published += p->confirmed();
    r.publish_errors += p->failed_messages();
    r.measured_published += p->measured_confirmed();
    r.confirm.merge(p->confirm_latency());
    if (p->first_measured_send_ns() != 0 &&
        (first_send_ns == 0 || p->first_measured_send_ns() < first_send_ns)) {
      first_send_ns = p->first_measured_send_ns();
    }
    last_confirm_ns = std::max(last_confirm_ns, p->last_confirm_ns());
  }
  for (const auto& c : consumers_) {
    r.deliveries += c->delivered();
    r.measured_deliveries += c->measured_deliveries();
    // A replayed message waited for the whole publish phase: no latency.
    if (!options_.replay) r.e2e.merge(c->e2e_latency());
    last_delivery_ns = std::max(last_delivery_ns, c->last_delivery_ns());
  }
  for (const auto& check : checks_) {
    r.expected += check->expected(published);
    r.delivered += check->unique();
    r.duplicates += check->duplicates();
    r.redelivered += check->redelivered();
    std::vector<std::string> examples;
    size_t room = r.lost_examples.size() < 10 ? 10 - r.lost_examples.size() : 0;
    r.lost += check->lost(published, room, &examples);
    for (const std::string& e : examples)
      r.lost_examples.push_back(check->name() + " " + e);
  }

  const double mb = double(options_.size) / 1e6;
  if (first_send_ns != 0 && last_confirm_ns > first_send_ns) {
    r.publish_seconds = double(last_confirm_ns - first_send_ns) / kSecond;
    r.publish_msgs_per_s = double(r.measured_published) / r.publish_seconds;
    r.publish_mb_per_s = r.publish_msgs_per_s * mb;
  }
  // A replay's deliveries start when its consumers do.
  int64_t deliver_from_ns =
      options_.replay ? consumers_started_ns_ : first_send_ns;
  if (deliver_from_ns != 0 && last_delivery_ns > deliver_from_ns) {
    r.deliver_seconds = double(last_delivery_ns - deliver_from_ns) / kSecond;
    r.deliver_msgs_per_s = double(r.measured_deliveries) / r.deliver_seconds;
    r.deliver_mb_per_s = r.deliver_msgs_per_s * mb;
  }
  r.drained = drained_;
  r.error = control_.error();
  if (r.error.empty() && !drained_) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", options_.drain_timeout_s);
    r.error = std::string("not every message arrived within ") + seconds +
              " s of the last confirm";
  }
  return r;
}

}  // namespace tern::bench
