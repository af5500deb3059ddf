// What both directions need from librdkafka: a client made from the config's
// properties, and a start-up check that Kafka answers and knows a topic.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace tern::bridge {

struct KafkaDeleter {
  void operator()(rd_kafka_t* kafka) const { rd_kafka_destroy(kafka); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// A producer or consumer with the config's properties, then `fixed` (the
// bridge's own), and `conf` (callbacks, opaque) applied by `prepare`.
// Throws std::runtime_error saying what librdkafka refused.
KafkaHandle new_kafka(
    rd_kafka_type_t type, const Config& config,
    const std::vector<std::pair<std::string, std::string>>& fixed,
    void (*prepare)(rd_kafka_conf_t*, void*), void* opaque);

// Waits up to config.kafka_timeout for Kafka's metadata, and checks that
// `topic` exists (a regular expression, "^...", is not checked). Throws
// std::runtime_error: "cannot reach Kafka (bootstrap.servers ...)" or "Kafka
// topic X does not exist". Returns its partition count (0 for a pattern).
int check_topic(rd_kafka_t* kafka, const Config& config,
                const std::string& topic);

}  // namespace tern::bridge
