// Connection: one client socket. Reads bytes into a FrameReader and hands each
// verified frame to its Session; queues outgoing frames and writes them with
// one uv_write per loop iteration (the broker calls flush() from its check
// phase), so a burst of confirms and deliveries costs one syscall. Frames are
// queued as the builders' own buffers and written from there: no copy.
//
// With TLS (tls.h) the socket carries ciphertext: reads go through the
// TlsSession into the same FrameReader, and flush() encrypts the queued
// frames into one buffer before its one uv_write. Without TLS none of that
// runs and the path above is unchanged.
//
// Lifetime: the Broker owns every Connection. close() starts uv_close; the
// Broker destroys the object in the close callback, never earlier, so libuv
// callbacks always find it alive.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "frame.h"
#include "memory_budget.h"
#include "session.h"
#include "tls.h"

namespace tern {

class Broker;

class Connection {
 public:
  // `tls`: the context of a TLS listener, null for plaintext.
  Connection(Broker& broker, uint64_t id, uint32_t max_frame_bytes,
             size_t max_output_bytes, SSL_CTX* tls = nullptr);
  ~Connection();  // its output no longer counts against the memory budget

  uint64_t id() const { return id_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  uv_tcp_t* tcp() { return &tcp_; }
  Session& session() { return session_; }
  const std::string& peer() const { return peer_; }  // address:port
  bool tls() const { return tls_ != nullptr; }
  // Since it was accepted (for /api/connections).
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  const std::string& ip() const { return ip_; }      // empty until start()
  // The subject of the client certificate verified under mutual TLS, in
  // RFC 2253 one-line form ("CN=orders,O=Acme"); empty without one.
  const std::string& peer_subject() const;
  bool closing() const { return closing_; }
  // The largest frame this connection accepts, and the broker sends on it.
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }

  void start();  // begins reading; the socket is accepted already
  // Heartbeats (Hello.heartbeat_ms): from now on the client sends a frame
  // at least every `interval_ms`; Broker::close_dead_connections closes it
  // once it stayed silent for two intervals.
  void expect_heartbeat(uint64_t interval_ms);
  // Whether it has been silent (nothing read) for two heartbeat intervals.
  bool heartbeat_missed(uint64_t now_ms) const {
    return heartbeat_ms_ > 0 && !paused_ &&
           now_ms - last_input_ms_ > 2 * heartbeat_ms_;
  }
  // While a login is checked nothing more is read; frames already received
  // wait in the reader until resume_reading().
  void pause_reading();
  void resume_reading();
  bool reading_paused() const { return paused_; }

  // True while the socket is not draining: more than a quarter of the output
  // limit is waiting, counting `extra` bytes about to be queued, or the
  // output of all connections is at its share of the memory budget
  // (MemoryBudget::delivery_must_wait). Deliveries pause for a congested
  // connection and resume when its writes complete, so a consumer that
  // stops reading costs the broker a bounded buffer.
  bool congested(size_t extra = 0) const {
    size_t waiting = output_waiting();
    return waiting + extra >= max_output_bytes_ / 4 ||
           memory_.delivery_must_wait(waiting, extra);
  }

  // Bytes queued and being written.
  size_t output_waiting() const { return queued_bytes_ + writing_bytes_; }

  // Queues one whole frame for the next flush().
  void send(flatbuffers::DetachedBuffer frame);
  void send(flatbuffers::FlatBufferBuilder& fbb) { send(fbb.Release()); }
  // Writes what is queued. Called once per loop iteration.
  void flush();

  // A reply that comes later (after a commit, or a lookup in the store) is
  // owed from the request on, and sent with send_owed(). A client that
  // shuts down its sending side (a half-close: it has nothing more to say)
  // still gets every reply owed; the broker closes once they are written.
  void owe_reply() { ++owed_replies_; }
  void send_owed(flatbuffers::FlatBufferBuilder& fbb);

  // Sends an Error frame, then closes once it is written.
  void fail(uint64_t request_id, wire::ErrorCode code,
            const std::string& message);
  void close();

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);
  void read_frames();
  // TLS: what arrived on the socket, decrypted into reader_.
  void on_tls_read(size_t n);
  // TLS: encrypts the queued frames (once the handshake is done) and writes
  // them, with any handshake records, in one uv_write.
  void flush_tls();
  // The client half-closed: nothing more is read, its consumers end, and the
  // connection closes once the replies owed are written.
  void on_end_of_input();
  // Writes what is queued, then closes.
  void close_when_written();

  Broker& broker_;
  MemoryBudget& memory_;  // counts output_waiting() until close()
  const MemoryBudget::ConnectionPlace memory_place_;
  const uint64_t id_;
  const uint32_t max_frame_bytes_;
  const size_t max_output_bytes_;
  uv_tcp_t tcp_;
  std::string peer_;
  std::string ip_;
  frame::FrameReader reader_;
  Session session_;

  std::vector<flatbuffers::DetachedBuffer> queued_;   // for the next flush()
  std::vector<flatbuffers::DetachedBuffer> writing_;  // libuv's, until on_write
  size_t queued_bytes_ = 0;
  size_t writing_bytes_ = 0;
  std::vector<uv_buf_t> bufs_;
  // TLS only: the session, the ciphertext read buffer, and the plaintext of
  // small frames gathered into one record.
  std::unique_ptr<TlsSession> tls_;
  std::vector<char> tls_in_;
  std::vector<uint8_t> tls_plain_;
  bool tls_first_read_ = true;
  // After a failed handshake: the alert and our FIN are on their way, and
  // what the client still sends is read and dropped until it closes.
  bool lingering_ = false;
  uv_shutdown_t shutdown_req_;
  uv_write_t write_req_;
  bool write_in_flight_ = false;
  bool overflowed_ = false;   // queued_ passed max_output_bytes_
  bool close_after_write_ = false;
  bool input_ended_ = false;  // the client half-closed
  bool paused_ = false;
  size_t owed_replies_ = 0;
  uint64_t heartbeat_ms_ = 0;   // 0: none agreed
  uint64_t last_input_ms_ = 0;  // loop time of the last read
  uint64_t bytes_in_ = 0;       // as read from the socket
  uint64_t bytes_out_ = 0;      // frames handed to the socket (plaintext)
  bool closing_ = false;
};

}  // namespace tern
