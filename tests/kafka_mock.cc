#include "kafka_mock.h"

#include <librdkafka/rdkafka_mock.h>

#include <stdexcept>

namespace tern::test {

rd_kafka_conf_t* kafka_conf(
    const std::map<std::string, std::string>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error,
                          sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("kafka setting " + name + ": " + error);
    }
  }
  return conf;
}

rd_kafka_t* new_kafka(rd_kafka_type_t type,
                      const std::map<std::string, std::string>& settings) {
  rd_kafka_conf_t* conf = kafka_conf(settings);
  char error[512];
  rd_kafka_t* kafka = rd_kafka_new(type, conf, error, sizeof error);
  if (kafka == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka client: ") + error);
  }
  return kafka;
}

KafkaMock::KafkaMock(int brokers) : brokers_(brokers) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster: quiet, and no bootstrap of its own.
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
  handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (handle_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka mock: ") + error);
  }
  cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
  if (cluster_ == nullptr) {
    rd_kafka_destroy(handle_);
    throw std::runtime_error("kafka mock: cannot start the mock cluster");
  }
}

KafkaMock::~KafkaMock() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(handle_);
}

std::string KafkaMock::bootstraps() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

void KafkaMock::create_topic(const std::string& topic, int partitions) {
  rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("kafka mock: cannot create " + topic + ": " +
                             rd_kafka_err2str(err));
  }
}

void KafkaMock::set_up(bool up) {
  for (int id = 1; id <= brokers_; ++id) {
    rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster_, id)
                                 : rd_kafka_mock_broker_set_down(cluster_, id);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error("kafka mock: broker " + std::to_string(id) +
                               ": " + rd_kafka_err2str(err));
  }
}

}  // namespace tern::test
