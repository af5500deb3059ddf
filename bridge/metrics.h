// The bridge's Prometheus endpoint (config key metrics_listen): GET /metrics
// gives each route's counters, in the text format the broker's /metrics
// uses. Each route updates its RouteMetrics; the server only reads them.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace tern::bridge {

struct RouteMetrics {
  RouteMetrics(std::string route, std::string direction)
      : route(std::move(route)), direction(std::move(direction)) {}
  const std::string route;      // route_name()
  const std::string direction;  // "to_kafka" or "from_kafka"
  // Acknowledged by Kafka (to_kafka) or confirmed by Tern (from_kafka).
  std::atomic<uint64_t> records{0};
  // from_kafka: records Tern already had (re-read after a restart).
  std::atomic<uint64_t> already_in_tern{0};
  // to_kafka: its Tern subscription's lag; from_kafka: its Kafka lag.
  std::atomic<uint64_t> lag{0};
  std::atomic<bool> running{false};
};

// One RouteMetrics per route, in the config's order; they never move.
using AllMetrics = std::deque<RouteMetrics>;

// The text of GET /metrics.
std::string metrics_text(const AllMetrics& routes);

class MetricsServer {
 public:
  // Serves `routes` on "HOST:PORT". Throws std::runtime_error if it cannot.
  MetricsServer(const std::string& listen, const AllMetrics& routes);
  ~MetricsServer();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace tern::bridge
