// The Prometheus text format (version 0.0.4) of a Stats snapshot, plus the
// process's own figures read from /proc at the time of the scrape.
#pragma once

#include <string>

#include "stats.h"

namespace tern {

std::string metrics_text(const Stats& stats);

}  // namespace tern
