// Logging in: users' passwords are stored as argon2id hashes (libsodium),
// which are slow to check on purpose (~0.1 s, 64 MiB), so that a stolen
// config file or a guessing client learns little. Because they are slow,
// they are checked on a thread of their own, never on the loop.
#pragma once

#include <string>

namespace tern {

// Must run once before anything below (libsodium's own start-up).
bool init_login();

// `tern-broker hash-password`: reads a password (one line) from stdin and
// prints the hash that goes into a [users.NAME] table. Returns the exit code.
int print_password_hash();

// Whether `password` is the one `hash` was made from; in constant time, as
// slow as the hash says. Any thread.
bool password_matches(const std::string& hash, const std::string& password);

// Tokens are long random strings (`openssl rand -hex 32`), not chosen by
// people, so a fast hash keeps them safe at rest: "sha256:HEX".
std::string token_hash(const std::string& token);

// `tern-broker hash-token`: reads a token (one line, 32 characters at least)
// from stdin and prints its token_hash(). Returns the exit code.
int print_token_hash();

// Whether two hashes are equal, in constant time.
bool same_hash(const std::string& a, const std::string& b);

// A hash nobody's password matches, for users that do not exist: checking
// against it takes as long as against a real one, so the time of a failed
// login does not say whether the user exists.
std::string unusable_password_hash();

}  // namespace tern
