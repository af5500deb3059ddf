// Logging: one line per event on stderr.
//
// Two formats (--log-format): text, "TIME LEVEL message", for
// people; json, one object per line with time, level, event, msg and the
// event's fields, for log pipelines. Events that operators search for
// (connections, logins, slow consumers, storage faults, dead letters,
// retention) are logged with
// log_event(): a name and fields (connection, peer, user, client, topic,
// subscription, error, trace_id); a field with an empty value is left
// out. Never payloads or secrets.
#pragma once

#include <initializer_list>
#include <string>

namespace tern {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

void set_log_level(LogLevel level);
bool parse_log_level(const char* text, LogLevel* out);
void set_log_format(LogFormat format);
bool log_enabled(LogLevel level);

struct LogField {
  const char* name;
  std::string value;
};

// printf-style message; `event` may be null (a plain message).
void log_event(LogLevel level, const char* event,
               std::initializer_list<LogField> fields, const char* format, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace tern

#define LOG_DEBUG(...) \
  ::tern::log_event(::tern::LogLevel::kDebug, nullptr, {}, __VA_ARGS__)
#define LOG_INFO(...) \
  ::tern::log_event(::tern::LogLevel::kInfo, nullptr, {}, __VA_ARGS__)
#define LOG_WARN(...) \
  ::tern::log_event(::tern::LogLevel::kWarn, nullptr, {}, __VA_ARGS__)
#define LOG_ERROR(...) \
  ::tern::log_event(::tern::LogLevel::kError, nullptr, {}, __VA_ARGS__)
