#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"
#include "openssl_errors.h"

namespace tern {

namespace {

// OpenSSL hands over at most one record (16 KiB) per SSL_read.
constexpr size_t kRecordBytes = 16 * 1024;
// The write buffer keeps its size between writes, up to this.
constexpr size_t kKeptOutputBytes = 4 * 1024 * 1024;
const char* const kCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
    "TLS_CHACHA20_POLY1305_SHA256";

std::string subject_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string subject(data, size_t(n));
  BIO_free(bio);
  return subject;
}

}  // namespace

std::string tls_config_error(const Config& config) {
  if (config.tls_cert.empty() != config.tls_key.empty())
    return config.tls_cert.empty() ? "--tls-key needs --tls-cert as well"
                                   : "--tls-cert needs --tls-key as well";
  if (!config.tls_client_ca.empty() && config.tls_cert.empty())
    return "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is "
           "TLS)";
  return "";
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

bool TlsContext::load(const Config& config, std::string* error) {
  if (config.tls_cert.empty()) {
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    mutual_ = false;
    return true;
  }
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  auto fail = [&](const std::string& what, const std::string& file) {
    *error = "cannot load TLS " + what + " " + file + ": " + openssl_errors();
    SSL_CTX_free(ctx);
    return false;
  };
  if (ctx == nullptr) return fail("context", "");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A client that drops the connection without close_notify has simply
  // gone, as over plaintext; no renegotiation (a CPU sink for clients).
  SSL_CTX_set_options(ctx,
                      SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  // Clients do not resume sessions; tickets would only cost a write.
  SSL_CTX_set_num_tickets(ctx, 0);
  // OpenSSL's TLS 1.3 suites, AES-128-GCM first (the server's choice): as
  // safe, and the cheapest per byte on CPUs with AES instructions.
  SSL_CTX_set_ciphersuites(ctx, kCipherSuites);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.tls_cert.c_str()) != 1)
    return fail("certificate", config.tls_cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, config.tls_key.c_str(),
                                  SSL_FILETYPE_PEM) != 1)
    return fail("key", config.tls_key);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("key", config.tls_key + " (for " + config.tls_cert + ")");
  bool mutual = !config.tls_client_ca.empty();
  if (mutual) {
    const char* ca = config.tls_client_ca.c_str();
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1)
      return fail("client CA", config.tls_client_ca);
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  SSL_CTX_free(ctx_);
  ctx_ = ctx;
  mutual_ = mutual;
  return true;
}

std::string TlsContext::describe() const {
  if (ctx_ == nullptr) return "plaintext";
  return mutual_ ? "mutual TLS (client certificates required)" : "TLS";
}

std::string reload_tls(const Config& fresh, TlsContext* context) {
  // Clients know whether to speak TLS: a config file that lost (or gained)
  // its certificate is more likely a mistake than a wish to switch.
  if (fresh.tls_cert.empty() != (context->get() == nullptr)) {
    LOG_ERROR("SIGHUP: turning TLS on or off needs a restart; still %s",
              context->describe().c_str());
    return "TLS unchanged";
  }
  if (context->get() == nullptr) return "no TLS";
  std::string error;
  if (!context->load(fresh, &error)) {
    LOG_ERROR("SIGHUP: %s; new connections keep the previous certificate",
              error.c_str());
    return "TLS certificate kept";
  }
  return "TLS certificate";
}

TlsSession::TlsSession(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
  pipe_.attach(ssl_);
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsSession::Result TlsSession::receive(const char* data, size_t n,
                                       frame::FrameReader* reader) {
  if (failed_) return Result::kFailed;
  pipe_.give(data, n);
  Result result = decrypt(reader);
  pipe_.give(nullptr, 0);  // all read, unless it failed: then it is moot
  return result;
}

TlsSession::Result TlsSession::decrypt(frame::FrameReader* reader) {
  for (;;) {
    // SSL_read runs the handshake first; decrypted bytes land in the
    // reader's own buffer, as plaintext reads do.
    uint8_t* buf = reader->prepare(kRecordBytes);
    int r = SSL_read(ssl_, buf, int(kRecordBytes));
    if (!handshake_done_ && SSL_is_init_finished(ssl_)) {
      handshake_done_ = true;
      if (X509* cert = SSL_get0_peer_certificate(ssl_))
        peer_subject_ = subject_of(cert);
    }
    if (r > 0) {
      reader->commit(size_t(r));
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) return Result::kOk;
    if (e == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
    failed_ = true;
    error_ = failure(e);
    return Result::kFailed;
  }
}

bool TlsSession::encrypt(const uint8_t* data, size_t n) {
  if (failed_ || !handshake_done_) return false;
  if (n == 0) return true;
  // The pipe takes everything: SSL_write never writes part of it.
  int r = SSL_write(ssl_, data, int(n));
  if (r > 0) return true;
  failed_ = true;
  error_ = failure(SSL_get_error(ssl_, r));
  return false;
}

size_t TlsSession::output_size() { return pipe_.output().size(); }

char* TlsSession::take_output(size_t* n) {
  // No copy: what OpenSSL writes next goes into the other buffer.
  written_.swap(pipe_.output());
  *n = written_.size();
  return written_.data();
}

void TlsSession::output_written() {
  written_.clear();
  if (written_.capacity() > kKeptOutputBytes) written_.shrink_to_fit();
}

std::string TlsSession::describe() const {
  return std::string(SSL_get_version(ssl_)) + " " +
         SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_));
}

std::string TlsSession::failure(int ssl_error) {
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
    return "connection ended in the handshake";
  std::string why = openssl_errors();
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK)
    why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  return why;
}

}  // namespace tern
