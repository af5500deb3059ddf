// TLS for the broker's connections, with OpenSSL reading and writing our
// buffers (TlsPipe, not the socket), so that nothing on the loop thread ever
// blocks in OpenSSL.
//
// TlsContext is the server's side of it: the certificate, key and (for
// mutual TLS) client CA, as one SSL_CTX, loaded at start and again on
// SIGHUP. TlsSession is one connection's TLS state: the Connection hands it
// the ciphertext it read from the socket and gets back plaintext (straight
// into its FrameReader); it hands it plaintext frames and gets back the
// ciphertext to write. The socket itself stays libuv's.
//
// SSL_CTX is reference counted: each session holds its own reference, so a
// context replaced on SIGHUP lives on until the last connection that started
// with it is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "frame.h"
#include "tls_pipe.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace tern {

// "" if the TLS settings go together (a certificate needs its key and the
// reverse; a client CA needs a certificate), else what is wrong, in one line.
std::string tls_config_error(const Config& config);

class TlsContext {
 public:
  TlsContext() = default;
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Loads what `config` names (nothing, without tls_cert: plaintext).
  // False, keeping the context it had, with *error naming the file and
  // OpenSSL's reason.
  bool load(const Config& config, std::string* error);
  // Null: the broker speaks plaintext.
  SSL_CTX* get() const { return ctx_; }
  // For the log: "TLS", "mutual TLS (client certificates required)" or
  // "plaintext".
  std::string describe() const;

 private:
  SSL_CTX* ctx_ = nullptr;
  bool mutual_ = false;
};

// SIGHUP (Broker::reload): loads the TLS files `fresh` names into *context;
// on failure logs why and keeps the old one. New connections use the new
// context; existing ones keep theirs. TLS is not turned on or off here (that
// needs a restart). Returns what goes into the log line.
std::string reload_tls(const Config& fresh, TlsContext* context);

class TlsSession {
 public:
  enum class Result {
    kOk,      // all there was is decrypted; more may come
    kClosed,  // the client said close_notify: no more input
    kFailed,  // error() says why; the connection must close
  };

  explicit TlsSession(SSL_CTX* ctx);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext the socket received, then runs the handshake or decrypts
  // whatever complete records arrived into `reader`.
  Result receive(const char* data, size_t n, frame::FrameReader* reader);
  bool handshake_done() const { return handshake_done_; }
  // Encrypts `n` plaintext bytes into the output. False after a failure.
  bool encrypt(const uint8_t* data, size_t n);
  // Ciphertext waiting to be written (handshake records, encrypted frames).
  size_t output_size();
  // Moves that ciphertext into the session's write buffer and returns it,
  // *n bytes; valid until the next call, so one write at a time.
  char* take_output(size_t* n);
  // The write of what take_output() returned is done.
  void output_written();

  const std::string& error() const { return error_; }
  // The verified client certificate's subject, RFC 2253 one-line form
  // ("CN=orders,O=Acme"); empty without one.
  const std::string& peer_subject() const { return peer_subject_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384", for the log.
  std::string describe() const;

 private:
  // Why the last SSL_* call failed, from OpenSSL's error queue and the
  // certificate check; clears the queue.
  std::string failure(int ssl_error);

  SSL* ssl_ = nullptr;
  Result decrypt(frame::FrameReader* reader);

  TlsPipe pipe_;
  // What take_output() handed out, until output_written(); its capacity is
  // kept between writes unless a burst grew it large.
  std::vector<char> written_;
  bool handshake_done_ = false;
  bool failed_ = false;
  std::string error_;
  std::string peer_subject_;
};

}  // namespace tern
