#include "from_kafka.h"

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kafka.h"
#include "log.h"
#include "progress.h"

namespace tern::bridge {

namespace {

// A Tern publish frame holds at most this many records, or about this many
// bytes (well under the broker's frame limit, 16 MiB by default).
constexpr size_t kBatch = 256;
constexpr size_t kBatchBytes = 1 << 20;
constexpr std::chrono::seconds kCommitInterval{1};

// A Kafka partition, and the next offset to read from it.
using Partition = std::pair<std::string, int32_t>;
using Positions = std::map<Partition, int64_t>;

class FromKafka {
 public:
  FromKafka(const Config& config, const FromKafkaRoute& route,
            RouteMetrics& metrics)
      : config_(config),
        route_(route),
        name_(route_name(route)),
        metrics_(metrics) {}

  ~FromKafka() {
    // A route that failed leaves the group without publishing or committing
    // more: what it had not committed is read again after the restart.
    if (consumer_ && !closed_) {
      abandoned_ = true;
      rd_kafka_consumer_close(consumer_.get());
    }
  }

  void run(const std::atomic<bool>& stop) {
    stop_ = &stop;
    connect();
    Progress progress(config_.progress_interval);
    auto next_commit = std::chrono::steady_clock::now() + kCommitInterval;
    while (!stop) {
      check_failure();
      rd_kafka_message_t* record =
          rd_kafka_consumer_poll(consumer_.get(), batch_.empty() ? 100 : 0);
      if (record != nullptr) {
        take(record);
        rd_kafka_message_destroy(record);
      }
      if (batch_.size() >= kBatch || batch_bytes_ >= kBatchBytes ||
          (record == nullptr && !batch_.empty()))
        publish();
      if (std::chrono::steady_clock::now() >= next_commit) {
        commit(false);
        metrics_.lag = kafka_lag();
        next_commit = std::chrono::steady_clock::now() + kCommitInterval;
      }
      if (progress.due()) {
        log_line(name_ + ": " + progress.report(metrics_.records) + ", " +
                 std::to_string(metrics_.already_in_tern) +
                 " of them already in Tern, kafka lag " +
                 std::to_string(metrics_.lag));
      }
    }
    settle();
    // Leaves the group; the revoke it causes finds nothing left to settle.
    rd_kafka_consumer_close(consumer_.get());
    closed_ = true;
    client_->close();
    check_failure();
    log_line(name_ + ": stopped after " + std::to_string(metrics_.records) +
             " records, " + std::to_string(metrics_.already_in_tern) +
             " of them already in Tern");
  }

 private:
  // Records published together, and where their partitions stand after them.
  struct Pending {
    Positions positions;
    bool confirmed = false;
  };

