#include "consumer.h"

#include <chrono>
#include <string>

#include "payload.h"

namespace tern::bench {
namespace {

// How long next() waits before the consumer looks whether to stop.
constexpr std::chrono::milliseconds kIdleWait{5};

}  // namespace

Consumer::Consumer(uint32_t id, const Options& options, RunControl& control,
                   DeliveryCheck& check, std::unique_ptr<Client> client,
                   Subscription subscription)
    : id_(id),
      options_(options),
      control_(control),
      check_(check),
      client_(std::move(client)),
      subscription_(std::move(subscription)) {}

Consumer::~Consumer() { join(); }

void Consumer::start() {
  thread_ = std::thread([this] { run(); });
}

void Consumer::join() {
  if (thread_.joinable()) thread_.join();
}

void Consumer::run() {
  try {
    while (!control_.stop_consumers()) {
      std::optional<Message> message = subscription_.next(kIdleWait);
      if (message) handle(*message);
    }
    // Waits for the broker's reply, so every Ack before it has arrived.
    if (!control_.failed()) subscription_.unsubscribe();
  } catch (const Error& e) {
    // Errors after a failure elsewhere are only its echo.
    if (!control_.failed()) {
      control_.fail("consumer " + std::to_string(id_) + " on " + check_.name() +
                    ": " + e.what());
    }
  }
}

void Consumer::handle(const Message& message) {
  int64_t now = now_ns();
  PayloadHeader header;
  DeliveryCheck::Outcome outcome = DeliveryCheck::Outcome::kForeign;
  if (read_header(message.payload, &header)) {
    outcome = check_.record(header.producer, header.sequence, message.attempt);
  }
  if (outcome == DeliveryCheck::Outcome::kForeign) {
    control_.fail("consumer " + std::to_string(id_) + " on " + check_.name() +
                  ": message at offset " + std::to_string(message.offset) +
                  " of " + message.topic + " is not one this run sent");
    return;
  }
  // Latency of first receipts only: a redelivery's age is the ack timeout's.
  if (header.send_ns >= control_.measure_from_ns) {
    if (outcome == DeliveryCheck::Outcome::kFirst) {
      e2e_latency_.record(uint64_t(now - header.send_ns));
    }
    ++measured_deliveries_;
    last_delivery_ns_ = now;
  }
  delivered_.fetch_add(1, std::memory_order_relaxed);

  if (!options_.ack) return;
  // One ack per message, as applications ack: the client merges them into
  // ranges and sends them together (client/connection.h, Coalescing).
  subscription_.ack(message);
  acked_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace tern::bench
