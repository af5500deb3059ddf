#include "config_file.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "wildcard.h"

namespace tern {

namespace {

const Setting* find_setting(std::string_view name) {
  for (const Setting& s : settings()) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

// The value of `node` as the text the flag would have been given, if the
// setting takes a value of its type.
bool as_flag_text(const toml::node& node, Setting::FileType type,
                  std::string* text) {
  if (type == Setting::FileType::kBoolean) {
    const auto* b = node.as_boolean();
    if (b != nullptr) *text = b->get() ? "true" : "false";
    return b != nullptr;
  }
  bool string_ok = type != Setting::FileType::kInteger;
  bool integer_ok = type != Setting::FileType::kString;
  if (const auto* s = node.as_string(); s && string_ok) {
    *text = s->get();
    return true;
  }
  if (const auto* n = node.as_integer(); n && integer_ok) {
    *text = std::to_string(n->get());
    return true;
  }
  return false;
}

std::string type_wanted(Setting::FileType type) {
  switch (type) {
    case Setting::FileType::kString:
      return "a string";
    case Setting::FileType::kInteger:
      return "an integer";
    case Setting::FileType::kBoolean:
      return "true or false";
    case Setting::FileType::kStringOrInteger:
      break;
  }
  return "a string or an integer";
}

// toml++'s error descriptions are one line today; keep it so.
std::string one_line(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  return line;
}

// toml++ does not say which key a syntax error is in; the line it names
// usually starts with it (`key = value`). Empty if it does not.
std::string key_on_line(const std::string& text, size_t line) {
  std::istringstream lines(text);
  std::string content;
  for (size_t i = 0; i < line && std::getline(lines, content);) ++i;
  size_t equals = content.find('=');
  if (equals == std::string::npos) return "";
  std::string key = content.substr(0, equals);
  const char* space = " \t";
  key.erase(key.find_last_not_of(space) + 1);
  key.erase(0, key.find_first_not_of(space));
  bool bare = !key.empty() && key.find_first_not_of(
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789_-") ==
                                  std::string::npos;
  return bare ? key : "";
}

// With stdio rather than a stream, so that errno says why, and a directory
// is an error (EISDIR) rather than an empty file.
bool read_whole_file(const std::string& path, std::string* text) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text->append(buffer, n);
  bool ok = !std::ferror(file);
  std::fclose(file);
  return ok;
}

std::string where(const toml::node& node, const std::string& path,
                  const std::string& key) {
  return path + ":" + std::to_string(node.source().begin.line) + ": " + key +
         ": ";
}

// `publish`, `subscribe` or `admin`: a table with `allow` and `deny`, lists
// of topic patterns.
bool read_rules(const toml::node& node, const std::string& path,
                const std::string& key, Rules* rules, std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = where(node, path, key) +
             "want a table such as { allow = [\"orders.>\"], deny = [] }";
    return false;
  }
  for (const auto& [field, value] : *table) {
    std::string field_key = key + "." + std::string(field.str());
    if (field.str() != "allow" && field.str() != "deny") {
      *error = where(value, path, field_key) + "unknown key (allow or deny)";
      return false;
    }
    std::vector<std::string>& patterns =
        field.str() == "allow" ? rules->allow : rules->deny;
    patterns.clear();
    const toml::array* list = value.as_array();
    if (list == nullptr) {
      *error = where(value, path, field_key) +
               "want a list of topic patterns, e.g. [\"orders.*\"]";
      return false;
    }
    for (const toml::node& item : *list) {
      const auto* text = item.as_string();
      std::string why = "want a string";
      if (text == nullptr || !valid_pattern(text->get(), &why)) {
        *error = where(item, path, field_key) + why;
        return false;
      }
      patterns.push_back(text->get());
    }
  }
  return true;
}

// Which of the three `name` stands for; nullptr if it is not an action.
std::optional<Rules>* action_rules(std::string_view name,
                                   std::optional<Rules>* publish,
                                   std::optional<Rules>* subscribe,
                                   std::optional<Rules>* admin) {
  return name == "publish"     ? publish
         : name == "subscribe" ? subscribe
         : name == "admin"     ? admin
                               : nullptr;
}

// [default_permissions]: publish, subscribe and admin rules.
bool read_default_permissions(const toml::node& node, const std::string& path,
                              Config* config, std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = where(node, path, "default_permissions") +
             "want a table with publish, subscribe and admin rules";
    return false;
  }
  std::optional<Rules> publish, subscribe, admin;
  for (const auto& [name, value] : *table) {
    std::string key = "default_permissions." + std::string(name.str());
    std::optional<Rules>* rules =
        action_rules(name.str(), &publish, &subscribe, &admin);
    if (rules == nullptr) {
      *error = where(value, path, key) +
               "unknown key (publish, subscribe or admin)";
      return false;
    }
    if (!read_rules(value, path, key, &rules->emplace(), error)) return false;
  }
  Permissions& permissions = config->default_permissions;
  if (publish) permissions.publish = *publish;
  if (subscribe) permissions.subscribe = *subscribe;
  if (admin) permissions.admin = *admin;
  return true;
}

// A credential: the string a tern-broker command printed for it.
bool read_secret(const toml::node& value, const std::string& path,
                 const std::string& key, const char* prefix,
                 const char* command, std::string* out, std::string* error) {
  const auto* text = value.as_string();
  if (text == nullptr || text->get().rfind(prefix, 0) != 0) {
    *error = where(value, path, key) + "want the \"" + prefix +
             "...\" string tern-broker " + command +
             " prints, never the secret itself";
    return false;
  }
  *out = text->get();
  return true;
}

// [users.NAME] tables: how each user logs in (a password hash, a token hash
// or a client certificate subject) and what it may do.
bool read_users(const toml::node& node, const std::string& path,
                Config* config, std::string* error) {
  const toml::table* users = node.as_table();
  if (users == nullptr) {
    *error = where(node, path, "users") +
             "want tables [users.NAME] with a password hash each";
    return false;
  }
  for (const auto& [name, user_node] : *users) {
    std::string key = "users." + std::string(name.str());
    const toml::table* user = user_node.as_table();
    if (user == nullptr) {
      *error = where(user_node, path, key) +
               "want a table with password = \"...\"";
      return false;
    }
    User parsed;
    for (const auto& [field, value] : *user) {
      std::string field_key = key + "." + std::string(field.str());
      bool ok = true;
      if (field.str() == "password") {
        ok = read_secret(value, path, field_key, "$argon2id$",
                         "hash-password", &parsed.password_hash, error);
      } else if (field.str() == "token") {
        ok = read_secret(value, path, field_key, "sha256:", "hash-token",
                         &parsed.token_hash, error);
      } else if (field.str() == "cert_subject") {
        const auto* text = value.as_string();
        ok = text != nullptr && !text->get().empty();
        if (ok) parsed.cert_subject = text->get();
        else
          *error = where(value, path, field_key) +
                   "want a certificate subject, e.g. \"CN=orders,O=Acme\"";
      } else if (field.str() == "monitor") {
        const auto* flag = value.as_boolean();
        ok = flag != nullptr;
        if (ok)
          parsed.monitor = flag->get();
        else
          *error = where(value, path, field_key) + "want true or false";
      } else if (std::optional<Rules>* rules =
                     action_rules(field.str(), &parsed.publish,
                                  &parsed.subscribe, &parsed.admin)) {
        ok = read_rules(value, path, field_key, &rules->emplace(), error);
      } else {
        *error = where(value, path, field_key) +
                 "unknown key (a user has password, token, cert_subject, "
                 "publish, subscribe, admin, monitor)";
        ok = false;
      }
      if (!ok) return false;
    }
    if (parsed.password_hash.empty() && parsed.token_hash.empty() &&
        parsed.cert_subject.empty()) {
      *error = where(user_node, path, key) +
               "has no password, token or cert_subject: it could never log in";
      return false;
    }
    // A token or a certificate names its user: it must name one.
    for (const auto& [other_name, other] : config->users) {
      bool same_token = !parsed.token_hash.empty() &&
                        parsed.token_hash == other.token_hash;
      bool same_subject = !parsed.cert_subject.empty() &&
                          parsed.cert_subject == other.cert_subject;
      if (same_token || same_subject) {
        *error = where(user_node, path, key) + "has the same " +
                 (same_token ? "token" : "cert_subject") + " as users." +
                 other_name;
        return false;
      }
    }
    config->users[std::string(name.str())] = parsed;
  }
  return true;
}

}  // namespace