  void connect() {
    std::vector<std::pair<std::string, std::string>> fixed = {
        {"group.id", route_.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"}};
    bool reset_given = false;
    for (const auto& [name, value] : config_.kafka)
      reset_given |= name == "auto.offset.reset";
    // A new group reads what Kafka holds, rather than what comes next.
    if (!reset_given) fixed.emplace_back("auto.offset.reset", "earliest");
    consumer_ = new_kafka(
        RD_KAFKA_CONSUMER, config_, fixed,
        [](rd_kafka_conf_t* conf, void* self) {
          rd_kafka_conf_set_rebalance_cb(conf, &FromKafka::on_rebalance);
          rd_kafka_conf_set_opaque(conf, self);
        },
        this);
    rd_kafka_poll_set_consumer(consumer_.get());
    check_topic(consumer_.get(), config_, route_.kafka);

    ClientOptions options = config_.tern;
    options.max_unconfirmed = route_.max_unconfirmed;
    client_ = Client::connect(config_.tern_address, options);

    rd_kafka_topic_partition_list_t* topics =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, route_.kafka.c_str(),
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error(std::string("cannot subscribe to Kafka: ") +
                               rd_kafka_err2str(err));
    log_line(name_ + ": started (group " + route_.group + ")");
  }

  void take(const rd_kafka_message_t* record) {
    if (record->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      char reason[512];
      if (rd_kafka_fatal_error(consumer_.get(), reason, sizeof reason))
        throw std::runtime_error(std::string("Kafka consumer failed: ") +
                                 reason);
      std::string what = rd_kafka_message_errstr(record);
      if (record->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          record->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        throw std::runtime_error("Kafka: " + what);
      log_line(name_ + ": Kafka: " + what);  // librdkafka retries on its own
      return;
    }
    std::string topic = rd_kafka_topic_name(record->rkt);
    OutgoingMessage message;
    if (record->payload != nullptr)
      message.payload.assign(static_cast<const char*>(record->payload),
                             record->len);
    if (record->key != nullptr)
      message.key.assign(static_cast<const char*>(record->key),
                         record->key_len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(record, &headers) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        message.headers.push_back(
            {name, value ? std::string(static_cast<const char*>(value), size)
                         : std::string()});
      }
    }
    std::string partition = std::to_string(record->partition);
    std::string offset = std::to_string(record->offset);
    message.headers.push_back({"kafka-topic", topic});
    message.headers.push_back({"kafka-partition", partition});
    message.headers.push_back({"kafka-offset", offset});
    message.id = "kafka:" + topic + ":" + partition + ":" + offset;
    batch_bytes_ += message.payload.size() + message.key.size();
    batch_.push_back(std::move(message));
    batch_positions_[{topic, record->partition}] = record->offset + 1;
  }

  // Sends the batch to Tern. While Tern is unreachable it keeps trying
  // (the client reconnects meanwhile) until the route stops: nothing read
  // is committed before Tern confirmed it.
  void publish() {
    uint64_t sequence = next_sequence_++;
    size_t count = batch_.size();
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.emplace(sequence, Pending{std::move(batch_positions_), false});
    }
    batch_positions_.clear();
    for (;;) {
      try {
        // Only read: a publish that throws leaves the batch for the retry.
        client_->publish_async(
            route_.tern, batch_,
            [this, sequence, count](const std::vector<PublishResult>& results) {
              confirmed(sequence, count, results);
            });
        break;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kConnectionLost) throw;
        log_line(name_ + ": waiting for Tern: " + e.what());
      }
      // Stopping: the batch is not committed, so it is read again later.
      if (*stop_) break;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    batch_.clear();
    batch_bytes_ = 0;
  }

  // On the client's reader thread: Tern answered batch `sequence`. A
  // partition's position moves only over batches confirmed in order.
  void confirmed(uint64_t sequence, size_t count,
                 const std::vector<PublishResult>& results) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const PublishResult& result : results) {
      if (result.error != ErrorCode::kNone) {
        refused_ = true;  // never committed: read again after the restart
        return;
      }
    }
    metrics_.records += count;
    for (const PublishResult& result : results)
      metrics_.already_in_tern += result.duplicate;
    pending_[sequence].confirmed = true;
    while (!pending_.empty() && pending_.begin()->second.confirmed) {
      for (const auto& [partition, next] : pending_.begin()->second.positions)
        confirmed_[partition] = next;
      pending_.erase(pending_.begin());
    }
  }

  // Commits the confirmed positions Kafka does not have yet (waiting: all of
  // them, in case an earlier commit, not waited for, failed).
  void commit(bool wait) {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [partition, next] : confirmed_) {
        int64_t& committed = committed_[partition];
        if (committed == next && !wait) continue;
        committed = next;
        rd_kafka_topic_partition_list_add(list, partition.first.c_str(),
                                          partition.second)
            ->offset = next;
      }
    }
    if (list->cnt > 0) {
      rd_kafka_resp_err_t err =
          rd_kafka_commit(consumer_.get(), list, wait ? 0 : 1);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_line(name_ + ": cannot commit offsets: " + rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  // Publishes what was read, waits for Tern's confirms and commits: before
  // partitions go to another member, and on stop.
  void settle() {
    if (!batch_.empty()) publish();
    try {
      client_->flush();
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (refused_ && refusal_.empty()) refusal_ = e.what();
      log_line(name_ + ": Tern did not confirm everything: " + e.what());
    }
    commit(true);
  }

  void check_failure() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!refused_) return;
    }
    // flush() says what the broker said.
    std::string why;
    try {
      client_->flush();
    } catch (const Error& e) {
      why = e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (refusal_.empty()) refusal_ = why;
    throw std::runtime_error("Tern refused records: " + refusal_);
  }

