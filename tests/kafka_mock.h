// KafkaMock: librdkafka's built-in mock Kafka cluster (rdkafka_mock.h), run
// inside the test process, for the Kafka bridge's tests (issue 17). It speaks
// the real Kafka protocol on loopback listeners that other processes reach
// through bootstraps(); no Java, no broker to install.
//
// What librdkafka 2.0.2's mock (Debian 12) does and does not do matters for
// what a test may assert: produce, fetch, consumer groups and offset commits
// behave; transactions are accepted but not enforced (a read_committed
// consumer sees aborted records, transactional offset commits are not
// stored, an older producer with the same transactional.id is not fenced).
// Under TSan it cannot run in the test process (see under_tsan.h).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>

struct rd_kafka_mock_cluster_s;

namespace tern::test {

// librdkafka settings for a test's own producer or consumer (callbacks may
// be added before rd_kafka_new), and the client made from them. Both throw
// std::runtime_error with librdkafka's words.
rd_kafka_conf_t* kafka_conf(const std::map<std::string, std::string>& settings);
rd_kafka_t* new_kafka(rd_kafka_type_t type,
                      const std::map<std::string, std::string>& settings);

class KafkaMock {
 public:
  explicit KafkaMock(int brokers = 3);  // throws std::runtime_error
  ~KafkaMock();
  KafkaMock(const KafkaMock&) = delete;
  KafkaMock& operator=(const KafkaMock&) = delete;

  // "127.0.0.1:PORT,..." for bootstrap.servers.
  std::string bootstraps() const;
  // Creates `topic` (the mock has no CreateTopics request). Throws.
  void create_topic(const std::string& topic, int partitions);
  // Takes every broker of the cluster down (connections close, none are
  // accepted), or brings them back.
  void set_up(bool up);

 private:
  rd_kafka_s* handle_ = nullptr;  // owns the mock cluster's threads
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  int brokers_;
};

}  // namespace tern::test