bool read_config_file(const std::string& path, Config* config,
                      std::string* error) {
  std::string text;
  if (!read_whole_file(path, &text)) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }

  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    size_t line = e.source().begin.line;
    std::string key = key_on_line(text, line);
    *error = path + ":" + std::to_string(line) + ": " +
             (key.empty() ? "" : key + ": ") + one_line(e.description());
    return false;
  }

  for (const auto& [key, node] : table) {
    std::string where = path + ":" + std::to_string(node.source().begin.line) +
                        ": " + std::string(key.str()) + ": ";
    if (key.str() == "users") {
      if (!read_users(node, path, config, error)) return false;
      continue;
    }
    if (key.str() == "default_permissions") {
      if (!read_default_permissions(node, path, config, error)) return false;
      continue;
    }
    const Setting* setting = find_setting(key.str());
    if (setting == nullptr) {
      *error =
          where + "unknown key (the keys are tern-broker's flags without --)";
      return false;
    }
    std::string value, why;
    if (!as_flag_text(node, setting->file_type, &value)) {
      std::ostringstream got;
      got << node.type();
      *error = where + "want " + type_wanted(setting->file_type) + ", not " +
               got.str();
      return false;
    }
    if (!setting->apply(value, config, &why)) {
      *error = where + "want " + why;
      return false;
    }
  }
  return true;
}

}  // namespace tern
