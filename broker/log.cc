#include "log.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sys/time.h>

namespace tern {

namespace {
LogLevel g_level = LogLevel::kInfo;
const char* const kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }

bool parse_log_level(const char* text, LogLevel* out) {
  for (int i = 0; i < 4; ++i) {
    if (std::strcmp(text, kNames[i]) == 0) {
      *out = LogLevel(i);
      return true;
    }
  }
  return false;
}

void log(LogLevel level, const char* format, ...) {
  if (level < g_level) return;
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm utc;
  gmtime_r(&tv.tv_sec, &utc);
  char line[2048];
  int n = std::snprintf(line, sizeof line,
                        "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                        utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                        utc.tm_hour, utc.tm_min, utc.tm_sec, tv.tv_usec / 1000,
                        kNames[int(level)]);
  va_list args;
  va_start(args, format);
  std::vsnprintf(line + n, sizeof line - n, format, args);
  va_end(args);
  // One fputs per line so concurrent lines never interleave mid-line.
  std::strncat(line, "\n", sizeof line - std::strlen(line) - 1);
  std::fputs(line, stderr);
}

}  // namespace tern
