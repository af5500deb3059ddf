// The JSON documents of the HTTP side's /api/ endpoints, from a Stats
// snapshot (README "Monitoring" describes their fields).
#pragma once

#include <string>

#include "stats.h"

namespace tern {

std::string api_broker(const Stats& stats);         // /api/broker
std::string api_topics(const Stats& stats);         // /api/topics
std::string api_subscriptions(const Stats& stats);  // /api/subscriptions
std::string api_connections(const Stats& stats);    // /api/connections

}  // namespace tern
