#include "metrics.h"

#include <httplib.h>

#include <stdexcept>

namespace tern::bridge {

namespace {

// A label value with \, " and newline escaped, as the format wants.
std::string escaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

void family(std::string& out, const AllMetrics& routes, const char* name,
            const char* type, const char* help,
            uint64_t (*value)(const RouteMetrics&)) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " +
         type + "\n";
  for (const RouteMetrics& r : routes) {
    out += std::string(name) + "{route=\"" + escaped(r.route) +
           "\",direction=\"" + r.direction + "\"} " + std::to_string(value(r)) +
           "\n";
  }
}

}  // namespace

std::string metrics_text(const AllMetrics& routes) {
  std::string out;
  family(out, routes, "tern_bridge_records_total", "counter",
         "Records carried: acknowledged by Kafka (to_kafka) or confirmed by "
         "Tern (from_kafka), since the bridge started.",
         [](const RouteMetrics& r) { return r.records.load(); });
  family(out, routes, "tern_bridge_already_in_tern_total", "counter",
         "Kafka records read again after a restart that Tern already had "
         "(stored once).",
         [](const RouteMetrics& r) { return r.already_in_tern.load(); });
  family(out, routes, "tern_bridge_lag", "gauge",
         "Messages waiting: the Tern subscription's lag (to_kafka) or the "
         "Kafka consumer's (from_kafka), as of the last second.",
         [](const RouteMetrics& r) { return r.lag.load(); });
  family(out, routes, "tern_bridge_route_up", "gauge",
         "1 while the route runs, 0 before it started and after it stopped.",
         [](const RouteMetrics& r) { return uint64_t(r.running.load()); });
  return out;
}

MetricsServer::MetricsServer(const std::string& listen,
                             const AllMetrics& routes)
    : server_(std::make_unique<httplib::Server>()) {
  size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  int port = std::stoi(listen.substr(colon + 1));
  server_->Get("/metrics",
               [&routes](const httplib::Request&, httplib::Response& res) {
                 res.set_content(metrics_text(routes),
                                 "text/plain; version=0.0.4; charset=utf-8");
               });
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  if (!server_->bind_to_port(host, port)) {
    throw std::runtime_error("cannot serve metrics on " + listen +
                             " (in use, or not an address of this host?)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

MetricsServer::~MetricsServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tern::bridge
