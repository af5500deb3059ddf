#include "log.h"

#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace tern {

namespace {
LogLevel g_level = LogLevel::kInfo;
LogFormat g_format = LogFormat::kText;
const char* const kNames[] = {"debug", "info", "warn", "error"};

// `text` as the inside of a JSON string.
void append_json(std::string* out, const std::string& text) {
  for (char c : text) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\r':
        *out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof escape, "\\u%04x", c);
          *out += escape;
        } else {
          *out += c;
        }
    }
  }
}
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
void set_log_format(LogFormat format) { g_format = format; }
bool log_enabled(LogLevel level) { return level >= g_level; }

bool parse_log_level(const char* text, LogLevel* out) {
  for (int i = 0; i < 4; ++i) {
    if (std::strcmp(text, kNames[i]) == 0) {
      *out = LogLevel(i);
      return true;
    }
  }
  return false;
}

void log_event(LogLevel level, const char* event,
               std::initializer_list<LogField> fields, const char* format,
               ...) {
  if (level < g_level) return;
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm utc;
  gmtime_r(&tv.tv_sec, &utc);
  char time[96];
  std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                utc.tm_min, utc.tm_sec, tv.tv_usec / 1000);
  char message[2048];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);

  std::string line;
  if (g_format == LogFormat::kJson) {
    line = std::string("{\"time\":\"") + time + "\",\"level\":\"" +
           kNames[int(level)] + "\"";
    if (event != nullptr) line += std::string(",\"event\":\"") + event + "\"";
    line += ",\"msg\":\"";
    append_json(&line, message);
    line += '"';
    for (const LogField& f : fields) {
      if (f.value.empty()) continue;  // absent, not ""
      line += ",\"";
      line += f.name;
      line += "\":\"";
      append_json(&line, f.value);
      line += '"';
    }
    line += "}\n";
  } else {
    char head[128];
    std::snprintf(head, sizeof head, "%s %-5s ", time, kNames[int(level)]);
    line = head;
    line += message;
    line += '\n';
  }
  // One fputs per line so concurrent lines never interleave mid-line.
  std::fputs(line.c_str(), stderr);
}

}  // namespace tern
