#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "tern/client.h"

namespace tern::net {
namespace {

constexpr const char* kDefaultPort = "7411";

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Closes the descriptor on every exit path until release() hands it on.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// One connect attempt to one resolved address. Returns the connected socket,
// or -1 with *err set (ETIMEDOUT once the deadline passes).
int try_connect(const addrinfo* ai,
                std::chrono::steady_clock::time_point deadline, int* err) {
  int fd =
      ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
               ai->ai_protocol);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  FdCloser closer(fd);

  // Non-blocking connect + poll is the portable way to bound the wait.
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      *err = errno;
      return -1;
    }
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        *err = ETIMEDOUT;
        return -1;
      }
      pollfd p{fd, POLLOUT, 0};
      int r = ::poll(&p, 1, int(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        *err = errno;
        return -1;
      }
      if (r == 0) continue;  // re-checks the deadline
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
        *err = errno;
        return -1;
      }
      if (so_error != 0) {
        *err = so_error;
        return -1;
      }
      break;
    }
  }

  // From here on the connection's reader thread blocks in recv().
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    *err = errno;
    return -1;
  }
  // Frames are written whole, so Nagle would only add latency to confirms'
  // requests and small publishes.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return closer.release();
}

}  // namespace

void split_address(const std::string& address, std::string* host,
                   std::string* port) {
  auto invalid = [&](const char* why) {
    return Error(ErrorCode::kInvalidArgument,
                 "invalid broker address '" + address + "': " + why);
  };
  if (address.empty()) throw invalid("expected HOST:PORT");

  if (address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos) throw invalid("missing ']'");
    *host = address.substr(1, close - 1);
    if (close + 1 == address.size()) {
      *port = kDefaultPort;
    } else if (address[close + 1] == ':') {
      *port = address.substr(close + 2);
    } else {
      throw invalid("expected ':' after ']'");
    }
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      *host = address;
      *port = kDefaultPort;
    } else if (address.find(':') != colon) {
      throw invalid("write IPv6 addresses in brackets, e.g. [::1]:7411");
    } else {
      *host = address.substr(0, colon);
      *port = address.substr(colon + 1);
    }
  }
  if (host->empty()) throw invalid("missing host");
  if (!all_digits(*port) || port->size() > 5 || std::stoul(*port) == 0 ||
      std::stoul(*port) > 65535) {
    throw invalid("port must be a number from 1 to 65535");
  }
}

int connect_tcp(const std::string& address, std::chrono::milliseconds timeout) {
  std::string host, port;
  split_address(address, &host, &port);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto fail = [&](const std::string& why) {
    return Error(ErrorCode::kConnectFailed,
                 "cannot connect to " + address + ": " + why);
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    throw fail(rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);

  // Try each resolved address in turn (e.g. IPv6 then IPv4 for "localhost");
  // report the last failure.
  int err = ECONNREFUSED;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    int fd = try_connect(ai, deadline, &err);
    if (fd >= 0) return fd;
    if (err == ETIMEDOUT) break;
  }
  if (err == ETIMEDOUT) {
    throw fail("timed out after " + std::to_string(timeout.count()) + " ms");
  }
  throw fail(std::strerror(err));
}

int send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= size_t(w);
  }
  return 0;
}

}  // namespace tern::net
