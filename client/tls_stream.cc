#include "tls_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include "openssl_errors.h"
#include "socket.h"

namespace tern::net {
namespace {

constexpr size_t kReceiveChunk = 64 * 1024;
// The send buffer keeps its size between writes, up to this.
constexpr size_t kKeptOutputBytes = 4 * 1024 * 1024;

bool is_ip_address(const std::string& host) {
  unsigned char scratch[16];
  return inet_pton(AF_INET, host.c_str(), scratch) == 1 ||
         inet_pton(AF_INET6, host.c_str(), scratch) == 1;
}

// The client's SSL_CTX: the CA to trust, and its own certificate for
// mutual TLS. Throws what `fail` makes of a file that cannot be read.
template <typename Fail>
SSL_CTX* make_context(const ClientOptions& options, Fail fail) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr)
    throw fail("cannot create a TLS context: " + openssl_errors());
  auto refuse = [&](const std::string& what) {
    std::string why = what + ": " + openssl_errors();
    SSL_CTX_free(ctx);
    return fail(why);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A broker closing without close_notify has simply closed.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const std::string& ca = options.tls_ca_file;
  if (ca.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                 : SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
    throw refuse(ca.empty() ? "cannot load the system's CA certificates"
                            : "cannot load TLS CA file " + ca);
  const std::string& cert = options.tls_cert_file;
  const std::string& key = options.tls_key_file;
  if (cert.empty() != key.empty()) {
    SSL_CTX_free(ctx);
    throw fail("a TLS client certificate needs its key, and the reverse");
  }
  if (!cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
      throw refuse("cannot load TLS certificate " + cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
      throw refuse("cannot load TLS key " + key);
  }
  return ctx;
}

}  // namespace

bool wants_tls(const ClientOptions& options) {
  return options.tls || !options.tls_ca_file.empty() ||
         !options.tls_cert_file.empty() || !options.tls_key_file.empty() ||
         !options.tls_server_name.empty();
}

TlsStream::TlsStream(int fd, const std::string& address,
                     const ClientOptions& options,
                     std::chrono::steady_clock::time_point deadline)
    : fd_(fd) {
  auto fail = [&](const std::string& why) {
    return Error(ErrorCode::kConnectFailed,
                 "cannot connect to " + address + ": " + why);
  };
  ERR_clear_error();
  ctx_ = make_context(options, fail);
  try {
    ssl_ = SSL_new(ctx_);
    pipe_.attach(ssl_);
    SSL_set_connect_state(ssl_);

    std::string name = options.tls_server_name;
    if (name.empty()) {
      std::string port;
      split_address(address, &name, &port);
    }
    // The certificate must name what we connected to: an IP address in
    // its IP SANs, a host name in its DNS SANs (and sent as SNI).
    if (is_ip_address(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());
    }

    std::unique_lock<std::mutex> lock(ssl_mu_);
    for (;;) {
      int r = SSL_do_handshake(ssl_);
      int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
      std::string why;
      if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
        why = openssl_errors();
        long verify = SSL_get_verify_result(ssl_);
        if (verify != X509_V_OK)
          why +=
              std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        if (why.find("wrong version number") != std::string::npos ||
            why.find("packet length too long") != std::string::npos)
          why += " (is the broker serving TLS?)";
      }
      // Even a failed handshake may have an alert to send: the broker's log
      // then says why too.
      std::string send_error = send_output(lock);
      lock.lock();
      if (!why.empty()) throw fail("TLS handshake failed: " + why);
      if (!send_error.empty())
        throw fail("TLS handshake failed: " + send_error);
      if (r == 1) break;

      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      int ready = left.count() > 0 ? ::poll(&p, 1, int(left.count())) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0)
        throw fail("TLS handshake timed out after " +
                   std::to_string(options.timeout.count()) + " ms");
      incoming_.resize(kReceiveChunk);
      ssize_t got = ::recv(fd_, incoming_.data(), incoming_.size(), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw fail(std::string("TLS handshake failed: ") +
                   (got == 0 ? "the broker closed the connection (is it "
                               "serving TLS?)"
                             : std::strerror(errno)));
      pipe_.give(incoming_.data(), size_t(got));
    }
  } catch (...) {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    throw;
  }
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

ssize_t TlsStream::read(void* buf, size_t n, std::string* error) {
  auto* out = static_cast<char*>(buf);
  std::unique_lock<std::mutex> lock(ssl_mu_);
  for (;;) {
    // Every whole record already received, up to `n` bytes: the reader
    // then parses one larger chunk rather than one record at a time.
    size_t filled = 0;
    int r = 0;
    while (filled < n &&
           (r = SSL_read(ssl_, out + filled, int(n - filled))) > 0)
      filled += size_t(r);
    if (filled > 0) return ssize_t(filled);
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e != SSL_ERROR_WANT_READ) {
      failure_ = openssl_errors();
      *error = "TLS: " + failure_;
      return -1;
    }
    // Nothing whole yet: wait for the socket without the lock, so writers
    // go on meanwhile. (A post-handshake message may want an answer.)
    if (!pipe_.output().empty()) {
      std::string send_error = send_output(lock);
      if (!send_error.empty()) {
        *error = send_error;
        return -1;
      }
    } else {
      lock.unlock();
    }
    incoming_.resize(kReceiveChunk);
    ssize_t got;
    do {
      got = ::recv(fd_, incoming_.data(), incoming_.size(), 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) *error = std::strerror(errno);
    if (got <= 0) return got;
    // OpenSSL used up what it had (WANT_READ), so incoming_ was free.
    lock.lock();
    pipe_.give(incoming_.data(), size_t(got));
  }
}

std::string TlsStream::write(const void* data, size_t n) {
  std::unique_lock<std::mutex> lock(ssl_mu_);
  // The pipe takes it all: SSL_write never writes part of it.
  if (n > 0 && SSL_write(ssl_, data, int(n)) <= 0)
    return "TLS: " + (failure_.empty() ? openssl_errors() : failure_);
  return send_output(lock);
}

std::string TlsStream::send_output(std::unique_lock<std::mutex>& lock) {
  std::lock_guard<std::mutex> send_lock(send_mu_);
  // No copy: what OpenSSL writes meanwhile goes into the other buffer.
  outgoing_.swap(pipe_.output());
  lock.unlock();
  int err =
      outgoing_.empty() ? 0 : send_all(fd_, outgoing_.data(), outgoing_.size());
  outgoing_.clear();
  if (outgoing_.capacity() > kKeptOutputBytes) outgoing_.shrink_to_fit();
  return err == 0 ? "" : std::strerror(err);
}

}  // namespace tern::net
