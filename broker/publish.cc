// Appending to topics: a Publish frame's messages (with de-duplication by
// producer id, and the confirm once committed), a Transaction's parts in
// one commit, one record, and a message given up on, dead-lettered with
// headers saying where it came from.
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

Broker::Appended Broker::append_messages(Topic& topic,
                                         const MessageList* messages,
                                         uint64_t producer, uint64_t sequence,
                                         int64_t now) {
  int64_t expires = now + int64_t(config_.dedupe_window_ms);
  Appended a;
  a.topic_id = topic.id();
  a.producer = producer;
  a.first = topic.next_offset();
  if (messages) {
    a.results.reserve(messages->size());
    for (const wire::Message* message : *messages) {
      std::string id = message->id() ? message->id()->str() : std::string();
      bool by_sequence = id.empty() && producer != 0;
      uint64_t original;
      if (id.empty() ? by_sequence &&
                           topic.sequences().find(producer, sequence, &original)
                     : topic.find_id(id, now, &original)) {
        if (original >= topic.committed_end())
          a.unsettled.push_back({a.results.size(), id, sequence, original});
        bool scheduled = original & kTicketBit;
        a.results.emplace_back(scheduled ? 0 : original, wire::ErrorCode::None,
                               true, scheduled);
        ++sequence;
        continue;
      }
      int64_t due = due_time(*message, now);
      if (due < 0 || ((!id.empty() || by_sequence) &&
                      dedupe_ids_ >= config_.max_dedupe_ids)) {
        // Beyond the furthest the broker schedules; or remembering it would
        // take memory past the limit, and forgetting older ids early would
        // break their window: refuse this one.
        a.results.emplace_back(0, wire::ErrorCode::LimitExceeded, false, false);
        ++sequence;
        continue;
      }
      // A scheduled message is known by its ticket until it is appended.
      uint64_t offset;
      if (due > 0) {
        offset = schedule(topic, *message, due, now);
        a.scheduled.push_back(due);
        a.results.emplace_back(0, wire::ErrorCode::None, false, true);
      } else {
        offset = append(topic, *message, now);
        a.results.emplace_back(offset, wire::ErrorCode::None, false, false);
      }
      if (!id.empty()) {
        counting_dedupe(topic, [&] { topic.remember_id(id, offset, expires); });
        committer_->batch().put_dedupe({topic.id(), id, offset, expires});
        a.new_ids.push_back(std::move(id));
      } else if (by_sequence) {
        bool started = false;
        counting_dedupe(topic, [&] {
          started = topic.sequences().add(producer, sequence, offset, expires);
        });
        stage_sequence({topic.id(), producer, sequence, 1, offset, expires},
                       started);
        if (!a.new_sequences.empty() &&
            continues(a.new_sequences.back(), sequence, offset)) {
          ++a.new_sequences.back().count;
        } else {
          a.new_sequences.push_back(
              {topic.id(), producer, sequence, 1, offset, expires});
        }
      }
      ++sequence;
    }
  }
  a.end = topic.next_offset();
  return a;
}

void Broker::settle(Appended& a, const storage::Status& status) {
  // The topic may have been deleted meanwhile; its messages were stored
  // all the same, until the delete.
  Topic* topic = find_topic(a.topic_id);
  if (topic != nullptr) {
    topic->on_committed(a.first, a.end, status.is_ok());
    for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
    if (status.is_ok()) {
      for (int64_t due : a.scheduled) note_due(*topic, due);
    } else if (!a.scheduled.empty()) {
      topic->schedule().count -= a.scheduled.size();
      changed_topics_.insert(topic->id());
    }
  }
  if (!status.is_ok()) {
    // Nothing of it was stored, the ids and sequences included: a retry
    // must append.
    if (topic != nullptr) {
      counting_dedupe(*topic, [&] {
        for (const auto& id : a.new_ids) topic->forget_id(id);
        for (const auto& run : a.new_sequences)
          topic->sequences().forget(run.producer, run.first_sequence,
                                    run.count);
      });
    }
    for (auto& r : a.results)
      if (!r.duplicate())
        r = wire::PublishResult(0, wire::ErrorCode::StorageFailure, false,
                                false);
  }
  // The original's commit has returned by now (commits return in order):
  // if it failed, it was forgotten just above or in that batch's own
  // callback, and this duplicate was not stored either.
  for (const auto& u : a.unsettled) {
    uint64_t original;
    bool held = topic != nullptr &&
                (u.id.empty() ? topic->sequences().find(a.producer, u.sequence,
                                                        &original)
                              : topic->find_id(u.id, unix_ms(), &original));
    if (topic != nullptr && (!held || original != u.original))
      a.results[u.index] =
          wire::PublishResult(0, wire::ErrorCode::StorageFailure, false, false);
  }
}

