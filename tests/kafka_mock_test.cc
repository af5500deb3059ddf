// The Kafka bridge's test harness (tests/kafka_mock.h): librdkafka's mock
// cluster takes keyed records from an idempotent producer (acks=all) and
// gives them back, each once and in order per key. The bridge's tests stand
// on this.
#include "kafka_mock.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <string>

#include "under_tsan.h"

namespace tern::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Delivered {
  int ok = 0;
  int failed = 0;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<Delivered*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++d->ok;
  } else {
    ++d->failed;
  }
}

}  // namespace

TEST_CASE(
    "kafka mock: keyed records from an idempotent producer come back once "
    "each, in order per key" *
    doctest::skip(kUnderTsan)) {
  KafkaMock mock;
  const int kPartitions = 4, kKeys = 10, kRecords = 1000;
  mock.create_topic("mirror", kPartitions);

  Delivered delivered;
  rd_kafka_conf_t* pconf = kafka_conf({{"bootstrap.servers", mock.bootstraps()},
                                       {"enable.idempotence", "true"},
                                       {"acks", "all"},
                                       {"linger.ms", "5"}});
  rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
  rd_kafka_conf_set_opaque(pconf, &delivered);
  char error[512];
  rd_kafka_t* producer =
      rd_kafka_new(RD_KAFKA_PRODUCER, pconf, error, sizeof error);
  REQUIRE_MESSAGE(producer != nullptr, error);
  for (int i = 0; i < kRecords; ++i) {
    std::string key = "k" + std::to_string(i % kKeys);
    std::string value = std::to_string(i);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC("mirror"),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(value.data(), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    REQUIRE(err == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(producer, 0);
  }
  CHECK(rd_kafka_flush(producer, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
  CHECK(delivered.ok == kRecords);
  CHECK(delivered.failed == 0);

  // Read back without a group (assign, from the beginning): no join wait.
  rd_kafka_t* consumer =
      new_kafka(RD_KAFKA_CONSUMER, {{"bootstrap.servers", mock.bootstraps()},
                                    {"group.id", "kafka-mock-test"},
                                    {"enable.auto.commit", "false"}});
  rd_kafka_topic_partition_list_t* parts =
      rd_kafka_topic_partition_list_new(kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, "mirror", p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  REQUIRE(rd_kafka_assign(consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);

  std::map<std::string, int> last;  // key -> last value seen
  int received = 0, out_of_order = 0;
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (received < kRecords && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 200);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string key(static_cast<const char*>(m->key), m->key_len);
      int value =
          std::stoi(std::string(static_cast<const char*>(m->payload), m->len));
      auto it = last.find(key);
      if (it != last.end() && value <= it->second) ++out_of_order;
      last[key] = value;
      ++received;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  CHECK(received == kRecords);
  CHECK(out_of_order == 0);
  CHECK(last.size() == size_t(kKeys));
}

}  // namespace tern::test
