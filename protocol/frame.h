// Framing for the Tern wire protocol, shared by the broker and the client.
//
// On the wire every frame is a 4-byte little-endian length followed by that
// many bytes of one FlatBuffer whose root is wire::Frame. This is exactly what
// FlatBufferBuilder::FinishSizePrefixed writes, so encoding is one call.
//
// FrameReader is the decoding side: bytes go in as they arrive from a socket,
// whole verified frames come out. Nothing reaches the caller unverified: the
// length is checked against a maximum before anything is buffered, the
// FlatBuffer is run through the Verifier, and the union type must be one this
// build knows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tern_generated.h"

namespace tern::frame {

constexpr uint32_t kProtocolVersion = 1;
constexpr uint32_t kDefaultMaxFrameBytes = 16u << 20;  // 16 MiB
constexpr size_t kLengthBytes = 4;
// A Publish frame may be at most the maximum frame size less this much: the
// room the broker needs to deliver any message of it, wrapped in a Deliver
// frame (topic, subscription) and perhaps dead-lettered (tern-dlq-*
// headers), within that same maximum. So no frame a broker sends is larger
// than the maximum it announced.
constexpr uint32_t kDeliverReserveBytes = 4096;

// Finishes `fbb` as one complete frame (length prefix included) holding `body`.
// Send fbb.GetBufferPointer() / fbb.GetSize() as they are.
void finish(flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
            flatbuffers::Offset<void> body);

// Convenience for the small frames: builds a whole Error frame.
void build_error(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                 wire::ErrorCode code, const std::string& message);

class FrameReader {
 public:
  enum class Result { kFrame, kNeedMore, kTooLarge, kInvalid, kUnknownType };

  explicit FrameReader(uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

  // Zero-copy feeding: prepare() returns room for at least `n` bytes, and
  // commit() says how many of them were filled (e.g. by read()).
  uint8_t* prepare(size_t n);
  void commit(size_t n);
  // Copying feed, for callers whose bytes live elsewhere.
  void feed(const void* data, size_t n);

  // Takes the next complete frame. On kFrame, *out points into the reader and
  // stays valid until the next call to prepare(), feed() or next(). On
  // kTooLarge / kInvalid / kUnknownType, error() says why; the stream cannot be resynchronised
  // and the connection should be closed.
  Result next(const wire::Frame** out);
  const std::string& error() const { return error_; }
  // The length (without the prefix) of the frame next() returned last.
  uint32_t frame_bytes() const { return frame_bytes_; }

  // Bytes received but not yet returned as frames.
  size_t buffered() const { return end_ - start_; }

 private:
  uint32_t max_frame_bytes_;
  std::vector<uint8_t> buf_;
  size_t start_ = 0;  // first byte not yet returned as a frame
  size_t end_ = 0;    // one past the last byte received
  std::vector<uint64_t> aligned_;  // scratch for frames that arrive misaligned
  std::string error_;
  uint32_t frame_bytes_ = 0;
};

// Human-readable name of a frame type, for errors and logs.
const char* body_name(wire::Body type);

}  // namespace tern::frame