void Broker::confirm(uint64_t connection_id, uint64_t request_id,
                     const std::vector<wire::PublishResult>& results) {
  Connection* connection = find_connection(connection_id);
  if (connection == nullptr) return;
  flatbuffers::FlatBufferBuilder fbb(64 + 16 * results.size());
  auto vector = fbb.CreateVectorOfStructs(results);
  frame::finish(fbb, wire::Body::PublishAck,
                wire::CreatePublishAck(fbb, request_id, vector).Union());
  connection->send_owed(fbb);
}

void Broker::publish(uint64_t connection_id, Topic& topic,
                     const wire::Publish& publish) {
  Appended appended =
      append_messages(topic, publish.messages(), publish.producer(),
                      publish.sequence(), unix_ms());
  committer_->on_commit(
      [this, connection_id, confirm = publish.confirm(),
       request_id = publish.request_id(),
       appended = std::move(appended)](const storage::Status& status) mutable {
        settle(appended, status);
        if (confirm) this->confirm(connection_id, request_id, appended.results);
      });
}

void Broker::publish_atomic(uint64_t connection_id,
                            const wire::Transaction& transaction,
                            const std::vector<Topic*>& topics,
                            const std::vector<HeldAck>& acks) {
  // Appended one after the other with nothing in between, so all into the
  // batch now filling: one RocksDB write, stored whole or not at all.
  int64_t now = unix_ms();
  std::vector<Appended> parts;
  for (size_t i = 0; i < topics.size(); ++i) {
    const wire::PublishPart* part = transaction.parts()->Get(i);
    parts.push_back(append_messages(*topics[i], part->messages(),
                                    transaction.producer(), part->sequence(),
                                    now));
  }
  // The acks, and the cursors they change, into the same batch.
  struct Acked {
    uint64_t topic_id;
    std::string name;
    const Subscription* subscription;  // compared, not followed: it may go
    std::vector<std::pair<uint64_t, uint32_t>> offsets;
  };
  std::vector<Acked> acked;
  for (const HeldAck& ack : acks) {
    Subscription& s = ack.consumer->subscription;
    acked.push_back({s.topic().id(), s.name(), &s, {}});
    s.ack_held(*ack.consumer, ack.first, ack.last, &acked.back().offsets);
    note_cursor(s);
    schedule_dispatch(s);  // credit returned
  }
  write_cursors();
  committer_->on_commit([this, connection_id,
                         request_id = transaction.request_id(),
                         parts = std::move(parts), acked = std::move(acked)](
                            const storage::Status& status) mutable {
    std::vector<wire::PublishResult> results;
    for (Appended& part : parts) {
      settle(part, status);
      results.insert(results.end(), part.results.begin(), part.results.end());
    }
    if (!status.is_ok()) {
      // Nothing was stored, the acks included: their messages are not
      // done, and go out again.
      for (const Acked& a : acked) {
        Subscription* s = find_subscription(a.topic_id, a.name, a.subscription);
        if (s == nullptr) continue;
        for (auto [offset, attempt] : a.offsets)
          s->take_back(offset, attempt, nullptr);
        note_cursor(*s);
        schedule_dispatch(*s);
      }
    }
    confirm(connection_id, request_id, results);
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
  return append_record(topic, fbb);
}

uint64_t Broker::append_record(Topic& topic,
                               flatbuffers::FlatBufferBuilder& fbb) {
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
  committer_->on_commit([this, id = dlq->id(), at, source = from.topic().id(),
                         name = from.name(), was = &from, offset, attempts,
                         reason](const storage::Status& status) {
    if (Topic* dlq = find_topic(id)) {
      dlq->on_committed(at, at + 1, status.is_ok());
      for (auto& s : dlq->subscriptions()) schedule_dispatch(*s);
    }
    if (status.is_ok()) return;
    // The dead letter was not stored, nor the cursor that settled its
    // message: the message is given up on again, not lost.
    if (Subscription* s = find_subscription(source, name, was)) {
      s->take_back(offset, attempts, reason);
      note_cursor(*s);
      schedule_dispatch(*s);
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
