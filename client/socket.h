// Blocking TCP sockets for the client: resolving "HOST:PORT", connecting with
// a deadline, and writing whole buffers. Everything here reports failure by
// throwing tern::Error, with a message a user can act on.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace tern::net {

// Splits "HOST:PORT", "[IPV6]:PORT" or a bare "HOST" (port 7411) into its
// parts. Throws Error(kInvalidArgument) if the address cannot be read.
void split_address(const std::string& address, std::string* host,
                   std::string* port);

// Connects to `address` within `timeout` and returns the connected socket,
// blocking, with TCP_NODELAY set. Throws Error(kConnectFailed), e.g.
// "cannot connect to 127.0.0.1:7411: Connection refused".
int connect_tcp(const std::string& address, std::chrono::milliseconds timeout);

// Writes all `n` bytes, retrying on EINTR and short writes. Never raises
// SIGPIPE. Returns 0, or the errno of the failed write.
int send_all(int fd, const void* data, size_t n);

}  // namespace tern::net
