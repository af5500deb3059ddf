#include "permissions.h"

#include "wildcard.h"

namespace tern {

const char* action_name(Action action) {
  switch (action) {
    case Action::kPublish:
      return "publish";
    case Action::kSubscribe:
      return "subscribe";
    case Action::kAdmin:
      break;
  }
  return "admin";
}

bool Rules::allows_all() const {
  return deny.empty() && allow.size() == 1 && allow[0] == ">";
}

bool Rules::allows(const std::string& topic) const {
  // The common case costs nothing: checked on every Publish frame.
  if (allows_all()) return true;
  auto any_matches = [&](const std::vector<std::string>& patterns) {
    for (const std::string& pattern : patterns)
      if (pattern_matches(pattern, topic)) return true;
    return false;
  };
  return any_matches(allow) && !any_matches(deny);
}

const Rules& Permissions::rules(Action action) const {
  switch (action) {
    case Action::kPublish:
      return publish;
    case Action::kSubscribe:
      return subscribe;
    case Action::kAdmin:
      break;
  }
  return admin;
}

}  // namespace tern
