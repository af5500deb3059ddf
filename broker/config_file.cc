#include "config_file.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

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

// [users.NAME] tables, each with the argon2id hash of the user's password.
bool read_users(const toml::node& node, const std::string& path,
                Config* config, std::string* error) {
  auto where = [&](const toml::node& n, const std::string& key) {
    return path + ":" + std::to_string(n.source().begin.line) + ": " + key +
           ": ";
  };
  const toml::table* users = node.as_table();
  if (users == nullptr) {
    *error = where(node, "users") +
             "want tables [users.NAME] with a password hash each";
    return false;
  }
  for (const auto& [name, user_node] : *users) {
    std::string key = "users." + std::string(name.str());
    const toml::table* user = user_node.as_table();
    if (user == nullptr) {
      *error = where(user_node, key) + "want a table with password = \"...\"";
      return false;
    }
    User parsed;
    for (const auto& [field, value] : *user) {
      std::string field_key = key + "." + std::string(field.str());
      const auto* text = value.as_string();
      if (field.str() != "password") {
        *error = where(value, field_key) + "unknown key (a user has password)";
        return false;
      }
      if (text == nullptr || text->get().rfind("$argon2id$", 0) != 0) {
        *error = where(value, field_key) +
                 "want the \"$argon2id$...\" string tern-broker "
                 "hash-password prints, never the password itself";
        return false;
      }
      parsed.password_hash = text->get();
    }
    if (parsed.password_hash.empty()) {
      *error = where(user_node, key) + "has no password";
      return false;
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
