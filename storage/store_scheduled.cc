// Scheduled messages in the store: entries keyed by topic, due time and
// ticket (layout.h), written when a publish schedules a message and deleted
// in the batch that appends it to its topic.
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include <climits>
#include <memory>

#include "layout.h"
#include "store.h"

namespace tern::storage {

void Batch::put_scheduled(uint64_t topic_id, int64_t due_ms, uint64_t ticket,
                          const void* record, size_t size) {
  batch_.Put(meta_, scheduled_key(topic_id, due_ms, ticket),
             rocksdb::Slice(static_cast<const char*>(record), size));
}

void Batch::delete_scheduled(uint64_t topic_id, int64_t due_ms,
                             uint64_t ticket) {
  batch_.Delete(meta_, scheduled_key(topic_id, due_ms, ticket));
}

Status Store::read_scheduled(uint64_t topic_id, int64_t from_due,
                             uint64_t from_ticket, int64_t due_by,
                             size_t max_messages, size_t max_bytes,
                             std::vector<ScheduledMessage>* out,
                             int64_t* next_due) {
  out->clear();
  *next_due = INT64_MAX;
  // Starting at the first entry not yet moved, not at the topic's first key,
  // skips the tombstones the moved entries left until compaction drops them.
  std::string upper = topic_key(topic_id + 1, kScheduledTag);
  rocksdb::Slice upper_slice = upper;
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, meta_));
  size_t bytes = 0;
  constexpr size_t kKeySize = 1 + 8 + 8 + 8;
  for (it->Seek(scheduled_key(topic_id, from_due, from_ticket)); it->Valid();
       it->Next()) {
    if (it->key().size() != kKeySize)
      return Status::error("malformed scheduled message key in " +
                           options_.path);
    int64_t due = int64_t(get_be64(it->key().data() + 9));
    if (due > due_by || out->size() >= max_messages ||
        (!out->empty() && bytes >= max_bytes)) {
      *next_due = due;
      break;
    }
    out->push_back(
        {due, get_be64(it->key().data() + 17), it->value().ToString()});
    bytes += out->back().record.size();
  }
  if (!it->status().ok())
    return Status::error("cannot read scheduled messages of topic " +
                         std::to_string(topic_id) + " from " + options_.path +
                         ": " + it->status().ToString());
  return Status::ok();
}

}  // namespace tern::storage