  static void on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) {
    auto* self = static_cast<FromKafka*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      self->log_partitions("assigned", partitions);
      self->change_assignment(partitions, true);
      return;
    }
    try {
      if (!self->abandoned_) self->settle();
    } catch (const std::exception& e) {  // not through librdkafka's C frames
      std::lock_guard<std::mutex> lock(self->mu_);
      self->refused_ = true;
      if (self->refusal_.empty()) self->refusal_ = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      for (int i = 0; i < partitions->cnt; ++i) {
        Partition p{partitions->elems[i].topic, partitions->elems[i].partition};
        self->confirmed_.erase(p);
        self->committed_.erase(p);
      }
    }
    self->log_partitions("revoked", partitions);
    self->change_assignment(partitions, false);
  }

  // Takes `partitions` on or off as the group's protocol wants: one at a
  // time (cooperative), or the whole assignment at once (eager).
  void change_assignment(rd_kafka_topic_partition_list_t* partitions,
                         bool add) {
    rd_kafka_t* consumer = consumer_.get();
    if (std::strcmp(rd_kafka_rebalance_protocol(consumer), "COOPERATIVE") !=
        0) {
      rd_kafka_assign(consumer, add ? partitions : nullptr);
      return;
    }
    rd_kafka_error_t* error =
        add ? rd_kafka_incremental_assign(consumer, partitions)
            : rd_kafka_incremental_unassign(consumer, partitions);
    if (error != nullptr) {
      log_line(name_ + ": cannot change the assignment: " +
               rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  }

  void log_partitions(const char* what,
                      const rd_kafka_topic_partition_list_t* partitions) {
    std::string list;
    for (int i = 0; i < partitions->cnt; ++i)
      list += (i ? " " : "") + std::string(partitions->elems[i].topic) + "/" +
              std::to_string(partitions->elems[i].partition);
    log_line(name_ + ": " + what + " " + (list.empty() ? "nothing" : list));
  }

  // Records Kafka holds past what this member has read, over its partitions
  // (from the high watermarks of the latest fetches).
  uint64_t kafka_lag() {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(consumer_.get(), &assigned) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      return 0;
    rd_kafka_position(consumer_.get(), assigned);
    uint64_t lag = 0;
    for (int i = 0; i < assigned->cnt; ++i) {
      int64_t low, high;
      const auto& p = assigned->elems[i];
      if (p.offset >= 0 &&
          rd_kafka_get_watermark_offsets(consumer_.get(), p.topic, p.partition,
                                         &low,
                                         &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          high > p.offset)
        lag += uint64_t(high - p.offset);
    }
    rd_kafka_topic_partition_list_destroy(assigned);
    return lag;
  }

  const Config& config_;
  const FromKafkaRoute& route_;
  const std::string name_;
  RouteMetrics& metrics_;
  KafkaHandle consumer_;
  std::unique_ptr<Client> client_;
  const std::atomic<bool>* stop_ = nullptr;  // run()'s
  // Read, not yet published (the route's thread only).
  std::vector<OutgoingMessage> batch_;
  size_t batch_bytes_ = 0;
  Positions batch_positions_;
  uint64_t next_sequence_ = 0;
  bool closed_ = false;     // left the group after settling
  bool abandoned_ = false;  // leaving the group after a failure

  std::mutex mu_;  // guards what the client's reader thread reaches
  std::map<uint64_t, Pending> pending_;  // published, by sequence
  Positions confirmed_;                  // confirmed by Tern, in order
  Positions committed_;                  // last committed to Kafka
  bool refused_ = false;  // Tern refused a record
  std::string refusal_;   // what it said
};

}  // namespace

void run_from_kafka(const Config& config, const FromKafkaRoute& route,
                    RouteMetrics& metrics, const std::atomic<bool>& stop) {
  FromKafka(config, route, metrics).run(stop);
}

}  // namespace tern::bridge
