// Permissions: what a user may do with which topics, as NATS grants subjects.
// Each action has an allow list and a deny list of topic patterns (exact
// names, or "*" and ">" wildcards as in wildcard.h); a topic is allowed when
// an allow pattern matches it and no deny pattern does: deny wins.
//
//   publish    Publish to the topic (creating it if new)
//   subscribe  Subscribe to it (a durable subscription is made if new)
//   admin      CreateTopic, AlterTopic, DeleteTopic, DeleteSubscription,
//              ResetSubscription
//
// Inboxes (_inbox.*) follow their own rules: see Session::may_publish().
#pragma once

#include <string>
#include <vector>

namespace tern {

enum class Action { kPublish, kSubscribe, kAdmin };

// "publish", "subscribe", "admin": as in the config file and in errors.
const char* action_name(Action action);

struct Rules {
  std::vector<std::string> allow = {">"};  // by default: every topic
  std::vector<std::string> deny;

  bool allows(const std::string& topic) const;
  // Whether nothing is denied: checks can be skipped.
  bool allows_all() const;
};

struct Permissions {
  Rules publish, subscribe, admin;

  const Rules& rules(Action action) const;
  bool allows(Action action, const std::string& topic) const {
    return rules(action).allows(topic);
  }
};

}  // namespace tern
