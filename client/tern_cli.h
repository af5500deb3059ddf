// What the files of the `tern` command-line tool share: how a command is
// added to the CLI11 App and run, and the options whose values cli/units.h
// parses.
//
// main (tern_main.cc) builds the App; each add_*_commands() adds a group of
// commands. The command the command line chooses checks its arguments in its
// CLI11 callback and sets *run; main then calls it. A bad command line throws
// a CLI::ParseError (exit status 2); a failure while running throws any other
// std::exception (exit status 1).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tern/client.h"
#include "units.h"

namespace tern::tool {

// Runs the chosen command against the broker at `server` and returns the
// exit status.
using Run = std::function<int(const std::string& server)>;

// Makes `command`, once chosen and its arguments checked, set *run to `body`.
inline void on_run(CLI::App* command, Run* run, Run body) {
  command->callback([run, body] { *run = body; });
}

// Connects to `server` as the user the command line names (--user, with
// the password from $TERN_PASSWORD: never on the command line, where other
// users of the machine could read it), with `options` otherwise.
std::unique_ptr<Client> connect(const std::string& server,
                                ClientOptions options = {});

void add_pubsub_commands(CLI::App* tern, Run* run);   // pub, sub
void add_admin_commands(CLI::App* tern, Run* run);    // topics ..., subs ...
void add_request_commands(CLI::App* tern, Run* run);  // request, reply
void add_top_command(CLI::App* tern, Run* run);       // top

// --- options (tern_options.cc) ---
//
// Each adds `flag` to `command` and stores its value in *out. A value the
// cli/units.h parser refuses fails the command line with "<flag> must be
// <the form it wants>, not '<value>'".

// Whether a limit's option also takes "none", stored as 0: no limit.
enum class NoneIs { kRefused, kZero };

// A whole number from 1 to `max`.
CLI::Option* add_count_option(CLI::App* command, const std::string& flag,
                              uint64_t max, std::optional<uint64_t>* out,
                              const std::string& description,
                              NoneIs none = NoneIs::kRefused);
// A whole number with a unit (30s, 24h), from 1ms to `max`.
CLI::Option* add_duration_option(CLI::App* command, const std::string& flag,
                                 std::chrono::milliseconds max,
                                 std::optional<std::chrono::milliseconds>* out,
                                 const std::string& description,
                                 NoneIs none = NoneIs::kRefused);
// A size in bytes (512, 64MiB), at least 1 byte.
CLI::Option* add_size_option(CLI::App* command, const std::string& flag,
                             std::optional<uint64_t>* out,
                             const std::string& description,
                             NoneIs none = NoneIs::kRefused);
// A number of seconds, fractions allowed (2.5).
CLI::Option* add_seconds_option(CLI::App* command, const std::string& flag,
                                std::optional<std::chrono::milliseconds>* out,
                                const std::string& description);
// A list of retry delays (cli::parse_delays).
CLI::Option* add_delays_option(CLI::App* command, const std::string& flag,
                               std::vector<std::chrono::milliseconds>* out,
                               const std::string& description);
// earliest, latest, offset:N or time:UNIX_MS.
CLI::Option* add_position_option(CLI::App* command, const std::string& flag,
                                 std::optional<cli::Position>* out,
                                 const std::string& description);
// Any text but the empty one, e.g. a subscription name.
CLI::Option* add_text_option(CLI::App* command, const std::string& flag,
                             std::string* out, const std::string& description);

// --tls, --tls-ca FILE, --tls-cert FILE, --tls-key FILE and
// --tls-server-name NAME, stored in the TLS fields of *options (each of the
// others implies --tls; see ClientOptions).
void add_tls_options(CLI::App* command, ClientOptions* options);
// Copies the TLS fields of `from` into *to.
void copy_tls_options(const ClientOptions& from, ClientOptions* to);

// Makes `options` start a new subscription at `position`.
void set_start(const cli::Position& position, SubscribeOptions* options);

}  // namespace tern::tool
