// TlsPipe: the ciphertext side of an OpenSSL connection as plain buffers of
// the caller's, for the broker (broker/tls.cc) and the client
// (client/tls_stream.cc), which both do their own socket I/O.
//
// OpenSSL reads what give() was handed and appends what it writes to
// output(). A memory BIO would do the same with a copy more each way, and
// zero its buffer whenever it grows; here received bytes are read in place
// and output() is the caller's to send from (swap it out, send, clear).
//
// Not thread-safe: used under whatever serialises the SSL object's calls.
#pragma once

#include <cstddef>
#include <vector>

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace tern {

class TlsPipe {
 public:
  TlsPipe() = default;
  TlsPipe(const TlsPipe&) = delete;  // the BIOs point at this object
  TlsPipe& operator=(const TlsPipe&) = delete;

  // Gives `ssl` its two BIOs (it owns them; this object must outlive it).
  void attach(SSL* ssl);
  // Ciphertext received. OpenSSL reads it until it is used up (SSL_read or
  // SSL_do_handshake then wants more); `data` must stay valid until then.
  void give(const char* data, size_t n) {
    in_ = data;
    in_left_ = n;
  }
  size_t unread() const { return in_left_; }
  // Ciphertext OpenSSL has written and nobody has taken yet.
  std::vector<char>& output() { return out_; }

 private:
  static int read(BIO* bio, char* out, int n);
  static int write(BIO* bio, const char* data, int n);
  static long ctrl(BIO* bio, int cmd, long num, void* ptr);

  const char* in_ = nullptr;
  size_t in_left_ = 0;
  std::vector<char> out_;
};

}  // namespace tern
