#include "config.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "config_file.h"
#include "tls.h"
#include "units.h"

namespace tern {

namespace {

constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20, GiB = 1ull << 30,
                   TiB = 1ull << 40;

// format_size and format_duration print 0 as "none", which the parsers do
// not take back.
std::string show_size(uint64_t bytes) {
  return bytes == 0 ? "0" : cli::format_size(bytes);
}

// Broker durations have always been bare milliseconds (--ack-timeout 30000);
// units (30s) are accepted as well.
bool parse_ms_in(const std::string& text, uint64_t min, uint64_t max,
                 uint64_t* out, std::string* why) {
  std::chrono::milliseconds ms;
  if (!cli::parse_duration(text, 1, std::chrono::milliseconds(min),
                           std::chrono::milliseconds(max), &ms, why))
    return false;
  *out = uint64_t(ms.count());
  return true;
}

template <typename Field>
Setting size_setting(const char* name, Field Config::*field, uint64_t min,
                     uint64_t max, const char* help) {
  return {name,
          "BYTES",
          help,
          Setting::FileType::kStringOrInteger,
          [=](const std::string& text, Config* config, std::string* why) {
            uint64_t n;
            if (!cli::parse_size(text, min, max, &n, why)) return false;
            config->*field = Field(n);
            return true;
          },
          [=](const Config& config) { return show_size(config.*field); }};
}

template <typename Field>
Setting ms_setting(const char* name, Field Config::*field, uint64_t min,
                   uint64_t max, const char* help) {
  return {
      name,
      "DURATION",
      help,
      Setting::FileType::kStringOrInteger,
      [=](const std::string& text, Config* config, std::string* why) {
        uint64_t n;
        if (!parse_ms_in(text, min, max, &n, why)) return false;
        config->*field = Field(n);
        return true;
      },
      [=](const Config& config) {
        return cli::format_duration(std::chrono::milliseconds(config.*field));
      }};
}

template <typename Field>
Setting count_setting(const char* name, Field Config::*field, uint64_t min,
                      uint64_t max, const char* help) {
  return {name,
          "N",
          help,
          Setting::FileType::kInteger,
          [=](const std::string& text, Config* config, std::string* why) {
            uint64_t n;
            if (!cli::parse_count(text, min, max, &n, why)) return false;
            config->*field = Field(n);
            return true;
          },
          [=](const Config& config) { return std::to_string(config.*field); }};
}

// HOST:PORT, IPv6 hosts in brackets.
bool parse_address(const std::string& text, std::string* host, int* port,
                   std::string* why) {
  size_t colon = text.rfind(':');
  std::string h = text.substr(0, colon == std::string::npos ? 0 : colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  uint64_t p = 0;
  std::string port_why;
  if (h.empty() ||
      !cli::parse_count(text.substr(colon + 1), 0, 65535, &p, &port_why)) {
    *why = "HOST:PORT (IPv6 as [::1]:7411), not '" + text + "'";
    return false;
  }
  *host = h;
  *port = int(p);
  return true;
}

std::string show_address(const std::string& host, int port) {
  bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool is_loopback(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1";
}

// A file name; empty (the default) means none.
Setting file_setting(const char* name, std::string Config::*field,
                     const char* help) {
  return {name,
          "FILE",
          help,
          Setting::FileType::kString,
          [=](const std::string& text, Config* config, std::string*) {
            config->*field = text;
            return true;
          },
          [=](const Config& config) { return config.*field; }};
}

const char* const kLogLevels[] = {"debug", "info", "warn", "error"};

std::vector<Setting> make_settings() {
  using FileType = Setting::FileType;
  return {
      {"listen", "HOST:PORT", "address to listen on", FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         return parse_address(text, &config->listen_host, &config->listen_port,
                              why);
       },
       [](const Config& config) {
         return show_address(config.listen_host, config.listen_port);
       }},
      {"http", "HOST:PORT|off",
       "address of the HTTP endpoints (/metrics,\n/healthz, /readyz); off: "
       "none",
       FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         if (text == "off") {
           config->http_host.clear();
           return true;
         }
         return parse_address(text, &config->http_host, &config->http_port,
                              why);
       },
       [](const Config& config) {
         return config.http_host.empty()
                    ? std::string("off")
                    : show_address(config.http_host, config.http_port);
       }},
      {"data", "DIR", "data directory", FileType::kString,
       [](const std::string& text, Config* config, std::string*) {
         config->data_dir = text;
         return true;
       },
       [](const Config& config) { return config.data_dir; }},
      {"fsync", "always|never", "fsync before confirming publishes",
       FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         if (text != "always" && text != "never") {
           *why = "always or never, not '" + text + "'";
           return false;
         }
         config->fsync = text == "always";
         return true;
       },
       [](const Config& config) {
         return std::string(config.fsync ? "always" : "never");
       }},
      size_setting("max-frame", &Config::max_frame_bytes, 64 * KiB, GiB,
                   "largest frame accepted or sent; a publish\n"
                   "frame may take 4KiB less"),
      size_setting("max-output", &Config::max_output_bytes, MiB, TiB,
                   "output queued for one client before it is\n"
                   "disconnected; all clients' output also\n"
                   "counts against --memory-budget"),
      count_setting("max-connections", &Config::max_connections, 1, 1000000,
                    "client connections at once"),
      count_setting("max-connections-per-ip", &Config::max_connections_per_ip,
                    1, 1000000,
                    "client connections at once from one IP\naddress"),
      ms_setting("hello-timeout", &Config::hello_timeout_ms, 100, 3600000,
                 "a connection that has not sent Hello by then\n"
                 "is closed"),
      {"allow-anonymous", "", "serve clients beyond loopback without users",
       FileType::kBoolean,
       [](const std::string& text, Config* config, std::string* why) {
         if (text != "true" && text != "false") {
           *why = "true or false, not '" + text + "'";
           return false;
         }
         config->allow_anonymous = text == "true";
         return true;
       },
       [](const Config& config) {
         return std::string(config.allow_anonymous ? "true" : "false");
       }},
      count_setting("metrics-topics", &Config::metrics_topics, 0, 100000000,
                    "topics with series of their own on /metrics;\n"
                    "the others are summed as topic=\"(other)\""),
      count_setting("max-topics", &Config::max_topics, 1, 100000000,
                    "topics at once"),
      count_setting("max-subscriptions", &Config::max_subscriptions, 1,
                    100000000, "subscriptions, durable and ephemeral"),
      size_setting("min-free", &Config::min_free_bytes, 0, 1024 * TiB,
                   "publishes fail while the data directory's\n"
                   "disk has less free space; 0: off"),
      ms_setting("ack-timeout", &Config::default_ack_timeout_ms, 1, 86400000,
                 "default ack timeout of subscriptions"),
      {"retry-delays", "DELAYS",
       "a new subscription's backoff: the wait before\n"
       "redelivering after an ack timeout or a nack\n"
       "without delay, per failed delivery, the last\n"
       "repeating (e.g. 100ms,1s,5s,30s; 0: at once)",
       Setting::FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         return cli::parse_delays(text, &config->retry_delays_ms, why);
       },
       [](const Config& config) {
         return cli::format_delays(config.retry_delays_ms);
       }},
      ms_setting("dedupe-window", &Config::dedupe_window_ms, 1, 7 * 86400000ull,
                 "how long a producer message id is remembered\n"
                 "per topic"),
      count_setting("max-dedupe-ids", &Config::max_dedupe_ids, 0, 1000000000,
                    "producer message ids remembered at once, over\n"
                    "all topics; beyond, publishes with a new id\n"
                    "get LimitExceeded"),
      ms_setting("retention-interval", &Config::retention_interval_ms, 10,
                 3600000, "how often topic retention runs"),
      size_setting("memory-budget", &Config::memory_budget_bytes, 8 * MiB, TiB,
                   "what all topics' in-memory tails and all\n"
                   "clients' queued output hold together; the\n"
                   "coldest topics give memory back first,\n"
                   "slow consumers pause, then are disconnected"),
      size_setting("tail-bytes", &Config::tail_bytes_per_topic, 0, TiB,
                   "recent messages kept in memory per topic,\n"
                   "within --memory-budget; older ones are\n"
                   "read back from disk"),
      file_setting("tls-cert", &Config::tls_cert,
                   "serve TLS with this certificate (PEM, chain\n"
                   "included); needs --tls-key"),
      file_setting("tls-key", &Config::tls_key,
                   "the private key of --tls-cert (PEM)"),
      file_setting("tls-client-ca", &Config::tls_client_ca,
                   "mutual TLS: clients must present a\n"
                   "certificate this CA (PEM) signed"),
      {"log-level", "LEVEL", "debug, info, warn or error", FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         if (parse_log_level(text.c_str(), &config->log_level)) return true;
         *why = "debug, info, warn or error, not '" + text + "'";
         return false;
       },
       [](const Config& config) {
         return std::string(kLogLevels[int(config.log_level)]);
       }},
      {"log-format", "text|json",
       "text lines, or one JSON object per line\n(time, level, event, msg, "
       "fields)",
       FileType::kString,
       [](const std::string& text, Config* config, std::string* why) {
         if (text != "text" && text != "json") {
           *why = "text or json, not '" + text + "'";
           return false;
         }
         config->log_format =
             text == "json" ? LogFormat::kJson : LogFormat::kText;
         return true;
       },
       [](const Config& config) {
         return std::string(config.log_format == LogFormat::kJson ? "json"
                                                                  : "text");
       }},
  };
}

