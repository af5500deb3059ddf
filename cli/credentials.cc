#include "credentials.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace tern::cli {

namespace {

// The first line of `path`, without its line end.
bool read_secret_file(const std::string& path, std::string* secret,
                      std::string* why) {
  std::ifstream file(path);
  if (!file) {
    *why = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::getline(file, *secret);
  if (!secret->empty() && secret->back() == '\r') secret->pop_back();
  if (secret->empty()) {
    *why = path + " is empty: put the secret on its first line";
    return false;
  }
  return true;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

}  // namespace

bool read_login(const std::string& user, const std::string& password_file,
                const std::string& token_file, Login* login,
                std::string* why) {
  login->user = user;
  if (!token_file.empty()) {
    if (!read_secret_file(token_file, &login->token, why)) return false;
  } else {
    login->token = env("TERN_TOKEN");
  }
  if (!password_file.empty()) {
    if (user.empty()) {
      *why = "--password-file needs --user NAME";
      return false;
    }
    return read_secret_file(password_file, &login->password, why);
  }
  if (user.empty()) return true;
  login->password = env("TERN_PASSWORD");
  if (login->password.empty() && login->token.empty()) {
    *why = "--user " + user +
           " needs a password ($TERN_PASSWORD or --password-file) or a "
           "token ($TERN_TOKEN or --token-file)";
    return false;
  }
  return true;
}

}  // namespace tern::cli
