#include "kafka.h"

#include <stdexcept>
#include <string>

#include "log.h"

namespace tern::bridge {

namespace {

// librdkafka's own log, through the bridge's, minus the warnings about what
// the bridge does on purpose: one [kafka] table for producers and consumers
// (each warns about the other's properties), and the gapless guarantee
// (librdkafka calls it experimental).
void on_log(const rd_kafka_t* kafka, int, const char* facility,
            const char* text) {
  std::string line = text;
  if (std::string(facility) == "CONFWARN" &&
      (line.find("property and will be ignored by this") != std::string::npos ||
       line.find("enable.gapless.guarantee is experimental") !=
           std::string::npos))
    return;
  log_line(std::string("kafka ") + rd_kafka_name(kafka) + ": " + facility +
           ": " + line);
}

}  // namespace

KafkaHandle new_kafka(
    rd_kafka_type_t type, const Config& config,
    const std::vector<std::pair<std::string, std::string>>& fixed,
    void (*prepare)(rd_kafka_conf_t*, void*), void* opaque) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char why[512];
  auto set = [&](const std::string& name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), why, sizeof why) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("kafka property " + name + ": " + why);
    }
  };
  for (const auto& [name, value] : config.kafka) set(name, value);
  for (const auto& [name, value] : fixed) set(name, value);
  rd_kafka_conf_set_log_cb(conf, on_log);
  if (prepare != nullptr) prepare(conf, opaque);
  rd_kafka_t* kafka = rd_kafka_new(type, conf, why, sizeof why);
  if (kafka == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("cannot make a Kafka client: ") + why);
  }
  return KafkaHandle(kafka);
}

int check_topic(rd_kafka_t* kafka, const Config& config,
                const std::string& topic) {
  std::string servers;
  for (const auto& [name, value] : config.kafka)
    if (name == "bootstrap.servers" || name == "metadata.broker.list")
      servers = value;
  bool pattern = !topic.empty() && topic[0] == '^';
  // All topics: asking for one by name may create it (auto.create.topics).
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(
      kafka, 1, nullptr, &metadata, int(config.kafka_timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("cannot reach Kafka (bootstrap.servers " +
                             servers + ") within " +
                             std::to_string(config.kafka_timeout.count()) +
                             " ms: " + rd_kafka_err2str(err));
  }
  int partitions = 0;
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (metadata->topics[i].topic == topic) {
      partitions = metadata->topics[i].partition_cnt;
      topic_err = metadata->topics[i].err;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  if (!pattern &&
      (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR || partitions == 0)) {
    throw std::runtime_error(
        "Kafka topic " + topic + " does not exist" +
        (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR
             ? std::string(" (") + rd_kafka_err2str(topic_err) + ")"
             : std::string()));
  }
  return partitions;
}

}  // namespace tern::bridge
