#include "frame.h"

#include <cstring>

namespace tern::frame {

namespace {

template <typename T>
bool aligned(const flatbuffers::Vector<const T*>* v) {
  return v == nullptr ||
         reinterpret_cast<uintptr_t>(v->Data()) % alignof(T) == 0;
}

// The Verifier (2.0.8) checks a vector's length field for 4-byte alignment
// only, not that the 8-byte structs after it are 8-byte aligned. Reading them
// in place would then be misaligned loads, so frames holding struct vectors
// are checked here; every builder aligns them, only a hand-made frame does not.
bool struct_vectors_aligned(const wire::Frame& frame) {
  switch (frame.body_type()) {
    case wire::Body::Ack:
      return aligned(frame.body_as_Ack()->ranges());
    case wire::Body::Nack:
      return aligned(frame.body_as_Nack()->ranges());
    case wire::Body::PublishAck:
      return aligned(frame.body_as_PublishAck()->results());
    default:
      return true;
  }
}

}  // namespace

void finish(flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
            flatbuffers::Offset<void> body) {
  fbb.FinishSizePrefixed(wire::CreateFrame(fbb, type, body));
}

void build_error(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                 wire::ErrorCode code, const std::string& message) {
  auto text = fbb.CreateString(message);
  finish(fbb, wire::Body::Error,
         wire::CreateError(fbb, request_id, code, text).Union());
}

FrameReader::FrameReader(uint32_t max_frame_bytes)
    : max_frame_bytes_(max_frame_bytes) {}

uint8_t* FrameReader::prepare(size_t n) {
  // Move the unread tail to the front once it is cheap relative to the work
  // already done, so the buffer does not creep forward forever.
  if (start_ > 0 && (start_ == end_ || start_ >= buf_.size() / 2)) {
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  if (buf_.size() - end_ < n) buf_.resize(end_ + n);
  return buf_.data() + end_;
}

void FrameReader::commit(size_t n) { end_ += n; }

void FrameReader::feed(const void* data, size_t n) {
  if (n == 0) return;  // prepare(0) may be null: memcpy must not see it
  std::memcpy(prepare(n), data, n);
  commit(n);
}

FrameReader::Result FrameReader::next(const wire::Frame** out) {
  if (end_ - start_ < kLengthBytes) return Result::kNeedMore;
  const uint8_t* p = buf_.data() + start_;
  uint32_t length = uint32_t(p[0]) | uint32_t(p[1]) << 8 |
                    uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  if (length > max_frame_bytes_) {
    error_ = "frame of " + std::to_string(length) +
             " bytes exceeds the maximum of " +
             std::to_string(max_frame_bytes_);
    return Result::kTooLarge;
  }
  size_t total = kLengthBytes + length;
  if (end_ - start_ < total) return Result::kNeedMore;
  start_ += total;

  // FlatBuffers reads scalars in place, so the frame must sit at an 8-byte
  // boundary. Frames from well-behaved writers are multiples of 8 long and so
  // stay aligned; anything else is copied once.
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0) {
    aligned_.resize((total + 7) / 8);
    std::memcpy(aligned_.data(), p, total);
    p = reinterpret_cast<const uint8_t*>(aligned_.data());
  }
  flatbuffers::Verifier verifier(p, total);
  if (length == 0 || !wire::VerifySizePrefixedFrameBuffer(verifier)) {
    error_ = "frame failed verification (" + std::to_string(length) + " bytes)";
    return Result::kInvalid;
  }
  const wire::Frame* frame = wire::GetSizePrefixedFrame(p);
  auto type = frame->body_type();
  if (type > wire::Body::MAX) {
    error_ = "unknown frame type " + std::to_string(int(type));
    return Result::kUnknownType;
  }
  if (type == wire::Body::NONE || frame->body() == nullptr) {
    error_ = "frame has no body";
    return Result::kInvalid;
  }
  if (!struct_vectors_aligned(*frame)) {
    error_ = std::string(body_name(type)) +
             " frame holds a misaligned vector of structs";
    return Result::kInvalid;
  }
  *out = frame;
  frame_bytes_ = length;
  return Result::kFrame;
}

const char* body_name(wire::Body type) {
  if (type > wire::Body::MAX) return "unknown";
  return wire::EnumNameBody(type);
}

}  // namespace tern::frame
