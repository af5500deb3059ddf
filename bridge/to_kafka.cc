#include "to_kafka.h"

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "kafka.h"
#include "log.h"
#include "progress.h"

namespace tern::bridge {

namespace {

constexpr std::chrono::milliseconds kDefaultMessageTimeout{300000};
constexpr std::chrono::seconds kLagInterval{1};  // how often lag is asked

// librdkafka's message.timeout.ms as configured: how long a record may wait
// for Kafka before it fails.
std::chrono::milliseconds message_timeout(const Config& config) {
  std::chrono::milliseconds timeout = kDefaultMessageTimeout;
  for (const auto& [name, value] : config.kafka)
    if (name == "message.timeout.ms" || name == "delivery.timeout.ms")
      timeout = std::chrono::milliseconds(std::stoll(value));
  return timeout;
}

class ToKafka {
 public:
  ToKafka(const Config& config, const ToKafkaRoute& route,
          RouteMetrics& metrics)
      : config_(config),
        route_(route),
        name_(route_name(route)),
        metrics_(metrics) {}

  ~ToKafka() {
    stop_poller();
    // A route that failed: the records still queued end unacked (Tern
    // delivers them again), and their InFlight is freed by on_delivery.
    if (producer_) {
      rd_kafka_purge(producer_.get(),
                     RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(producer_.get(), 0);
    }
  }

  void run(const std::atomic<bool>& stop) {
    connect();
    poller_ = std::thread([this] {
      while (!poller_stop_) rd_kafka_poll(producer_.get(), 100);
    });
    mirror(stop);
    stop_poller();
    drain();
  }

 private:
  // What a record in flight needs for its ack (its payload went to Kafka).
  struct InFlight {
    Message message;
  };

  void connect() {
    producer_ = new_kafka(
        RD_KAFKA_PRODUCER, config_,
        {{"enable.idempotence", "true"},
         {"acks", "all"},
         {"enable.gapless.guarantee", "true"}},
        [](rd_kafka_conf_t* conf, void* self) {
          rd_kafka_conf_set_dr_msg_cb(conf, &ToKafka::on_delivery);
          rd_kafka_conf_set_opaque(conf, self);
        },
        this);
    check_topic(producer_.get(), config_, route_.kafka);
    client_ = Client::connect(config_.tern_address, config_.tern);
    SubscribeOptions options;
    options.topic = route_.tern;
    options.subscription = route_.subscription;
    options.start = StartPosition::kEarliest;
    options.prefetch = route_.prefetch;
    // Never redelivered while the record is still in flight (that would
    // write it twice, out of order): a record fails within librdkafka's
    // message timeout, which stops the route.
    options.ack_timeout = message_timeout(config_) + std::chrono::seconds(30);
    options.max_deliveries = 0;  // a bridge never dead-letters
    subscription_.emplace(client_->subscribe(options));
    log_line(name_ + ": started (subscription " + route_.subscription + ")");
  }

  void mirror(const std::atomic<bool>& stop) {
    Progress progress(config_.progress_interval);
    auto next_lag = std::chrono::steady_clock::now();
    while (!stop) {
      check_failure();
      if (std::optional<Message> message =
              subscription_->next(std::chrono::milliseconds(100))) {
        produce(std::move(*message), stop);
      }
      if (std::chrono::steady_clock::now() >= next_lag) {
        metrics_.lag = tern_lag();
        next_lag = std::chrono::steady_clock::now() + kLagInterval;
      }
      if (progress.due()) {
        log_line(name_ + ": " + progress.report(metrics_.records) +
                 ", tern lag " + std::to_string(metrics_.lag));
      }
    }
  }

  void produce(Message message, const std::atomic<bool>& stop) {
    // What goes to Kafka leaves the message; InFlight keeps what ack needs.
    std::vector<Header> tern_headers = std::move(message.headers);
    std::string payload = std::move(message.payload);
    std::string key = std::move(message.key);
    rd_kafka_headers_t* headers = rd_kafka_headers_new(tern_headers.size() + 2);
    for (const Header& h : tern_headers)
      rd_kafka_header_add(headers, h.name.data(), ssize_t(h.name.size()),
                          h.value.data(), ssize_t(h.value.size()));
    std::string offset = std::to_string(message.offset);
    rd_kafka_header_add(headers, "tern-topic", -1, message.topic.data(),
                        ssize_t(message.topic.size()));
    rd_kafka_header_add(headers, "tern-offset", -1, offset.data(),
                        ssize_t(offset.size()));
    auto in_flight = std::make_unique<InFlight>(InFlight{std::move(message)});
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_.get(), RD_KAFKA_V_TOPIC(route_.kafka.c_str()),
          RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
          RD_KAFKA_V_VALUE(payload.data(), payload.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
          RD_KAFKA_V_OPAQUE(in_flight.get()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        in_flight.release();  // on_delivery takes it back
        return;
      }
      // librdkafka's queue is full: Kafka is slower than Tern. Waiting here
      // stops taking Tern messages, and Tern stops at the prefetch.
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !stop) {
        check_failure();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      rd_kafka_headers_destroy(headers);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return;  // redelivered later
      throw std::runtime_error("cannot produce tern offset " +
                               std::to_string(in_flight->message.offset) +
                               ": " + rd_kafka_err2str(err));
    }
  }

  // On the poller's thread (or drain()'s), once Kafka acknowledged a record
  // or gave up on it.
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* record,
                          void* opaque) {
    auto* self = static_cast<ToKafka*>(opaque);
    std::unique_ptr<InFlight> in_flight(
        static_cast<InFlight*>(record->_private));
    if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not acked: Tern delivers it again after the restart.
      std::lock_guard<std::mutex> lock(self->mu_);
      if (self->failure_.empty()) {
        self->failure_ = "Kafka did not take " + in_flight->message.topic +
                         " offset " +
                         std::to_string(in_flight->message.offset) + ": " +
                         rd_kafka_err2str(record->err);
      }
      return;
    }
    try {
      self->subscription_->ack(in_flight->message);
      ++self->metrics_.records;
    } catch (const Error&) {
      // The client is closed (a route that failed or stopped): Tern delivers
      // the message again, and the record is written again (a repeat).
    }
  }