// Help text fits 80 columns when descriptions do in kHelpWidth.
constexpr size_t kHelpColumn = 34, kHelpWidth = 80 - kHelpColumn;

std::string with_default(const std::string& help, const std::string& value) {
  if (value.empty()) return help;  // e.g. no TLS certificate
  std::string note = "(default " + value + ")";
  size_t newline = help.rfind('\n');
  size_t last_line =
      newline == std::string::npos ? help.size() : help.size() - newline - 1;
  return help + (last_line + note.size() < kHelpWidth ? " " : "\n") + note;
}

// CLI11 calls this with a flag's value and names the flag in the error; the
// value is applied only once the config file has been read.
CLI::Validator checked_by(const Setting& setting) {
  return CLI::Validator(
      [&setting](std::string& text) {
        Config scratch;
        std::string why;
        return setting.apply(text, &scratch, &why) ? std::string()
                                                   : "want " + why;
      },
      "");
}

}  // namespace

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = make_settings();
  return all;
}

namespace {

// parse_config() and reread_config(): what the command line and the file
// say. Returns -1 when the broker may start, 0 after --help (printed into
// *error), 2 with *error saying what is wrong.
int parse(int argc, char** argv, Config* config, std::string* error) {
  CLI::App app("tern-broker: the Tern message broker", "tern-broker");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(kHelpColumn);
  app.footer(
      "BYTES: 512, 64KiB, 16MiB, 1GiB (also B, TiB, KB, MB, GB, TB).\n"
      "DURATION: 500ms, 30s, 5m, 1h, 1d; a bare number is milliseconds.\n"
      "Every flag can also be set in the --config file, as NAME = VALUE.");

  std::string config_file;
  CLI::Option* config_option =
      app.add_option("--config", config_file,
                     "read settings from this TOML file (see\n"
                     "tern.toml); flags given as well override it")
          ->type_name("FILE");

  // Each flag's value as given, checked as CLI11 reads it.
  const Config defaults;
  std::vector<std::string> given(settings().size());
  std::vector<CLI::Option*> options;
  for (size_t i = 0; i < settings().size(); ++i) {
    const Setting& s = settings()[i];
    std::string help = with_default(s.help, s.show(defaults));
    std::string flag = std::string("--") + s.name;
    if (s.file_type == Setting::FileType::kBoolean) {
      // A flag without a value: given means "true".
      options.push_back(app.add_flag_callback(
          flag, [&text = given[i]] { text = "true"; }, help));
      continue;
    }
    options.push_back(app.add_option(flag, given[i], help)
                          ->type_name(s.value_name)
                          ->check(checked_by(s)));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *error = app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    *error = std::string(e.what()) + " (see tern-broker --help)";
    return 2;
  }

  if (config_option->count() > 0 &&
      !read_config_file(config_file, config, error))
    return 2;
  for (size_t i = 0; i < settings().size(); ++i) {
    std::string why;  // cannot fail: CLI11 has checked it
    if (options[i]->count() > 0) settings()[i].apply(given[i], config, &why);
  }
  *error = protected_mode_error(*config);
  if (error->empty()) *error = tls_config_error(*config);
  return error->empty() ? -1 : 2;
}

}  // namespace

