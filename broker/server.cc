// The server side of the Broker: listening, accepting connections (and
// refusing those beyond --max-connections), the connection registry,
// signals, running the loop and shutting it down.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>

#include "broker.h"
#include "clock.h"
#include "connection.h"
#include "log.h"
#include "login.h"
#include "topic.h"

namespace tern {

namespace {

// How often ack deadlines are checked; ack timeouts are this coarse.
constexpr uint64_t kTickMs = 50;

}  // namespace

bool Broker::listen() {
  sockaddr_storage addr;
  const char* host = config_.listen_host.c_str();
  int rc = config_.listen_host.find(':') != std::string::npos
               ? uv_ip6_addr(host, config_.listen_port,
                             reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(host, config_.listen_port,
                             reinterpret_cast<sockaddr_in*>(&addr));
  std::string tls_error;
  if (!tls_.load(config_, &tls_error)) {
    LOG_ERROR("%s", tls_error.c_str());
    return false;
  }
  if (rc == 0) {
    uv_tcp_init(&loop_, &server_);
    server_.data = this;
    rc = uv_tcp_bind(&server_, reinterpret_cast<sockaddr*>(&addr), 0);
    if (rc == 0)
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 511,
                     on_connection);
    if (rc != 0) uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  }
  if (rc != 0) {
    LOG_ERROR("cannot listen on %s:%d: %s", host, config_.listen_port,
              uv_strerror(rc));
    return false;
  }
  LOG_INFO("listening on %s:%d, %s (data %s, fsync %s)", host,
           config_.listen_port, tls_.describe().c_str(),
           config_.data_dir.c_str(), config_.fsync ? "always" : "never");
  return true;
}

int Broker::run() {
  started_ms_ = unix_ms();
  bool ok = listen();
  if (ok && !start_http()) {
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
    ok = false;
  }
  if (ok) {
    uv_signal_init(&loop_, &sigint_);
    uv_signal_init(&loop_, &sigterm_);
    uv_signal_init(&loop_, &sighup_);
    sigint_.data = sigterm_.data = sighup_.data = this;
    uv_signal_start(&sigint_, on_signal, SIGINT);
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_signal_start(&sighup_, on_reload_signal, SIGHUP);
    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    uv_timer_start(&tick_, on_tick, kTickMs, kTickMs);
    uv_timer_init(&loop_, &retention_timer_);
    retention_timer_.data = this;
    uv_timer_start(&retention_timer_, on_retention_timer,
                   config_.retention_interval_ms,
                   config_.retention_interval_ms);
    uv_timer_init(&loop_, &schedule_timer_);
    schedule_timer_.data = this;
    arm_schedule_timer();
    uv_check_init(&loop_, &check_);
    check_.data = this;
    uv_check_start(&check_, on_check);
    uv_idle_init(&loop_, &idle_);
    uv_run(&loop_, UV_RUN_DEFAULT);
  } else {
    committer_->drain();
    worker_->stop();
    reader_->stop();
    login_->stop();
  }
  // Close whatever is still open so the loop can be closed.
  uv_run(&loop_, UV_RUN_DEFAULT);
  LOG_INFO("stopped");
  return ok ? 0 : 1;
}

void Broker::on_signal(uv_signal_t* handle, int signum) {
  LOG_INFO("received %s; shutting down", strsignal(signum));
  static_cast<Broker*>(handle->data)->shutdown();
}

void Broker::on_reload_signal(uv_signal_t* handle, int) {
  static_cast<Broker*>(handle->data)->reload();
}

void Broker::reload() {
  Config fresh;
  std::string error;
  if (!reread_config_) return;
  if (!reread_config_(&fresh, &error)) {
    LOG_ERROR("SIGHUP: configuration not reloaded: %s", error.c_str());
    return;
  }
  reload_users(fresh);
  reload_http(fresh);
  std::string tls = reload_tls(fresh, &tls_);
  LOG_INFO("SIGHUP: configuration reloaded (users, permissions, %s)",
           tls.c_str());
}

void Broker::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  http_.reset();
  auto close = [](auto* handle) {
    uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
  };
  close(&server_);
  close(&sigint_);
  close(&sigterm_);
  close(&sighup_);
  close(&tick_);
  close(&retention_timer_);
  close(&schedule_timer_);
  close(&check_);
  close(&idle_);
  for (auto& [id, connection] : connections_) connection->close();
  // Last cursor updates, then everything still queued is committed.
  after_io();
  committer_->drain();
  worker_->stop();
  reader_->stop();
  login_->stop();
}

