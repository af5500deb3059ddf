// Store: loading what the broker keeps across restarts at start (topics,
// subscriptions, remembered producer ids), each checked as it is decoded so
// that a damaged record is reported rather than trusted.
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "layout.h"
#include "store.h"

namespace tern::storage {

Status Store::load_topics(std::vector<TopicRecord>* out) {
  out->clear();
  std::unique_ptr<rocksdb::Iterator> meta(
      db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (meta->Seek(std::string(1, kTopicTag));
       meta->Valid() && meta->key()[0] == kTopicTag; meta->Next()) {
    rocksdb::Slice key = meta->key();
    if (key.size() != 9) {
      return Status::error("malformed topic key of " +
                           std::to_string(key.size()) + " bytes in " +
                           options_.path);
    }
    TopicRecord topic;
    topic.id = get_be64(key.data() + 1);
    topic.name = meta->value().ToString();
    Status s = load_topic(&topic);
    if (!s.is_ok()) return s;
    out->push_back(std::move(topic));
  }
  if (!meta->status().ok()) {
    return Status::error("cannot read topics from " + options_.path + ": " +
                         meta->status().ToString());
  }
  return Status::ok();
}

Status Store::load_topic(TopicRecord* topic) {
  auto damaged = [&](const char* what) {
    return Status::error(std::string("malformed ") + what + " of topic " +
                         topic->name + " in " + options_.path);
  };
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_,
                               topic_key(topic->id, kTopicSettingsTag), &value);
  if (s.ok() && !decode_settings(value, &topic->settings))
    return damaged("settings");
  if (!s.ok() && !s.IsNotFound())
    return Status::error("cannot read topic " + topic->name + ": " +
                         s.ToString());
  s = db_->Get(rocksdb::ReadOptions(), meta_,
               topic_key(topic->id, kTopicStateTag), &value);
  bool stored = s.ok();
  if (stored && !decode_state(value, &topic->state)) return damaged("state");
  if (!stored && !s.IsNotFound())
    return Status::error("cannot read topic " + topic->name + ": " +
                         s.ToString());
  // Without a state record (a store written before there was one) the
  // messages are counted once. With one, messages past its next offset are
  // counted in: the broker writes the state with every append, but an offset
  // must never be handed out twice, whatever happened.
  TopicState& state = topic->state;
  bool first = !stored;
  return scan(topic->id, state.next_offset,
              [&](uint64_t offset, const char*, size_t size) {
                if (first) state.first_offset = offset;
                first = false;
                state.next_offset = offset + 1;
                ++state.messages;
                state.bytes += size;
                return true;
              });
}

Status Store::load_subscriptions(std::vector<SubscriptionRecord>* out) {
  out->clear();
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->Seek(std::string(1, kSubscriptionTag));
       it->Valid() && it->key()[0] == kSubscriptionTag; it->Next()) {
    rocksdb::Slice key = it->key();
    SubscriptionRecord sub;
    if (key.size() < 9 || !decode_subscription(it->value(), &sub)) {
      return Status::error("malformed subscription record in " + options_.path +
                           " (key of " + std::to_string(key.size()) +
                           " bytes, value of " +
                           std::to_string(it->value().size()) + " bytes)");
    }
    sub.topic_id = get_be64(key.data() + 1);
    sub.name.assign(key.data() + 9, key.size() - 9);
    std::string settings;
    rocksdb::Status s = db_->Get(
        rocksdb::ReadOptions(), meta_,
        subscription_key(sub.topic_id, sub.name, kSubscriptionSettingsTag),
        &settings);
    if (s.ok()) {
      if (settings.size() < 4)
        return Status::error("malformed settings of subscription " + sub.name +
                             " in " + options_.path);
      sub.max_deliveries = static_cast<uint32_t>(get_le(settings.data(), 4));
      size_t end = settings.find('\0', 4);
      sub.dead_letter_topic =
          settings.substr(4, end == std::string::npos ? end : end - 4);
      if (end != std::string::npos) {
        if ((settings.size() - end - 1) % 4 != 0)
          return Status::error("malformed retry delays of subscription " +
                               sub.name + " in " + options_.path);
        for (size_t p = end + 1; p < settings.size(); p += 4)
          sub.retry_delays_ms.push_back(
              static_cast<uint32_t>(get_le(settings.data() + p, 4)));
      }
    } else if (!s.IsNotFound()) {
      return Status::error("cannot read subscription " + sub.name + ": " +
                           s.ToString());
    }
    out->push_back(std::move(sub));
  }
  if (!it->status().ok()) {
    return Status::error("cannot read subscriptions from " + options_.path +
                         ": " + it->status().ToString());
  }
  return Status::ok();
}

Status Store::load_dedupe(std::vector<DedupeRecord>* out) {
  out->clear();
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->Seek(std::string(1, kDedupeTag));
       it->Valid() && it->key()[0] == kDedupeTag; it->Next()) {
    rocksdb::Slice key = it->key();
    rocksdb::Slice value = it->value();
    if (key.size() < 10 || value.size() != 16) {
      return Status::error("malformed de-duplication record in " +
                           options_.path);
    }
    DedupeRecord dedupe;
    dedupe.topic_id = get_be64(key.data() + 1);
    dedupe.id.assign(key.data() + 9, key.size() - 9);
    dedupe.offset = get_le(value.data(), 8);
    dedupe.expires_ms = int64_t(get_le(value.data() + 8, 8));
    out->push_back(std::move(dedupe));
  }
  if (!it->status().ok()) {
    return Status::error("cannot read de-duplication records from " +
                         options_.path + ": " + it->status().ToString());
  }
  return Status::ok();
}

Status Store::load_sequences(std::vector<SequencesRecord>* out) {
  out->clear();
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->Seek(std::string(1, kSequencesTag));
       it->Valid() && it->key()[0] == kSequencesTag; it->Next()) {
    rocksdb::Slice key = it->key();
    rocksdb::Slice value = it->value();
    if (key.size() != 25 || value.size() != 24) {
      return Status::error("malformed producer sequences record in " +
                           options_.path);
    }
    SequencesRecord r;
    r.topic_id = get_be64(key.data() + 1);
    r.producer = get_be64(key.data() + 9);
    r.first_sequence = get_be64(key.data() + 17);
    r.count = get_le(value.data(), 8);
    r.first_offset = get_le(value.data() + 8, 8);
    r.expires_ms = int64_t(get_le(value.data() + 16, 8));
    out->push_back(r);
  }
  if (!it->status().ok()) {
    return Status::error("cannot read producer sequences from " +
                         options_.path + ": " + it->status().ToString());
  }
  return Status::ok();
}

}  // namespace tern::storage
