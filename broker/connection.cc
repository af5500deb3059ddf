#include "connection.h"

#include "broker.h"
#include "log.h"

namespace tern {

namespace {
constexpr size_t kReadChunk = 64 * 1024;
// Frames smaller than a TLS record are gathered into one, so a burst of
// confirms costs one record (and one MAC), not one each.
constexpr size_t kTlsRecord = 16 * 1024;
// Every TLS connection starts with a handshake record.
constexpr char kTlsHandshakeRecord = 0x16;

// The peer's IP address ("127.0.0.1", "::1") and "address:port" for logs
// ("[::1]:5000" for IPv6); "unknown" if the socket has no peer.
void peer_name(uv_tcp_t* tcp, std::string* ip, std::string* peer) {
  sockaddr_storage addr;
  int len = sizeof addr;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    *ip = *peer = "unknown";
    return;
  }
  char host[64] = "";
  if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    uv_ip6_name(a, host, sizeof host);
    *ip = host;
    *peer = "[" + *ip + "]:" + std::to_string(ntohs(a->sin6_port));
    return;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&addr);
  uv_ip4_name(a, host, sizeof host);
  *ip = host;
  *peer = *ip + ":" + std::to_string(ntohs(a->sin_port));
}

wire::ErrorCode code_for(frame::FrameReader::Result result) {
  switch (result) {
    case frame::FrameReader::Result::kTooLarge:
      return wire::ErrorCode::FrameTooLarge;
    case frame::FrameReader::Result::kUnknownType:
      return wire::ErrorCode::UnknownFrameType;
    default:
      return wire::ErrorCode::BadFrame;
  }
}
}  // namespace

Connection::Connection(Broker& broker, uint64_t id, uint32_t max_frame_bytes,
                       size_t max_output_bytes, SSL_CTX* tls)
    : broker_(broker),
      memory_(broker.memory()),
      memory_place_(memory_.enter(*this)),
      id_(id),
      max_frame_bytes_(max_frame_bytes),
      max_output_bytes_(max_output_bytes),
      reader_(max_frame_bytes),
      session_(broker, *this) {
  tcp_.data = this;
  write_req_.data = this;
  if (tls != nullptr) {
    tls_ = std::make_unique<TlsSession>(tls);
    tls_in_.resize(kReadChunk);
  }
}

Connection::~Connection() {
  memory_.remove_output(output_waiting());
  memory_.leave(memory_place_);
}

const std::string& Connection::peer_subject() const {
  static const std::string none;
  return tls_ ? tls_->peer_subject() : none;
}

void Connection::start() {
  peer_name(&tcp_, &ip_, &peer_);
  uv_tcp_nodelay(&tcp_, 1);
  uv_read_start(stream(), on_alloc, on_read);
}

void Connection::pause_reading() {
  paused_ = true;
  uv_read_stop(stream());
}

void Connection::expect_heartbeat(uint64_t interval_ms) {
  heartbeat_ms_ = interval_ms;
  last_input_ms_ = broker_.now_ms();
}

void Connection::resume_reading() {
  paused_ = false;
  uv_read_start(stream(), on_alloc, on_read);
  read_frames();
}

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self->tls_) {
    buf->base = self->tls_in_.data();
    buf->len = self->tls_in_.size();
    return;
  }
  // Read straight into the frame reader: no copy between socket and decoder.
  buf->base = reinterpret_cast<char*>(self->reader_.prepare(kReadChunk));
  buf->len = kReadChunk;
}

void Connection::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t*) {
  auto* self = static_cast<Connection*>(stream->data);
  if (self->lingering_) {
    if (n < 0) self->close();
    return;
  }
  if (n == UV_EOF) return self->on_end_of_input();
  if (n < 0) {
    LOG_INFO("connection %s: read failed: %s", self->peer_.c_str(),
             uv_strerror(int(n)));
    self->close();
    return;
  }
  if (n > 0) {
    self->last_input_ms_ = self->broker_.now_ms();
    self->bytes_in_ += uint64_t(n);
  }
  if (self->tls_) return self->on_tls_read(size_t(n));
  self->reader_.commit(size_t(n));
  self->read_frames();
}

