// DeliverFrame: builds one Deliver frame for one consumer, a message at a
// time, straight from stored records: their fields are copied once, into the
// frame.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frame.h"

namespace tern {

class DeliverFrame {
 public:
  void add(uint64_t offset, uint32_t attempt,
           const wire::StoredMessage& message);
  size_t count() const { return deliveries_.size(); }
  size_t bytes() const { return fbb_.GetSize(); }
  // At least what add(message) adds to bytes(): a frame that already holds
  // messages is sent before it would pass its limit.
  static size_t size_bound(const wire::StoredMessage& message);

  // Finishes the frame and hands its bytes over; the builder starts afresh.
  flatbuffers::DetachedBuffer finish(uint64_t consumer_id,
                                     const std::string& topic,
                                     const std::string& subscription);

 private:
  flatbuffers::FlatBufferBuilder fbb_{16 * 1024};
  std::vector<flatbuffers::Offset<wire::Delivery>> deliveries_;
};

}  // namespace tern
