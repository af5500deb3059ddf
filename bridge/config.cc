#include "config.h"

#include <librdkafka/rdkafka.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "credentials.h"
#include "units.h"

namespace tern::bridge {

namespace {

// Properties whose value the bridge's guarantees depend on: it sets them.
const std::map<std::string, std::string> kReserved = {
    {"enable.idempotence", "the producer is idempotent"},
    {"acks", "records are acknowledged by all in-sync replicas"},
    {"request.required.acks", "records are acknowledged by all replicas"},
    {"enable.gapless.guarantee", "a failed record stops the route"},
    {"enable.auto.commit", "offsets are committed once Tern confirmed"},
    {"enable.auto.offset.store", "offsets are committed once Tern confirmed"},
    {"group.id", "each from_kafka route names its group"},
};

std::string where(const toml::node& node, const std::string& path,
                  const std::string& key) {
  return path + ":" + std::to_string(node.source().begin.line) + ": " + key +
         ": ";
}

std::string type_of(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  return out.str();
}

bool read_string(const toml::node& node, const std::string& path,
                 const std::string& key, std::string* out, std::string* error) {
  const auto* value = node.as_string();
  if (value == nullptr || value->get().empty()) {
    *error = where(node, path, key) + "want a non-empty string, not " +
             (value ? "\"\"" : type_of(node));
    return false;
  }
  *out = value->get();
  return true;
}

bool read_count(const toml::node& node, const std::string& path,
                const std::string& key, uint32_t min, uint32_t max,
                uint32_t* out, std::string* error) {
  const auto* value = node.as_integer();
  if (value == nullptr || value->get() < min || value->get() > max) {
    *error = where(node, path, key) + "want a whole number from " +
             std::to_string(min) + " to " + std::to_string(max);
    return false;
  }
  *out = uint32_t(value->get());
  return true;
}

bool read_duration(const toml::node& node, const std::string& path,
                   const std::string& key, std::chrono::milliseconds* out,
                   std::string* error) {
  std::string text, why;
  if (!read_string(node, path, key, &text, error)) return false;
  if (!cli::parse_duration(text, 0, std::chrono::milliseconds(100),
                           std::chrono::hours(24), out, &why)) {
    *error = where(node, path, key) + "want " + why;
    return false;
  }
  return true;
}

// "HOST:PORT", the port from 1 to 65535.
bool read_listen(const toml::node& node, const std::string& path,
                 const std::string& key, std::string* out, std::string* error) {
  if (!read_string(node, path, key, out, error)) return false;
  size_t colon = out->rfind(':');
  uint64_t port;
  std::string why;
  if (colon == std::string::npos || colon == 0 ||
      !cli::parse_count(out->substr(colon + 1), 1, 65535, &port, &why)) {
    *error = where(node, path, key) + "want HOST:PORT, e.g. \"127.0.0.1:9466\"";
    return false;
  }
  return true;
}

// [tern]: where the broker is and how to log in.
bool read_tern(const toml::node& node, const std::string& path, Config* config,
               std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = where(node, path, "tern") + "want a table";
    return false;
  }
  std::string user, password_file, token_file;
  ClientOptions& options = config->tern;
  for (const auto& [name, value] : *table) {
    std::string field(name.str()), key = "tern." + field;
    bool ok = true;
    if (field == "address") {
      ok = read_string(value, path, key, &config->tern_address, error);
    } else if (field == "user") {
      ok = read_string(value, path, key, &user, error);
    } else if (field == "password_file") {
      ok = read_string(value, path, key, &password_file, error);
    } else if (field == "token_file") {
      ok = read_string(value, path, key, &token_file, error);
    } else if (field == "tls") {
      if (!value.is_boolean()) {
        *error = where(value, path, key) + "want true or false";
        return false;
      }
      options.tls = value.as_boolean()->get();
    } else if (field == "tls_ca_file") {
      ok = read_string(value, path, key, &options.tls_ca_file, error);
    } else if (field == "tls_cert_file") {
      ok = read_string(value, path, key, &options.tls_cert_file, error);
    } else if (field == "tls_key_file") {
      ok = read_string(value, path, key, &options.tls_key_file, error);
    } else if (field == "tls_server_name") {
      ok = read_string(value, path, key, &options.tls_server_name, error);
    } else {
      *error = where(value, path, key) +
               "unknown key (address, user, password_file, token_file, tls, "
               "tls_ca_file, tls_cert_file, tls_key_file, tls_server_name)";
      return false;
    }
    if (!ok) return false;
  }
  cli::Login login;
  std::string why;
  if (!cli::read_login(user, password_file, token_file, &login, &why)) {
    *error = where(node, path, "tern") + why;
    return false;
  }
  options.user = login.user;
  options.password = login.password;
  options.token = login.token;
  return true;
}

// [kafka]: librdkafka properties, each checked by librdkafka itself.
bool read_kafka(const toml::node& node, const std::string& path, Config* config,
                std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = where(node, path, "kafka") +
             "want a table of librdkafka properties, e.g. "
             "{ \"bootstrap.servers\" = \"kafka1:9092\" }";
    return false;
  }
  rd_kafka_conf_t* check = rd_kafka_conf_new();
  for (const auto& [name, value] : *table) {
    std::string property(name.str()), key = "kafka.\"" + property + "\"";
    std::string text;
    if (const auto* s = value.as_string()) {
      text = s->get();
    } else if (const auto* i = value.as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* b = value.as_boolean()) {
      text = b->get() ? "true" : "false";
    } else {
      *error = where(value, path, key) +
               "want a string, a number or a boolean (write \"a.b\" = ... for "
               "a property with dots), not " +
               type_of(value);
      break;
    }
    if (auto reserved = kReserved.find(property); reserved != kReserved.end()) {
      *error = where(value, path, key) + "set by the bridge (" +
               reserved->second + ")";
      break;
    }
    char why[512];
    if (rd_kafka_conf_set(check, property.c_str(), text.c_str(), why,
                          sizeof why) != RD_KAFKA_CONF_OK) {
      *error = where(value, path, key) + why;
      break;
    }
    config->kafka.emplace_back(property, text);
  }
  rd_kafka_conf_destroy(check);
  return error->empty();
}

