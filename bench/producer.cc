#include "producer.h"

#include <algorithm>
#include <chrono>

#include "payload.h"

namespace tern::bench {
namespace {

constexpr int64_t kSecond = 1000000000;

const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kStorageFailure:
      return "StorageFailure";
    case ErrorCode::kInvalidTopic:
      return "InvalidTopic";
    case ErrorCode::kConnectionLost:
      return "ConnectionLost";
    case ErrorCode::kShuttingDown:
      return "ShuttingDown";
    case ErrorCode::kLimitExceeded:
      return "LimitExceeded";
    default:
      return "error";
  }
}

}  // namespace

Producer::Producer(uint32_t id, const Options& options, RunControl& control,
                   std::string topic, uint64_t quota,
                   std::unique_ptr<Client> client)
    : id_(id),
      options_(options),
      control_(control),
      topic_(std::move(topic)),
      quota_(quota),
      client_(std::move(client)),
      filler_(options.size, 'x') {}

Producer::~Producer() { join(); }

void Producer::start(int64_t start_ns, int64_t stop_at_ns) {
  thread_ =
      std::thread([this, start_ns, stop_at_ns] { run(start_ns, stop_at_ns); });
}

void Producer::join() {
  if (thread_.joinable()) thread_.join();
}

void Producer::sleep_until(int64_t when_ns) const {
  // In slices, so that a stop is noticed within 50 ms.
  for (;;) {
    int64_t left = when_ns - now_ns();
    if (left <= 0 || control_.stop_producers()) return;
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(std::min<int64_t>(left, kSecond / 20)));
  }
}

void Producer::run(int64_t start_ns, int64_t stop_at_ns) {
  // Each producer paces itself to its share of the total rate.
  const double rate = options_.rate / options_.producers;
  int64_t next_send_ns = start_ns;
  try {
    sleep_until(start_ns);
    while (next_sequence_ < quota_ && !control_.stop_producers()) {
      if (stop_at_ns != 0 && now_ns() >= stop_at_ns) break;
      size_t n =
          size_t(std::min<uint64_t>(options_.batch, quota_ - next_sequence_));
      if (rate > 0) {
        sleep_until(next_send_ns);
        next_send_ns += int64_t(double(n) * kSecond / rate);
        // After a hiccup (a full window, a slow broker) carry on at the rate
        // rather than bursting to catch up.
        int64_t now = now_ns();
        if (now - next_send_ns > kSecond / 10) next_send_ns = now;
      }
      publish_batch(n);
    }
    if (options_.confirm && !control_.failed()) client_->flush();
  } catch (const Error& e) {
    control_.fail("producer " + std::to_string(id_) + ": " + e.what());
  }
  finished_.store(true);
}

void Producer::publish_batch(size_t n) {
  std::vector<OutgoingMessage> batch(n);
  for (OutgoingMessage& m : batch) m.payload = filler_;
  // The send time is taken as late as possible, so the latency measured
  // covers the wait for window room in publish_async, as a user would see it.
  PayloadHeader header;
  header.send_ns = now_ns();
  header.producer = id_;
  for (size_t i = 0; i < n; ++i) {
    header.sequence = next_sequence_ + i;
    write_header(header, &batch[i].payload);
  }
  if (header.send_ns >= control_.measure_from_ns &&
      first_measured_send_ns_ == 0) {
    first_measured_send_ns_ = header.send_ns;
  }
  int64_t sent_ns = header.send_ns;
  if (options_.confirm) {
    client_->publish_async(
        topic_, batch,
        [this, sent_ns](const std::vector<PublishResult>& results) {
          on_confirm(results, sent_ns);
        });
  } else {
    client_->publish_unconfirmed(topic_, batch);
    // Without confirms, "confirmed" means handed to the socket.
    confirmed_.fetch_add(n, std::memory_order_relaxed);
    if (sent_ns >= control_.measure_from_ns) measured_confirmed_ += n;
    last_confirm_ns_ = now_ns();
  }
  next_sequence_ += n;
  sent_.fetch_add(n, std::memory_order_relaxed);
}

void Producer::on_confirm(const std::vector<PublishResult>& results,
                          int64_t sent_ns) {
  int64_t now = now_ns();
  uint64_t ok = 0;
  for (const PublishResult& r : results) {
    if (r.error == ErrorCode::kNone) {
      ++ok;
    } else if (failed_.fetch_add(1, std::memory_order_relaxed) == 0 &&
               r.error != ErrorCode::kConnectionLost) {
      // A lost connection is reported by the producer thread, whose next
      // call throws it with the reason; anything else only shows up here.
      control_.fail("producer " + std::to_string(id_) + ": publish to " +
                    topic_ + " failed: " + error_name(r.error) + " (code " +
                    std::to_string(int(r.error)) + ")");
    }
  }
  if (ok == 0) return;
  confirmed_.fetch_add(ok, std::memory_order_relaxed);
  if (sent_ns >= control_.measure_from_ns) {
    // One frame, one confirm: every message in it waited as long.
    confirm_latency_.record(uint64_t(now - sent_ns), ok);
    measured_confirmed_ += ok;
  }
  last_confirm_ns_ = now;
}

}  // namespace tern::bench
