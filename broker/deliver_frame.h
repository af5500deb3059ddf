// DeliverFrame: builds one Deliver frame for one consumer, a message at a
// time, straight from stored records. The record is decoded in place and its
// fields copied once, into the frame.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frame.h"

namespace tern {

class DeliverFrame {
 public:
  // Adds one delivery; returns false (and adds nothing) if the record is
  // damaged.
  bool add(uint64_t offset, uint32_t attempt, const std::string& record);
  size_t count() const { return deliveries_.size(); }
  size_t bytes() const { return fbb_.GetSize(); }

  // Finishes the frame and returns its bytes (valid until the next add()).
  std::pair<const uint8_t*, size_t> finish(uint64_t consumer_id,
                                           const std::string& topic,
                                           const std::string& subscription);
  void reset();

 private:
  flatbuffers::FlatBufferBuilder fbb_{64 * 1024};
  std::vector<flatbuffers::Offset<wire::Delivery>> deliveries_;
};

}  // namespace tern
