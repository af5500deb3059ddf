// TlsStream: the client's TLS over a connected, blocking socket.
//
// OpenSSL reads and writes our buffers here (TlsPipe) as in the broker: the
// socket I/O stays ours (recv, and send with MSG_NOSIGNAL, so a broker going
// away is an error, never SIGPIPE), and shutting the socket down still wakes a
// reader in recv() and a writer in send().
//
// Threads. The connection's reader thread calls read(); user threads call
// write(), one at a time (the Connection's write_mu_). An SSL object must
// never be used by two threads at once, so every SSL_* call happens under
// ssl_mu_, and no thread blocks on the socket while holding it. Ciphertext
// leaves in the order OpenSSL produced it: it is taken out under ssl_mu_ and
// send_mu_ is taken before ssl_mu_ is let go.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "tern/client.h"
#include "tls_pipe.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace tern::net {

// Whether `options` ask for TLS (ClientOptions::tls or any TLS file).
bool wants_tls(const ClientOptions& options);

class TlsStream {
 public:
  // Runs the handshake on `fd` (connected to `address`, blocking) before
  // `deadline`. Throws Error(kConnectFailed), e.g. "cannot connect to
  // 127.0.0.1:7411: TLS handshake failed: certificate verify failed
  // (unable to get local issuer certificate)". Does not close `fd`.
  TlsStream(int fd, const std::string& address, const ClientOptions& options,
            std::chrono::steady_clock::time_point deadline);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Decrypted bytes into `buf`, waiting for them: > 0 bytes, 0 once the
  // broker closed the connection, -1 with *error saying why.
  ssize_t read(void* buf, size_t n, std::string* error);
  // Encrypts and sends all `n` bytes. Empty, or what failed.
  std::string write(const void* data, size_t n);

 private:
  // Sends the ciphertext OpenSSL has produced; called with ssl_mu_ held,
  // which `lock` releases once send_mu_ is taken. Empty, or what failed.
  std::string send_output(std::unique_lock<std::mutex>& lock);

  const int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  TlsPipe pipe_;  // under ssl_mu_
  // What ended the session, as the reader found it (e.g. the broker's
  // alert), under ssl_mu_: OpenSSL's error queue is per thread, so a writer
  // that finds the session ended has only this to say why.
  std::string failure_;
  std::mutex ssl_mu_;
  std::mutex send_mu_;
  std::vector<char> outgoing_;  // under send_mu_
  std::vector<char> incoming_;  // the reader's only
};

}  // namespace tern::net