void Connection::on_tls_read(size_t n) {
  if (n == 0) return;
  if (tls_first_read_) {
    tls_first_read_ = false;
    // Fail fast: OpenSSL would wait for the rest of a "record" that a
    // plaintext client never sends.
    if (tls_in_[0] != kTlsHandshakeRecord) {
      LOG_WARN(
          "connection %s: not TLS (plaintext client on a TLS "
          "listener?); closing",
          peer_.c_str());
      close();
      return;
    }
  }
  bool was_done = tls_->handshake_done();
  TlsSession::Result result = tls_->receive(tls_in_.data(), n, &reader_);
  if (!was_done && tls_->handshake_done()) {
    const std::string& subject = tls_->peer_subject();
    LOG_DEBUG("connection %s: %s%s%s", peer_.c_str(), tls_->describe().c_str(),
              subject.empty() ? "" : ", client certificate ", subject.c_str());
  }
  if (result == TlsSession::Result::kFailed) {
    LOG_WARN("connection %s: TLS %s: %s", peer_.c_str(),
             was_done ? "failed" : "handshake failed", tls_->error().c_str());
    // The alert OpenSSL wrote tells the client why.
    if (was_done) {
      uv_read_stop(stream());
      close_when_written();
      return;
    }
    // Closing with the client's next records unread would send a reset,
    // which can overtake the alert and hide it: send the alert and then our
    // FIN, and drop what still comes until the client closes (or the Hello
    // deadline does).
    lingering_ = true;
    flush();
    uv_shutdown(&shutdown_req_, stream(), [](uv_shutdown_t*, int) {});
    return;
  }
  flush_tls();  // handshake records, if any
  read_frames();
  if (result == TlsSession::Result::kClosed && !closing_) on_end_of_input();
}

void Connection::read_frames() {
  while (!closing_ && !close_after_write_ && !paused_) {
    const wire::Frame* frame;
    auto result = reader_.next(&frame);
    if (result == frame::FrameReader::Result::kNeedMore) return;
    if (result != frame::FrameReader::Result::kFrame) {
      LOG_WARN("connection %s: %s", peer_.c_str(), reader_.error().c_str());
      fail(0, code_for(result), reader_.error());
      return;
    }
    session_.on_frame(*frame, reader_.frame_bytes());
  }
}

void Connection::on_end_of_input() {
  uv_read_stop(stream());
  input_ended_ = true;
  // It can no longer ack: what its consumers hold goes to others now.
  session_.end();
  if (owed_replies_ == 0) close_when_written();
}

void Connection::send_owed(flatbuffers::FlatBufferBuilder& fbb) {
  send(fbb);
  --owed_replies_;
  if (input_ended_ && owed_replies_ == 0) close_when_written();
}

void Connection::send(flatbuffers::DetachedBuffer frame) {
  if (closing_ || overflowed_) return;
  size_t waiting = output_waiting();
  // A connection that is ending is let through its last frames (the Error
  // that says why, replies owed): they are bounded by what it asked before.
  bool over_budget =
      !close_after_write_ && memory_.reply_overflows(waiting, frame.size());
  if (waiting + frame.size() > max_output_bytes_ || over_budget) {
    // The client is not reading, and what piles up is not deliveries (those
    // pause, see congested()) but replies to what it keeps sending. Closing
    // it is the only way to keep memory bounded; its unacked messages go back
    // to other consumers.
    overflowed_ = true;
    return;
  }
  queued_bytes_ += frame.size();
  memory_.add_output(frame.size());
  queued_.push_back(std::move(frame));
}

