#include "http_server.h"

#include <httplib.h>

#include "api_json.h"
#include "clock.h"
#include "dashboard_page.h"
#include "login.h"
#include "metrics_text.h"

namespace tern {

namespace {

// The loop publishes a snapshot every second: one older than this means it
// is stuck (or gone).
constexpr int64_t kStaleMs = 5000;

const char kBearer[] = "Bearer ";

}  // namespace

HttpServer::HttpServer() : server_(std::make_unique<httplib::Server>()) {}

std::unique_ptr<HttpServer> HttpServer::start(
    const std::string& host, int port, Access access,
    std::shared_ptr<const Stats> first, std::string* error) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->access_ = std::move(access);
  // A snapshot from the start: a request may come in as soon as the port
  // is bound.
  self->stats_ = std::move(first);
  httplib::Server& server = *self->server_;
  HttpServer* s = self.get();

  // Health: whether the loop answers, and whether it can also store.
  auto health = [s](bool ready, httplib::Response& res) {
    std::shared_ptr<const Stats> stats = s->stats();
    int64_t age = unix_ms() - stats->taken_ms;
    if (age > kStaleMs) {
      res.status = 503;
      res.set_content("the broker's loop has not answered for " +
                          std::to_string(age) + " ms\n",
                      "text/plain");
    } else if (ready && !stats->storage_fault.empty()) {
      res.status = 503;
      res.set_content(stats->storage_fault + "\n", "text/plain");
    } else {
      res.set_content(ready ? "ready\n" : "ok\n", "text/plain");
    }
  };
  server.Get("/healthz",
             [health](const httplib::Request&, httplib::Response& res) {
               health(false, res);
             });
  server.Get("/readyz",
             [health](const httplib::Request&, httplib::Response& res) {
               health(true, res);
             });
  // What only a monitor may read: a document made from the snapshot.
  auto monitored = [s, &server](const char* path,
                                std::string (*render)(const Stats&),
                                const char* content_type) {
    server.Get(path, [s, render, content_type](const httplib::Request& req,
                                               httplib::Response& res) {
      if (!s->authorized(req.get_header_value("Authorization"))) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer");
        res.set_content(
            "the token of a user with monitor = true is needed "
            "(Authorization: Bearer TOKEN)\n",
            "text/plain");
        return;
      }
      res.set_content(render(*s->stats()), content_type);
    });
  };
  // The page itself holds no figures: it asks /api/ for them (with the
  // monitor token, if the broker has users).
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kDashboardPage, "text/html; charset=utf-8");
  });
  monitored("/metrics", metrics_text,
            "text/plain; version=0.0.4; charset=utf-8");
  monitored("/api/broker", api_broker, "application/json");
  monitored("/api/topics", api_topics, "application/json");
  monitored("/api/subscriptions", api_subscriptions, "application/json");
  monitored("/api/connections", api_connections, "application/json");

  // A client that sends half a request holds one server thread at most
  // this long.
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  if (!server.bind_to_port(host, port)) {
    *error = "cannot serve HTTP on " + host + ":" + std::to_string(port) +
             " (in use, or not an address of this host?)";
    return nullptr;
  }
  self->thread_ = std::thread([s] { s->server_->listen_after_bind(); });
  return self;
}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::publish(std::shared_ptr<const Stats> stats) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = std::move(stats);
}

void HttpServer::set_access(Access access) {
  std::lock_guard<std::mutex> lock(mu_);
  access_ = std::move(access);
}

std::shared_ptr<const Stats> HttpServer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool HttpServer::authorized(const std::string& authorization) const {
  std::string hash;
  if (authorization.rfind(kBearer, 0) == 0)
    hash = token_hash(authorization.substr(sizeof kBearer - 1));
  std::lock_guard<std::mutex> lock(mu_);
  if (access_.open) return true;
  if (hash.empty()) return false;
  // Every hash compared, in constant time each: the time taken says nothing
  // about which, if any, matched.
  bool found = false;
  for (const std::string& allowed : access_.token_hashes)
    found = same_hash(hash, allowed) || found;
  return found;
}

}  // namespace tern
