#include "log.h"

#include <sys/time.h>

#include <cstdio>
#include <ctime>

namespace tern::bridge {

void log_line(const std::string& text) {
  timeval now;
  gettimeofday(&now, nullptr);
  tm utc;
  gmtime_r(&now.tv_sec, &utc);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line, so that routes' threads do not interleave.
  std::fprintf(stderr, "%s.%03dZ %s\n", stamp, int(now.tv_usec / 1000),
               text.c_str());
}

}  // namespace tern::bridge