// Reads one value (or route), named `key` in errors.
using FieldReader = std::function<bool(const toml::node&, const std::string&)>;

FieldReader string_field(const std::string& path, std::string* out,
                         std::string* error) {
  return [=](const toml::node& value, const std::string& key) {
    return read_string(value, path, key, out, error);
  };
}

FieldReader count_field(const std::string& path, uint32_t min, uint32_t max,
                        uint32_t* out, std::string* error) {
  return [=](const toml::node& value, const std::string& key) {
    return read_count(value, path, key, min, max, out, error);
  };
}

// One table of to_kafka or from_kafka: its fields in `fields`, each read by
// its own function; `required` must be there.
bool read_route(const toml::node& node, const std::string& path,
                const std::string& key,
                const std::map<std::string, FieldReader>& fields,
                const std::vector<std::string>& required, std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = where(node, path, key) +
             "want a table such as { tern = ..., kafka = ... }";
    return false;
  }
  std::string known;
  for (const auto& [name, reader] : fields)
    known += (known.empty() ? "" : ", ") + name;
  for (const auto& [name, value] : *table) {
    std::string field(name.str());
    auto reader = fields.find(field);
    if (reader == fields.end()) {
      *error =
          where(value, path, key + "." + field) + "unknown key (" + known + ")";
      return false;
    }
    if (!reader->second(value, key + "." + field)) return false;
  }
  for (const std::string& name : required) {
    if (!table->contains(name)) {
      *error = where(node, path, key) + "missing " + name;
      return false;
    }
  }
  return true;
}

// Each item of `node`, an array of tables, through `read_one`.
bool read_routes(const toml::node& node, const std::string& path,
                 const std::string& key, const FieldReader& read_one,
                 std::string* error) {
  const toml::array* list = node.as_array();
  if (list == nullptr) {
    *error = where(node, path, key) +
             "want a list of routes, [{ tern = ..., kafka = ... }], or [[" +
             key + "]] tables";
    return false;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    if (!read_one((*list)[i], key + "[" + std::to_string(i) + "]"))
      return false;
  }
  return true;
}

