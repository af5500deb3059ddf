#include "tls_pipe.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

namespace tern {

namespace {

int create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// Made once, on first use (thread-safe), and kept for the process.
const BIO_METHOD* pipe_method(int (*read)(BIO*, char*, int),
                              int (*write)(BIO*, const char*, int),
                              long (*ctrl)(BIO*, int, long, void*)) {
  static BIO_METHOD* method = [&] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern pipe");
    BIO_meth_set_read(m, read);
    BIO_meth_set_write(m, write);
    BIO_meth_set_ctrl(m, ctrl);
    BIO_meth_set_create(m, create);
    return m;
  }();
  return method;
}

}  // namespace

void TlsPipe::attach(SSL* ssl) {
  const BIO_METHOD* method = pipe_method(read, write, ctrl);
  BIO* in = BIO_new(method);
  BIO* out = BIO_new(method);
  BIO_set_data(in, this);
  BIO_set_data(out, this);
  SSL_set_bio(ssl, in, out);
}

int TlsPipe::read(BIO* bio, char* out, int n) {
  auto* self = static_cast<TlsPipe*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->in_left_ == 0) {
    BIO_set_retry_read(bio);  // "wait for more", not end of stream
    return -1;
  }
  size_t m = std::min(self->in_left_, size_t(n));
  std::memcpy(out, self->in_, m);
  self->in_ += m;
  self->in_left_ -= m;
  return int(m);
}

int TlsPipe::write(BIO* bio, const char* data, int n) {
  auto* self = static_cast<TlsPipe*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  self->out_.insert(self->out_.end(), data, data + n);
  return n;
}

long TlsPipe::ctrl(BIO*, int cmd, long, void*) {
  // Writes are complete at once, so a flush has nothing to do; OpenSSL's
  // other questions (kTLS, pending bytes, ...) get "no".
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

}  // namespace tern
