#include "login.h"

#include <sodium.h>

#include <cstdio>
#include <iostream>

namespace tern {

namespace {

// libsodium's "interactive" cost: about 0.1 s and 64 MiB per check here, a
// fair price per login and a high one per guess.
std::string hash_password(const std::string& password) {
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, password.data(), password.size(),
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return "";  // out of memory
  return hash;
}

}  // namespace

bool init_login() { return sodium_init() >= 0; }

int print_password_hash() {
  std::string password;
  if (!std::getline(std::cin, password) || password.empty()) {
    std::fprintf(stderr,
                 "tern-broker hash-password: give the password on stdin, "
                 "one line\n");
    return 2;
  }
  std::string hash = hash_password(password);
  sodium_memzero(password.data(), password.size());
  if (hash.empty()) {
    std::fprintf(stderr, "tern-broker hash-password: out of memory\n");
    return 1;
  }
  std::printf("%s\n", hash.c_str());
  return 0;
}

std::string token_hash(const std::string& token) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size());
  char hex[2 * sizeof digest + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return std::string("sha256:") + hex;
}

int print_token_hash() {
  std::string token;
  if (!std::getline(std::cin, token) || token.size() < 32) {
    std::fprintf(stderr,
                 "tern-broker hash-token: give the token on stdin, one line "
                 "of 32 characters at least (e.g. from openssl rand -hex "
                 "32)\n");
    return 2;
  }
  std::printf("%s\n", token_hash(token).c_str());
  sodium_memzero(token.data(), token.size());
  return 0;
}

bool same_hash(const std::string& a, const std::string& b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool password_matches(const std::string& hash, const std::string& password) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(),
                                  password.size()) == 0;
}

std::string unusable_password_hash() {
  unsigned char secret[32];
  randombytes_buf(secret, sizeof secret);
  return hash_password(
      std::string(reinterpret_cast<char*>(secret), sizeof secret));
}

}  // namespace tern