void Broker::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Broker*>(server->data);
  if (status < 0) {
    LOG_WARN("accept failed: %s", uv_strerror(status));
    return;
  }
  uint64_t id = self->next_connection_id_++;
  auto connection = std::make_unique<Connection>(
      *self, id, self->config_.max_frame_bytes, self->config_.max_output_bytes,
      self->tls_.get());
  uv_tcp_init(&self->loop_, connection->tcp());
  Connection& c = *connection;
  // From here the handle is initialised: it is closed through the normal path.
  self->connections_[id] = std::move(connection);
  if (uv_accept(server, c.stream()) != 0) {
    c.close();
    return;
  }
  c.start();
  size_t from_ip = ++self->connections_per_ip_[c.ip()];
  Refusal refusal;
  if (!within_limit(self->connections_.size() - 1,
                    self->config_.max_connections, "connections", &refusal) ||
      !within_limit(from_ip - 1, self->config_.max_connections_per_ip,
                    ("connections from " + c.ip()).c_str(), &refusal)) {
    log_event(LogLevel::kWarn, "connection_refused",
              {{"connection", std::to_string(id)},
               {"peer", c.peer()},
               {"error", refusal.message}},
              "connection %s refused: %s", c.peer().c_str(),
              refusal.message.c_str());
    ++self->connections_refused_;
    c.fail(0, refusal.code, refusal.message);
    return;
  }
  ++self->connections_accepted_;
  // Hello must come before the deadline (checked by expire()): an idle
  // socket must not hold a connection slot for ever.
  self->hello_deadlines_.push_back(
      {uv_now(&self->loop_) + self->config_.hello_timeout_ms, id});
  log_event(LogLevel::kDebug, "connection_opened",
            {{"connection", std::to_string(id)}, {"peer", c.peer()}},
            "connection %s accepted", c.peer().c_str());
}

void Broker::close_silent_connections(uint64_t now) {
  while (!hello_deadlines_.empty() && hello_deadlines_.front().at_ms <= now) {
    Connection* c = find_connection(hello_deadlines_.front().connection_id);
    hello_deadlines_.pop_front();
    // A login being checked ends on its own: HelloOk, or NotAuthorized
    // after its delay (which may pass this deadline).
    if (c == nullptr || c->session().greeted() || c->reading_paused())
      continue;
    std::string why = "no Hello within " +
                      std::to_string(config_.hello_timeout_ms) + " ms";
    LOG_WARN("connection %s closed: %s", c->peer().c_str(), why.c_str());
    c->fail(0, wire::ErrorCode::HelloRequired, why);
  }
}

void Broker::close_dead_connections(uint64_t now) {
  // Heartbeats are seconds apart: checking every connection once a second
  // is precise enough, and cheap.
  if (now - last_heartbeat_check_ms_ < 1000) return;
  last_heartbeat_check_ms_ = now;
  for (auto& [id, connection] : connections_) {
    if (connection->closing() || !connection->heartbeat_missed(now)) continue;
    // Nothing can be written to a peer that is gone: no Error frame, the
    // socket is closed at once, and what its consumers held goes to others.
    LOG_WARN("connection %s closed: no frame for two heartbeat intervals "
             "(the client or its host is gone)",
             connection->peer().c_str());
    connection->close();
  }
}

void Broker::forget(Connection& connection) {
  log_event(LogLevel::kDebug, "connection_closed",
            {{"connection", std::to_string(connection.id())},
             {"peer", connection.peer()},
             {"user", connection.session().user()},
             {"client", connection.session().client_name()}},
            "connection %s closed", connection.peer().c_str());
  std::vector<Topic*> owned;
  for (auto& [topic_id, owner] : temporary_owner_)
    if (owner == connection.id()) owned.push_back(find_topic(topic_id));
  for (Topic* topic : owned) {
    LOG_DEBUG("temporary topic %s ends with its connection",
              topic->name().c_str());
    remove_topic(*topic);
  }
  if (!connection.ip().empty()) {
    auto it = connections_per_ip_.find(connection.ip());
    if (--it->second == 0) connections_per_ip_.erase(it);
  }
  connections_.erase(connection.id());
}

Connection* Broker::find_connection(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

}  // namespace tern
