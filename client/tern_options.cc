// The options of `tern` whose values cli/units.h parses, hooked into CLI11
// as option callbacks: the shared parser reads the value, and a value it
// refuses fails the command line with "<flag> must be <form>, not '<value>'".
#include <limits>
#include <utility>

#include "tern_cli.h"

namespace tern::tool {
namespace {

// Stores the value of `text` and returns true, or returns false and says in
// *why what form it wants (ending with ", not '<text>'", as cli/units.h does).
using Parse = std::function<bool(const std::string& text, std::string* why)>;

CLI::Option* add_parsed_option(CLI::App* command, const std::string& flag,
                               const std::string& type, Parse parse,
                               const std::string& description) {
  auto store = [flag, parse = std::move(parse)](const std::string& text) {
    std::string why;
    if (!parse(text, &why)) {
      throw CLI::ValidationError(flag + " must be " + why);
    }
  };
  return command->add_option_function<std::string>(flag, store, description)
      ->type_name(type);
}

// `parse`, and with NoneIs::kZero also "none", stored as 0 (no limit).
template <typename T>
Parse or_none(NoneIs none, std::optional<T>* out, Parse parse) {
  if (none == NoneIs::kRefused) return parse;
  return [out, parse = std::move(parse)](const std::string& text,
                                         std::string* why) {
    if (text == "none") {
      *out = T{0};
      return true;
    }
    if (parse(text, why)) return true;
    *why = "none or " + *why;
    return false;
  };
}

}  // namespace

CLI::Option* add_count_option(CLI::App* command, const std::string& flag,
                              uint64_t max, std::optional<uint64_t>* out,
                              const std::string& description, NoneIs none) {
  Parse parse = [max, out](const std::string& text, std::string* why) {
    uint64_t n = 0;
    if (!cli::parse_count(text, 1, max, &n, why)) return false;
    *out = n;
    return true;
  };
  return add_parsed_option(command, flag, "N", or_none(none, out, parse),
                           description);
}

CLI::Option* add_duration_option(CLI::App* command, const std::string& flag,
                                 std::chrono::milliseconds max,
                                 std::optional<std::chrono::milliseconds>* out,
                                 const std::string& description, NoneIs none) {
  Parse parse = [max, out](const std::string& text, std::string* why) {
    std::chrono::milliseconds ms{0};
    // No bare numbers: "5" could mean seconds as well as milliseconds.
    if (!cli::parse_duration(text, 0, std::chrono::milliseconds(1), max, &ms,
                             why))
      return false;
    *out = ms;
    return true;
  };
  return add_parsed_option(command, flag, "DURATION", or_none(none, out, parse),
                           description);
}

CLI::Option* add_size_option(CLI::App* command, const std::string& flag,
                             std::optional<uint64_t>* out,
                             const std::string& description, NoneIs none) {
  Parse parse = [out](const std::string& text, std::string* why) {
    uint64_t bytes = 0;
    if (!cli::parse_size(text, 1, std::numeric_limits<uint64_t>::max(), &bytes,
                         why))
      return false;
    *out = bytes;
    return true;
  };
  return add_parsed_option(command, flag, "SIZE", or_none(none, out, parse),
                           description);
}

CLI::Option* add_seconds_option(CLI::App* command, const std::string& flag,
                                std::optional<std::chrono::milliseconds>* out,
                                const std::string& description) {
  Parse parse = [out](const std::string& text, std::string* why) {
    std::chrono::milliseconds ms{0};
    if (!cli::parse_seconds(text, &ms, why)) return false;
    *out = ms;
    return true;
  };
  return add_parsed_option(command, flag, "SECONDS", parse, description);
}

CLI::Option* add_position_option(CLI::App* command, const std::string& flag,
                                 std::optional<cli::Position>* out,
                                 const std::string& description) {
  Parse parse = [out](const std::string& text, std::string* why) {
    cli::Position position;
    if (!cli::parse_position(text, &position, why)) return false;
    *out = position;
    return true;
  };
  return add_parsed_option(command, flag, "POSITION", parse, description);
}

CLI::Option* add_delays_option(CLI::App* command, const std::string& flag,
                               std::vector<std::chrono::milliseconds>* out,
                               const std::string& description) {
  Parse parse = [out](const std::string& text, std::string* why) {
    std::vector<uint32_t> delays;
    if (!cli::parse_delays(text, &delays, why)) return false;
    out->clear();
    for (uint32_t ms : delays) out->emplace_back(ms);
    return true;
  };
  return add_parsed_option(command, flag, "DELAYS", parse, description);
}

CLI::Option* add_text_option(CLI::App* command, const std::string& flag,
                             std::string* out, const std::string& description) {
  auto store = [flag, out](const std::string& text) {
    if (text.empty()) throw CLI::ValidationError(flag + " must not be empty");
    *out = text;
  };
  return command->add_option_function<std::string>(flag, store, description);
}

void add_tls_options(CLI::App* command, ClientOptions* options) {
  command->add_flag("--tls", options->tls,
                    "connect with TLS, checking the broker's\n"
                    "certificate against the system's CAs");
  command
      ->add_option("--tls-ca", options->tls_ca_file,
                   "TLS, trusting the CA certificates in FILE\n"
                   "(PEM) instead")
      ->type_name("FILE");
  command
      ->add_option("--tls-cert", options->tls_cert_file,
                   "TLS client certificate (PEM), for a broker\n"
                   "that asks for one; needs --tls-key")
      ->type_name("FILE");
  command
      ->add_option("--tls-key", options->tls_key_file,
                   "the private key of --tls-cert (PEM)")
      ->type_name("FILE");
  command
      ->add_option("--tls-server-name", options->tls_server_name,
                   "the name the broker's certificate must have\n"
                   "(default: the host of --server)")
      ->type_name("NAME");
}

void copy_tls_options(const ClientOptions& from, ClientOptions* to) {
  to->tls = from.tls;
  to->tls_ca_file = from.tls_ca_file;
  to->tls_cert_file = from.tls_cert_file;
  to->tls_key_file = from.tls_key_file;
  to->tls_server_name = from.tls_server_name;
}

void set_start(const cli::Position& position, SubscribeOptions* options) {
  switch (position.kind) {
    case cli::Position::Kind::kLatest:
      options->start = StartPosition::kLatest;
      break;
    case cli::Position::Kind::kEarliest:
      options->start = StartPosition::kEarliest;
      break;
    case cli::Position::Kind::kOffset:
      options->start = StartPosition::kOffset;
      options->start_offset = position.at;
      break;
    case cli::Position::Kind::kTime:
      options->start = StartPosition::kTime;
      options->start_time = std::chrono::system_clock::time_point(
          std::chrono::milliseconds(position.at));
      break;
  }
}

}  // namespace tern::tool
