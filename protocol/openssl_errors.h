// OpenSSL's error queue as one line, for the broker's and the client's TLS
// (broker/tls.cc, client/tls_stream.cc), which both report why a handshake
// or a certificate file failed.
#pragma once

#include <string>

namespace tern {

// Everything in this thread's OpenSSL error queue, oldest first, as one
// line ("no start line", "No such file or directory"), without the bare
// "system lib" / "PEM lib" entries that only say where it failed; clears
// the queue. "unknown error" if it is empty.
std::string openssl_errors();

}  // namespace tern
