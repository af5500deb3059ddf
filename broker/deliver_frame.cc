#include "deliver_frame.h"

namespace tern {

void DeliverFrame::add(uint64_t offset, uint32_t attempt,
                       const wire::StoredMessage& message) {
  const wire::StoredMessage* m = &message;
  auto bytes = [this](const flatbuffers::Vector<uint8_t>* v) {
    return v ? fbb_.CreateVector(v->data(), v->size())
             : flatbuffers::Offset<flatbuffers::Vector<uint8_t>>();
  };
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
      headers;
  if (m->headers() && m->headers()->size() > 0) {
    std::vector<flatbuffers::Offset<wire::Header>> list;
    list.reserve(m->headers()->size());
    for (const wire::Header* h : *m->headers()) {
      auto name = h->name() ? fbb_.CreateString(h->name())
                            : flatbuffers::Offset<flatbuffers::String>();
      list.push_back(wire::CreateHeader(fbb_, name, bytes(h->value())));
    }
    headers = fbb_.CreateVector(list);
  }
  auto key = bytes(m->key());
  auto payload = bytes(m->payload());
  deliveries_.push_back(wire::CreateDelivery(fbb_, offset, attempt,
                                             m->timestamp_ms(), key, headers,
                                             payload));
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
