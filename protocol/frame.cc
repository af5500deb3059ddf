#include "frame.h"

#include <cstring>

namespace tern::frame {

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
    error_ = "frame failed verification (" + std::to_string(length) +
             " bytes)";
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
  *out = frame;
  return Result::kFrame;
}

const char* body_name(wire::Body type) {
  if (type > wire::Body::MAX) return "unknown";
  return wire::EnumNameBody(type);
}

}  // namespace tern::frame
