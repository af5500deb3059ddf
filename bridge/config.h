// tern-bridge's config file (TOML). The common case is three lines:
//
//   kafka = { "bootstrap.servers" = "kafka1:9092" }
//   to_kafka = [{ tern = "orders", kafka = "orders" }]
//   from_kafka = [{ kafka = "payments", tern = "payments" }]
//
// Every key is described in bridge/README.md. An unknown key, a value of the
// wrong type, a librdkafka property librdkafka does not know, or one the
// bridge must set itself is an error naming the file, the line and the key.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tern/client.h"

namespace tern::bridge {

// Tern -> Kafka: a durable Tern subscription whose messages become records.
struct ToKafkaRoute {
  std::string tern;          // a topic (not a pattern: see config.cc)
  std::string kafka;         // the Kafka topic
  std::string subscription;  // the durable subscription's name
  uint32_t prefetch = 1000;  // Tern messages in flight to Kafka at most
};

// Kafka -> Tern: a Kafka consumer group member whose records are published.
struct FromKafkaRoute {
  std::string kafka;  // a topic, or a regular expression starting with ^
  std::string tern;   // the Tern topic
  std::string group;  // the Kafka consumer group (group.id)
  uint32_t max_unconfirmed = 1000;  // records awaiting Tern's confirm at most
};

struct Config {
  std::string tern_address = "127.0.0.1:7411";
  ClientOptions tern;  // credentials, TLS, timeout
  // librdkafka properties, passed through to every producer and consumer.
  std::vector<std::pair<std::string, std::string>> kafka;
  std::vector<ToKafkaRoute> to_kafka;
  std::vector<FromKafkaRoute> from_kafka;
  // How often each route logs its progress and lag.
  std::chrono::milliseconds progress_interval{10000};
  // How long a start-up check of Kafka (reachable, topic known) may take.
  std::chrono::milliseconds kafka_timeout{10000};
  // "HOST:PORT" to serve GET /metrics on; empty: none.
  std::string metrics_listen;
};

// Reads the file at `path` into *config. False, with *error one line naming
// the file, the line and the key, if it cannot be read or parsed, or holds a
// wrong key or value.
bool read_config(const std::string& path, Config* config, std::string* error);

// A route's name in logs and errors: "tern:orders -> kafka:orders".
std::string route_name(const ToKafkaRoute& route);
std::string route_name(const FromKafkaRoute& route);

}  // namespace tern::bridge
