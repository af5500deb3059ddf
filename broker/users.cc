// The users side of the Broker: logging connections in (a password checked
// on the login thread, a token, or a client certificate's subject), slowing
// down failures, and taking new users and permissions on SIGHUP.
#include <algorithm>

#include "broker.h"
#include "connection.h"
#include "log.h"
#include "login.h"

namespace tern {

void Broker::log_in(uint64_t connection_id, uint64_t request_id,
                    Credentials credentials) {
  // A token, or else without a password a client certificate, names the
  // user; a user named as well must be that one.
  auto finish_as = [&](const std::string& found) {
    bool named_other = !credentials.user.empty() && credentials.user != found;
    finish_login(connection_id, request_id, named_other ? "" : found);
  };
  if (!credentials.token.empty()) {
    // Every user's hash is compared, so the time says nothing of which
    // one matched, or whether any did.
    std::string hash = token_hash(credentials.token);
    std::string found;
    for (const auto& [name, user] : config_.users)
      if (same_hash(hash, user.token_hash)) found = name;
    return finish_as(found);
  }
  if (credentials.password.empty()) {
    Connection* c = find_connection(connection_id);
    std::string subject = c != nullptr ? c->peer_subject() : "";
    std::string found;
    for (const auto& [name, user] : config_.users)
      if (!subject.empty() && user.cert_subject == subject) found = name;
    return finish_as(found);
  }
  auto found = config_.users.find(credentials.user);
  // An unknown user is checked too, against a hash nothing matches: a
  // failure takes as long, and says as little, whoever it was.
  std::string hash = found == config_.users.end() ||
                             found->second.password_hash.empty()
                         ? unusable_hash_
                         : found->second.password_hash;
  auto ok = std::make_shared<bool>(false);
  login_->post(
      [ok, hash = std::move(hash),
       password = std::move(credentials.password)]() mutable {
        *ok = password_matches(hash, password);
        std::fill(password.begin(), password.end(), '\0');
      },
      [this, ok, connection_id, request_id,
       user = std::move(credentials.user)] {
        finish_login(connection_id, request_id, *ok ? user : "");
      });
}

void Broker::finish_login(uint64_t connection_id, uint64_t request_id,
                          const std::string& user) {
  Connection* c = find_connection(connection_id);
  if (c == nullptr || c->closing()) return;
  // A SIGHUP may have removed the user while its password was checked.
  if (!user.empty() && config_.users.count(user) > 0) {
    log_event(LogLevel::kInfo, "login",
              {{"connection", std::to_string(connection_id)},
               {"peer", c->peer()},
               {"user", user},
               {"client", c->session().client_name()}},
              "connection %s: user %s logged in", c->peer().c_str(),
              user.c_str());
    c->session().greet(request_id, user, permissions_of(config_, user));
    c->resume_reading();
    return;
  }
  // Each failure from an address in the last minute doubles the wait
  // before the answer: 100 ms, 200 ms, ... up to 10 s.
  uint64_t now = uv_now(&loop_);
  LoginFailures& failures = login_failures_[c->ip()];
  if (now - failures.last_ms > 60000) failures.count = 0;
  failures.last_ms = now;
  uint32_t doublings = std::min<uint32_t>(failures.count++, 7);
  uint64_t delay = std::min<uint64_t>(100ull << doublings, 10000);
  log_event(LogLevel::kWarn, "login_failed",
            {{"connection", std::to_string(connection_id)},
             {"peer", c->peer()},
             {"client", c->session().client_name()},
             {"failures_last_minute", std::to_string(failures.count)}},
            "connection %s: login failed (%u from this address in the "
            "last minute)",
            c->peer().c_str(), failures.count);
  failed_logins_.emplace(now + delay, FailedLogin{connection_id, request_id});
}

void Broker::refuse_logins(uint64_t now) {
  // Many addresses failing (a scan) must not grow the map for ever.
  if (login_failures_.size() > 1024) {
    for (auto it = login_failures_.begin(); it != login_failures_.end();)
      it = now - it->second.last_ms > 60000 ? login_failures_.erase(it)
                                            : std::next(it);
  }
  while (!failed_logins_.empty() && failed_logins_.begin()->first <= now) {
    FailedLogin failed = failed_logins_.begin()->second;
    failed_logins_.erase(failed_logins_.begin());
    if (Connection* c = find_connection(failed.connection_id))
      c->fail(failed.request_id, wire::ErrorCode::NotAuthorized,
              "wrong user or password");
  }
}

bool Broker::owns_inbox(uint64_t connection_id,
                        const std::string& topic) const {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return false;
  auto owner = temporary_owner_.find(it->second->id());
  return owner != temporary_owner_.end() && owner->second == connection_id;
}

void Broker::reload_users(const Config& fresh) {
  if (unusable_hash_.empty() && !fresh.users.empty())
    unusable_hash_ = unusable_password_hash();
  config_.users = fresh.users;
  config_.default_permissions = fresh.default_permissions;
  for (auto& [id, connection] : connections_) {
    Session& session = connection->session();
    if (!session.greeted()) continue;
    const std::string& user = session.user();
    if (!user.empty() && config_.users.count(user) > 0) {
      session.set_permissions(permissions_of(config_, user));
      continue;
    }
    if (user.empty() && config_.users.empty()) continue;
    // A user removed, or users added to a broker that had none: what this
    // connection was let in as no longer logs in.
    std::string why = user.empty()
                          ? "the broker now has users: log in again"
                          : "user " + user + " was removed";
    LOG_INFO("connection %s closed: %s", connection->peer().c_str(),
             why.c_str());
    connection->fail(0, wire::ErrorCode::NotAuthorized, why);
  }
}

}  // namespace tern
