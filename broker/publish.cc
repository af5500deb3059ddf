// Appending to topics: a Publish frame's messages (with de-duplication by
// producer id, and the confirm once committed), one record, and a message
// given up on, dead-lettered with headers saying where it came from.
#include <vector>

#include "broker.h"
#include "clock.h"
#include "connection.h"
#include "copy.h"
#include "log.h"
#include "record.h"
#include "subscription.h"
#include "topic.h"
#include "traceparent.h"

namespace tern {

namespace {

// Whether `sequence` at `offset` is the next message of `run`.
bool continues(const storage::SequencesRecord& run, uint64_t sequence,
               uint64_t offset) {
  return run.first_sequence + run.count == sequence &&
         run.first_offset + run.count == offset;
}

}  // namespace

void Broker::publish(uint64_t connection_id, Topic& topic,
                     const wire::Publish& publish) {
  int64_t now = unix_ms();
  int64_t expires = now + int64_t(config_.dedupe_window_ms);
  uint64_t first = topic.next_offset();
  uint64_t producer = publish.producer();
  // What each message got: a new offset, or (a repeated producer message
  // id or sequence) the offset of the original.
  std::vector<wire::PublishResult> results;
  std::vector<std::string> new_ids;
  // The new sequences appended, in runs, to forget if the commit fails.
  std::vector<storage::SequencesRecord> new_sequences;
  // Duplicates of messages not durable yet: they stand or fall with their
  // original's commit.
  struct Unsettled {
    size_t index;  // in results
    std::string id;
    uint64_t sequence;  // if no id
  };
  std::vector<Unsettled> unsettled;
  if (publish.messages()) {
    results.reserve(publish.messages()->size());
    uint64_t sequence = publish.sequence();
    for (const wire::Message* message : *publish.messages()) {
      std::string id = message->id() ? message->id()->str() : std::string();
      bool by_sequence = id.empty() && producer != 0;
      uint64_t original;
      if (id.empty() ? by_sequence &&
                           topic.sequences().find(producer, sequence, &original)
                     : topic.find_id(id, now, &original)) {
        if (original >= topic.committed_end())
          unsettled.push_back({results.size(), id, sequence});
        results.emplace_back(original, wire::ErrorCode::None, true);
        ++sequence;
        continue;
      }
      if ((!id.empty() || by_sequence) &&
          dedupe_ids_ >= config_.max_dedupe_ids) {
        // Remembering it would take memory past the limit, and forgetting
        // older ids early would break their window: refuse this one.
        results.emplace_back(0, wire::ErrorCode::LimitExceeded, false);
        ++sequence;
        continue;
      }
      uint64_t offset = append(topic, *message, now);
      results.emplace_back(offset, wire::ErrorCode::None, false);
      if (!id.empty()) {
        counting_dedupe(topic, [&] { topic.remember_id(id, offset, expires); });
        committer_->batch().put_dedupe({topic.id(), id, offset, expires});
        new_ids.push_back(std::move(id));
      } else if (by_sequence) {
        bool started = false;
        counting_dedupe(topic, [&] {
          started = topic.sequences().add(producer, sequence, offset, expires);
        });
        stage_sequence({topic.id(), producer, sequence, 1, offset, expires},
                       started);
        if (!new_sequences.empty() &&
            continues(new_sequences.back(), sequence, offset)) {
          ++new_sequences.back().count;
        } else {
          new_sequences.push_back(
              {topic.id(), producer, sequence, 1, offset, expires});
        }
      }
      ++sequence;
    }
  }
  uint64_t end = topic.next_offset();
  bool confirm = publish.confirm();
  uint64_t request_id = publish.request_id();
  committer_->on_commit([this, topic_id = topic.id(), first, end, confirm,
                         request_id, connection_id, producer,
                         results = std::move(results),
                         new_ids = std::move(new_ids),
                         new_sequences = std::move(new_sequences),
                         unsettled = std::move(unsettled)](
                            const storage::Status& status) mutable {
    // The topic may have been deleted meanwhile; its messages were stored
    // all the same, until the delete.
    Topic* topic = find_topic(topic_id);
    if (topic != nullptr) {
      topic->on_committed(first, end, status.is_ok());
      for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
    }
    if (!status.is_ok()) {
      // Nothing of it was stored, the ids and sequences included: a retry
      // must append.
      if (topic != nullptr) {
        counting_dedupe(*topic, [&] {
          for (const auto& id : new_ids) topic->forget_id(id);
          for (const auto& run : new_sequences)
            topic->sequences().forget(run.producer, run.first_sequence,
                                      run.count);
        });
      }
      for (auto& r : results)
        if (!r.duplicate())
          r = wire::PublishResult(0, wire::ErrorCode::StorageFailure, false);
    }
    // The original's commit has returned by now (commits return in order):
    // if it failed, it was forgotten just above or in that batch's own
    // callback, and this duplicate was not stored either.
    for (const auto& u : unsettled) {
      uint64_t original;
      bool held = topic != nullptr &&
                  (u.id.empty() ? topic->sequences().find(producer, u.sequence,
                                                          &original)
                                : topic->find_id(u.id, unix_ms(), &original));
      if (topic != nullptr && (!held || original != results[u.index].offset()))
        results[u.index] =
            wire::PublishResult(0, wire::ErrorCode::StorageFailure, false);
    }
    Connection* connection = find_connection(connection_id);
    if (!confirm || connection == nullptr) return;
    flatbuffers::FlatBufferBuilder fbb(64 + 16 * results.size());
    auto vector = fbb.CreateVectorOfStructs(results);
    frame::finish(fbb, wire::Body::PublishAck,
                  wire::CreatePublishAck(fbb, request_id, vector).Union());
    connection->send_owed(fbb);
  });
}

void Broker::stage_sequence(const storage::SequencesRecord& one,
                            bool starts_run) {
  auto [it, added] =
      staged_sequences_.try_emplace({one.topic_id, one.producer}, one);
  if (added) return;
  storage::SequencesRecord& staged = it->second;
  if (!starts_run && continues(staged, one.first_sequence, one.first_offset)) {
    ++staged.count;
    staged.expires_ms = one.expires_ms;
    return;
  }
  committer_->batch().put_sequences(staged);
  staged = one;
}

void Broker::write_staged_sequences() {
  for (const auto& [key, run] : staged_sequences_)
    committer_->batch().put_sequences(run);
  staged_sequences_.clear();
}

uint64_t Broker::append(Topic& topic, const wire::Message& message,
                        int64_t timestamp_ms) {
  // One builder per record, sized to fit, so the tail can keep its buffer as
  // it is.
  flatbuffers::FlatBufferBuilder fbb(storage::record_size_hint(message));
  storage::encode_record(fbb, message, timestamp_ms);
  uint64_t offset = topic.next_offset();
  committer_->batch().put_message(topic.id(), offset, fbb.GetBufferPointer(),
                                  fbb.GetSize());
  topic.append(fbb.Release());
  changed_topics_.insert(topic.id());
  return offset;
}

bool Broker::dead_letter(Subscription& from, uint64_t offset, uint32_t attempts,
                         const wire::StoredMessage& message, const char* reason,
                         std::string* error) {
  const std::string& to = from.settings().dead_letter_topic;
  if (from.topic().settings().temporary) {
    // An inbox's replies are for one requester; nobody would read them.
    LOG_DEBUG(
        "temporary topic %s offset %llu: dropped after %u deliveries: "
        "%s",
        from.topic().name().c_str(), (unsigned long long)offset, attempts,
        reason);
    return true;
  }
  Refusal refusal;
  Topic* dlq = topic(to, &refusal);
  if (dlq == nullptr) {
    *error = refusal.message;
    return false;
  }
  // The original key, headers and payload, plus where it came from and why.
  // The tern-dlq-* headers of an earlier dead-lettering are replaced, not
  // added to: a message passed along dead-letter topics stays the size it
  // was (see the Deliver frame bound in PROTOCOL.md).
  flatbuffers::FlatBufferBuilder fbb(
      1024 + (message.payload() ? message.payload()->size() : 0));
  std::vector<flatbuffers::Offset<wire::Header>> headers;
  frame::copy_headers(fbb, message.headers(), &headers, "tern-dlq-");
  auto add = [&](const char* name, const std::string& value) {
    headers.push_back(wire::CreateHeader(
        fbb, fbb.CreateString(name),
        fbb.CreateVector(reinterpret_cast<const uint8_t*>(value.data()),
                         value.size())));
  };
  add("tern-dlq-topic", from.topic().name());
  add("tern-dlq-subscription", from.name());
  add("tern-dlq-offset", std::to_string(offset));
  add("tern-dlq-attempts", std::to_string(attempts));
  add("tern-dlq-reason", reason);
  auto key = frame::copy_bytes(fbb, message.key());
  auto header_vector = fbb.CreateVector(headers);
  auto payload = frame::copy_bytes(fbb, message.payload());
  fbb.Finish(wire::CreateMessage(fbb, key, header_vector, payload));

  uint64_t at =
      append(*dlq, *flatbuffers::GetRoot<wire::Message>(fbb.GetBufferPointer()),
             unix_ms());
  committer_->on_commit(
      [this, id = dlq->id(), at](const storage::Status& status) {
        if (Topic* dlq = find_topic(id)) {
          dlq->on_committed(at, at + 1, status.is_ok());
          for (auto& s : dlq->subscriptions()) schedule_dispatch(*s);
        }
      });
  log_event(LogLevel::kInfo, "dead_lettered",
            {{"topic", from.topic().name()},
             {"subscription", from.name()},
             {"offset", std::to_string(offset)},
             {"attempts", std::to_string(attempts)},
             {"reason", reason},
             {"dead_letter_topic", to},
             {"trace_id", trace::trace_id_of(message.headers())}},
            "topic %s offset %llu (subscription %s): dead-lettered to %s "
            "after %u deliveries: %s",
            from.topic().name().c_str(), (unsigned long long)offset,
            from.name().c_str(), to.c_str(), attempts, reason);
  return true;
}

}  // namespace tern
