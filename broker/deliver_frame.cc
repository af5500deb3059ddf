#include "deliver_frame.h"

#include "copy.h"

namespace tern {

void DeliverFrame::add(uint64_t offset, uint32_t attempt,
                       const wire::StoredMessage& message) {
  auto headers = frame::copy_headers(fbb_, message.headers());
  auto key = frame::copy_bytes(fbb_, message.key());
  auto payload = frame::copy_bytes(fbb_, message.payload());
  deliveries_.push_back(wire::CreateDelivery(fbb_, offset, attempt,
                                             message.timestamp_ms(), key,
                                             headers, payload));
}

size_t DeliverFrame::size_bound(const wire::StoredMessage& message) {
  // FlatBuffers adds a table, offsets and alignment to each vector and
  // string: generous constants cover them.
  size_t bytes = 128;
  if (message.key()) bytes += message.key()->size() + 16;
  if (message.payload()) bytes += message.payload()->size() + 16;
  if (message.headers()) {
    for (const wire::Header* h : *message.headers()) {
      bytes += 48;
      if (h->name()) bytes += h->name()->size();
      if (h->value()) bytes += h->value()->size();
    }
  }
  return bytes;
}

flatbuffers::DetachedBuffer DeliverFrame::finish(
    uint64_t consumer_id, const std::string& topic,
    const std::string& subscription) {
  auto messages = fbb_.CreateVector(deliveries_);
  auto topic_name = fbb_.CreateString(topic);
  auto sub_name = fbb_.CreateString(subscription);
  frame::finish(fbb_, wire::Body::Deliver,
                wire::CreateDeliver(fbb_, consumer_id, topic_name, sub_name,
                                    messages)
                    .Union());
  deliveries_.clear();
  return fbb_.Release();
}

}  // namespace tern
