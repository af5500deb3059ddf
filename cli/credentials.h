// Where tern and tern-bench take a login from. Secrets never come from the
// command line, where other users of the machine see them (ps, /proc): a
// password comes from $TERN_PASSWORD or --password-file, a token from
// $TERN_TOKEN or --token-file.
#pragma once

#include <string>

namespace tern::cli {

struct Login {
  std::string user;
  std::string password;
  std::string token;
};

// Fills *login from --user `user` and the files named (empty: not given) or
// the environment. Nothing given is no login. False, with *why one line, if
// a file cannot be read or is empty, or a user has neither a password nor a
// token.
bool read_login(const std::string& user, const std::string& password_file,
                const std::string& token_file, Login* login, std::string* why);

}  // namespace tern::cli