bool read_to_kafka(const toml::node& node, const std::string& path,
                   Config* config, std::string* error) {
  return read_routes(
      node, path, "to_kafka",
      [&](const toml::node& item, const std::string& key) {
        ToKafkaRoute route;
        std::map<std::string, FieldReader> fields = {
            {"tern", string_field(path, &route.tern, error)},
            {"kafka", string_field(path, &route.kafka, error)},
            {"subscription", string_field(path, &route.subscription, error)},
            {"prefetch", count_field(path, 1, 100000, &route.prefetch, error)},
        };
        if (!read_route(item, path, key, fields, {"tern", "kafka"}, error))
          return false;
        // Tern's wildcard subscriptions are ephemeral: a bridge that stopped
        // would miss what was published meanwhile.
        if (route.tern.find_first_of("*>") != std::string::npos) {
          *error = where(item, path, key + ".tern") +
                   "want a topic, not a pattern (Tern's pattern "
                   "subscriptions are not durable, so a restarted bridge "
                   "would miss messages): write a route per topic";
          return false;
        }
        if (route.subscription.empty())
          route.subscription = "tern-bridge." + route.kafka;
        for (const ToKafkaRoute& other : config->to_kafka) {
          if (other.tern == route.tern &&
              other.subscription == route.subscription) {
            *error = where(item, path, key) + "subscription \"" +
                     route.subscription + "\" of " + route.tern + " is " +
                     route_name(other) + "'s too: each route needs its own";
            return false;
          }
        }
        config->to_kafka.push_back(route);
        return true;
      },
      error);
}

bool read_from_kafka(const toml::node& node, const std::string& path,
                     Config* config, std::string* error) {
  return read_routes(
      node, path, "from_kafka",
      [&](const toml::node& item, const std::string& key) {
        FromKafkaRoute route;
        std::map<std::string, FieldReader> fields = {
            {"kafka", string_field(path, &route.kafka, error)},
            {"tern", string_field(path, &route.tern, error)},
            {"group", string_field(path, &route.group, error)},
            {"max_unconfirmed",
             count_field(path, 1, 100000, &route.max_unconfirmed, error)},
        };
        if (!read_route(item, path, key, fields, {"kafka", "tern"}, error))
          return false;
        if (route.group.empty()) route.group = "tern-bridge";
        config->from_kafka.push_back(route);
        return true;
      },
      error);
}

}  // namespace

bool read_config(const std::string& path, Config* config, std::string* error) {
  std::ifstream file(path);
  if (!file) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::stringstream text;
  text << file.rdbuf();
  toml::table table;
  try {
    table = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    *error = path + ":" + std::to_string(e.source().begin.line) + ": " +
             std::string(e.description());
    return false;
  }
  error->clear();
  for (const auto& [name, node] : table) {
    std::string key(name.str());
    bool ok;
    if (key == "tern") {
      ok = read_tern(node, path, config, error);
    } else if (key == "kafka") {
      ok = read_kafka(node, path, config, error);
    } else if (key == "to_kafka") {
      ok = read_to_kafka(node, path, config, error);
    } else if (key == "from_kafka") {
      ok = read_from_kafka(node, path, config, error);
    } else if (key == "progress_interval") {
      ok = read_duration(node, path, key, &config->progress_interval, error);
    } else if (key == "kafka_timeout") {
      ok = read_duration(node, path, key, &config->kafka_timeout, error);
    } else if (key == "metrics_listen") {
      ok = read_listen(node, path, key, &config->metrics_listen, error);
    } else {
      *error = where(node, path, key) +
               "unknown key (tern, kafka, to_kafka, from_kafka, "
               "progress_interval, kafka_timeout, metrics_listen)";
      ok = false;
    }
    if (!ok) return false;
  }
  bool has_servers = false;
  for (const auto& [property, value] : config->kafka)
    has_servers |=
        property == "bootstrap.servers" || property == "metadata.broker.list";
  if (!has_servers) {
    *error = path + ": kafka: missing \"bootstrap.servers\"";
    return false;
  }
  if (config->to_kafka.empty() && config->from_kafka.empty()) {
    *error = path + ": no routes: add to_kafka or from_kafka";
    return false;
  }
  return true;
}

std::string route_name(const ToKafkaRoute& route) {
  return "tern:" + route.tern + " -> kafka:" + route.kafka;
}

std::string route_name(const FromKafkaRoute& route) {
  return "kafka:" + route.kafka + " -> tern:" + route.tern;
}

}  // namespace tern::bridge