void Connection::flush() {
  if (closing_) return;
  if (overflowed_) {
    overflowed_ = false;
    size_t waiting = output_waiting();
    queued_.clear();
    memory_.remove_output(queued_bytes_);
    queued_bytes_ = 0;
    log_event(LogLevel::kWarn, "slow_consumer_closed",
              {{"connection", std::to_string(id_)},
               {"peer", peer_},
               {"user", session_.user()},
               {"client", session_.client_name()},
               {"waiting_bytes", std::to_string(waiting)}},
              "connection %s: not reading, with %zu bytes waiting to be "
              "written (limit %zu; all connections' output %zu, memory "
              "budget %zu); closing",
              peer_.c_str(), waiting, max_output_bytes_, memory_.output(),
              memory_.limit());
    fail(0, wire::ErrorCode::LimitExceeded,
         "client is not reading: output buffer limit reached");
    return;
  }
  if (tls_) return flush_tls();
  if (write_in_flight_ || queued_.empty()) return;
  writing_.swap(queued_);
  writing_bytes_ = queued_bytes_;
  bytes_out_ += queued_bytes_;
  queued_bytes_ = 0;
  bufs_.clear();
  for (auto& frame : writing_)
    bufs_.push_back(uv_buf_init(reinterpret_cast<char*>(frame.data()),
                                unsigned(frame.size())));
  int rc = uv_write(&write_req_, stream(), bufs_.data(),
                    unsigned(bufs_.size()), on_write);
  if (rc != 0) {
    LOG_INFO("connection %s: write failed: %s", peer_.c_str(),
             uv_strerror(rc));
    close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::flush_tls() {
  if (write_in_flight_) return;
  size_t plain_bytes = 0;
  // Before the handshake is done nothing can be encrypted: frames wait
  // (and a connection closed meanwhile just drops them).
  if (tls_->handshake_done() && !queued_.empty()) {
    bool ok = true;
    auto encrypt_gathered = [&] {
      ok = ok && tls_->encrypt(tls_plain_.data(), tls_plain_.size());
      tls_plain_.clear();
    };
    for (auto& frame : queued_) {
      if (tls_plain_.size() + frame.size() > kTlsRecord) encrypt_gathered();
      if (frame.size() >= kTlsRecord) {
        ok = ok && tls_->encrypt(frame.data(), frame.size());
        continue;
      }
      tls_plain_.insert(tls_plain_.end(), frame.data(),
                        frame.data() + frame.size());
    }
    encrypt_gathered();
    plain_bytes = queued_bytes_;
    bytes_out_ += plain_bytes;
    queued_.clear();
    queued_bytes_ = 0;
    if (!ok) {
      memory_.remove_output(plain_bytes);
      LOG_WARN("connection %s: TLS failed: %s", peer_.c_str(),
               tls_->error().c_str());
      close();
      return;
    }
  }
  if (tls_->output_size() == 0) return;
  size_t n = 0;
  char* ciphertext = tls_->take_output(&n);
  // Counted as the plaintext it carries, as without TLS, so congested() and
  // the output limit mean the same.
  writing_bytes_ = plain_bytes;
  uv_buf_t buf = uv_buf_init(ciphertext, unsigned(n));
  int rc = uv_write(&write_req_, stream(), &buf, 1, on_write);
  if (rc != 0) {
    LOG_INFO("connection %s: write failed: %s", peer_.c_str(), uv_strerror(rc));
    close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<Connection*>(req->data);
  self->write_in_flight_ = false;
  self->writing_.clear();
  self->memory_.remove_output(self->writing_bytes_);
  self->writing_bytes_ = 0;
  if (self->tls_) self->tls_->output_written();
  self->session_.on_drained();
  if (status < 0) {
    if (status != UV_ECANCELED)
      LOG_INFO("connection %s: write failed: %s", self->peer_.c_str(),
               uv_strerror(status));
    self->close();
    return;
  }
  // With TLS, handshake records may have been written meanwhile.
  bool more =
      !self->queued_.empty() || (self->tls_ && self->tls_->output_size() > 0);
  if (more) self->flush();
  if (!self->write_in_flight_ && self->close_after_write_) self->close();
}

void Connection::fail(uint64_t request_id, wire::ErrorCode code,
                      const std::string& message) {
  if (closing_ || close_after_write_) return;
  close_after_write_ = true;  // the Error goes out whatever the budget
  flatbuffers::FlatBufferBuilder fbb(256);
  broker_.build_error(fbb, request_id, code, message);
  send(fbb);
  uv_read_stop(stream());
  close_when_written();
}

void Connection::close_when_written() {
  close_after_write_ = true;
  flush();
  if (!write_in_flight_) close();
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  // Its buffers go with the handle, within an iteration: the budget counts
  // them no more, so shed() does not close others for them.
  memory_.remove_output(output_waiting());
  queued_bytes_ = writing_bytes_ = 0;
  session_.end();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
}

void Connection::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  self->broker_.forget(*self);  // destroys self
}

}  // namespace tern