int parse_config(int argc, char** argv, Config* config) {
  std::string error;
  int exit_code = parse(argc, argv, config, &error);
  if (exit_code == 0) std::fputs(error.c_str(), stdout);
  if (exit_code == 2) std::fprintf(stderr, "tern-broker: %s\n", error.c_str());
  return exit_code;
}

bool reread_config(int argc, char** argv, Config* config, std::string* error) {
  return parse(argc, argv, config, error) == -1;
}

std::string protected_mode_error(const Config& config) {
  if (config.allow_anonymous || !config.users.empty()) return "";
  const std::string& host = config.listen_host;
  if (!is_loopback(host))
    return "refusing to listen on " + host +
           " with no users: anyone who can reach it could read, publish and "
           "delete everything; listen on 127.0.0.1, or give "
           "--allow-anonymous if the network itself is trusted";
  if (!config.http_host.empty() && !is_loopback(config.http_host))
    return "refusing to serve HTTP on " + config.http_host +
           " with no users: anyone who can reach it could see every topic; "
           "use --http 127.0.0.1:PORT, or give --allow-anonymous if the "
           "network itself is trusted";
  return "";
}

Permissions permissions_of(const Config& config, const std::string& user) {
  Permissions permissions = config.default_permissions;
  const User& u = config.users.at(user);
  if (u.publish) permissions.publish = *u.publish;
  if (u.subscribe) permissions.subscribe = *u.subscribe;
  if (u.admin) permissions.admin = *u.admin;
  return permissions;
}

}  // namespace tern
