// HttpServer: the broker's HTTP endpoints (--http, 127.0.0.1:7412 by
// default), served by cpp-httplib on threads of their own:
//   /healthz   200 while the loop answers (its last snapshot is recent)
//   /readyz    200 while the store also accepts writes
//   /metrics   Prometheus text (metrics_text.h)
//   /api/...   the same as JSON (api_json.h)
// They read only the Stats snapshot the loop publishes about once a second
// (stats.h), so HTTP clients, however slow or many, never hold up message
// traffic. With users configured, /metrics and /api/ want the token of a user
// with monitor = true (Authorization: Bearer TOKEN); the health checks say
// nothing secret and need none.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stats.h"

namespace httplib {
class Server;
}

namespace tern {

class HttpServer {
 public:
  // Who may read /metrics: anyone who reaches the address (no users), or
  // only with one of these token hashes.
  struct Access {
    bool open = true;
    std::vector<std::string> token_hashes;
  };

  // Binds host:port and starts serving `first`; nullptr and *error if it
  // cannot.
  static std::unique_ptr<HttpServer> start(const std::string& host, int port,
                                           Access access,
                                           std::shared_ptr<const Stats> first,
                                           std::string* error);
  // Stops serving and waits for the threads.
  ~HttpServer();

  // The snapshot served from now on. Any thread.
  void publish(std::shared_ptr<const Stats> stats);
  // The users changed (SIGHUP). Any thread.
  void set_access(Access access);

 private:
  HttpServer();
  std::shared_ptr<const Stats> stats() const;
  bool authorized(const std::string& authorization) const;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::shared_ptr<const Stats> stats_;  // under mu_; never null
  Access access_;                       // under mu_
};

}  // namespace tern