  void check_failure() {
    char reason[512];
    if (rd_kafka_fatal_error(producer_.get(), reason, sizeof reason))
      throw std::runtime_error(std::string("Kafka producer failed: ") + reason);
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.empty()) throw std::runtime_error(failure_);
  }

  void stop_poller() {
    poller_stop_ = true;
    if (poller_.joinable()) poller_.join();
  }

  // Stopping: what is in flight gets its chance to be acknowledged, and
  // acked; what is not stays Tern's, delivered again next time.
  void drain() {
    rd_kafka_resp_err_t err = rd_kafka_flush(producer_.get(), 10000);
    subscription_->unsubscribe();  // sends the acks held so far first
    client_->close();
    log_line(name_ + ": stopped after " + std::to_string(metrics_.records) +
             " records" +
             (err == RD_KAFKA_RESP_ERR_NO_ERROR
                  ? ""
                  : std::string(", ") +
                        std::to_string(rd_kafka_outq_len(producer_.get())) +
                        " still in flight (Tern delivers them again)"));
  }

  // Messages of the route's subscription not acked yet.
  uint64_t tern_lag() {
    uint64_t lag = 0;
    try {
      for (const TopicInfo& topic : client_->topics(route_.tern))
        for (const SubscriptionInfo& s : topic.subscriptions)
          if (s.name == route_.subscription) lag += s.lag;
    } catch (const Error&) {
      // Reconnecting: the next report will have it.
    }
    return lag;
  }

  const Config& config_;
  const ToKafkaRoute& route_;
  const std::string name_;
  RouteMetrics& metrics_;
  KafkaHandle producer_;
  std::unique_ptr<Client> client_;
  std::optional<Subscription> subscription_;
  std::thread poller_;  // polls the producer: on_delivery runs there
  std::atomic<bool> poller_stop_{false};
  std::mutex mu_;
  std::string failure_;  // the first record Kafka refused
};

}  // namespace

void run_to_kafka(const Config& config, const ToKafkaRoute& route,
                  RouteMetrics& metrics, const std::atomic<bool>& stop) {
  ToKafka(config, route, metrics).run(stop);
}

}  // namespace tern::bridge
