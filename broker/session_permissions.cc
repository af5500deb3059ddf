// Session: what its user may do (permissions.h), checked before each frame
// that names a topic changes anything, and the replies it may publish to
// inboxes without a permission on them.
#include "broker.h"
#include "connection.h"
#include "session.h"
#include "subscription.h"
#include "topic.h"
#include "wildcard.h"

namespace tern {

namespace {
// Inboxes a session holds reply rights for; beyond, those of inboxes gone
// are dropped.
constexpr size_t kMaxReplyInboxes = 10000;
}  // namespace

void Session::set_permissions(Permissions permissions) {
  permissions_ = std::move(permissions);
  std::vector<Consumer*> denied;
  for (auto& [id, consumer] : consumers_) {
    consumer->grants_replies = needs_reply_rights();
    if (!permissions_.subscribe.allows(consumer->subscription.topic().name()))
      denied.push_back(consumer.get());
  }
  for (auto& [id, wildcard] : wildcards_)
    for (auto& [topic, part] : wildcard.parts) {
      part->grants_replies = needs_reply_rights();
      if (!permissions_.subscribe.allows(topic)) denied.push_back(part.get());
    }
  for (Consumer* consumer : denied) {
    Subscription& subscription = consumer->subscription;
    close_consumer(*consumer, wire::ErrorCode::NotAuthorized,
                   "user " + user_ + " may no longer subscribe to " +
                       subscription.topic().name());
    broker_.consumer_left(subscription);
  }
}

bool Session::permitted(Action action, const std::string& topic,
                        const char* what, uint64_t request_id) {
  if (permissions_.allows(action, topic)) return true;
  reply_error(request_id, wire::ErrorCode::NotAuthorized,
              "user " + user_ + " may not " + what + " " + topic + ": no " +
                  action_name(action) + " permission on it");
  return false;
}

bool Session::may_publish(const std::string& topic, size_t count,
                          uint64_t request_id) {
  if (permissions_.publish.allows(topic)) return true;
  auto rights = reply_rights_.find(topic);
  if (!is_inbox(topic) || rights == reply_rights_.end() ||
      rights->second < count)
    return permitted(Action::kPublish, topic, "publish to", request_id);
  if ((rights->second -= count) == 0) reply_rights_.erase(rights);
  return true;
}

void Session::grant_reply(const wire::StoredMessage& message) {
  if (message.headers() == nullptr) return;
  for (const wire::Header* header : *message.headers()) {
    if (header->name() == nullptr || header->value() == nullptr ||
        header->name()->string_view() != "tern-reply-to")
      continue;
    std::string inbox(header->value()->begin(), header->value()->end());
    if (!is_inbox(inbox)) return;
    if (reply_rights_.size() >= kMaxReplyInboxes && !reply_rights_.count(inbox))
      for (auto it = reply_rights_.begin(); it != reply_rights_.end();)
        it = broker_.topics(it->first).empty() ? reply_rights_.erase(it)
                                               : std::next(it);
    if (reply_rights_.size() < kMaxReplyInboxes) ++reply_rights_[inbox];
    return;
  }
}

bool Session::may_subscribe(const std::string& topic, uint64_t request_id) {
  if (!permitted(Action::kSubscribe, topic, "subscribe to", request_id))
    return false;
  // One that does not exist is UnknownTopic, as for anyone.
  if (!is_inbox(topic) || broker_.owns_inbox(connection_.id(), topic) ||
      broker_.topics(topic).empty())
    return true;
  reply_error(request_id, wire::ErrorCode::NotAuthorized,
              "inbox " + topic +
                  " belongs to another connection: only the connection that "
                  "created an inbox may subscribe to it");
  return false;
}

}  // namespace tern
