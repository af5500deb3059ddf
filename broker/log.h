// Logging: one line per event on stderr, with time and level.
#pragma once

namespace tern {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void set_log_level(LogLevel level);
bool parse_log_level(const char* text, LogLevel* out);

// printf-style.
void log(LogLevel level, const char* format, ...)
    __attribute__((format(printf, 2, 3)));

}  // namespace tern

#define LOG_DEBUG(...) ::tern::log(::tern::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) ::tern::log(::tern::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::tern::log(::tern::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::tern::log(::tern::LogLevel::kError, __VA_ARGS__)
