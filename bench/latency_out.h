// --latency-out FILE: the run's whole latency distributions as one JSON
// object, for plotting (bench/plot) and for comparing runs beyond the few
// percentiles of the report. Times are in microseconds:
//
//   {"format": "tern-bench-latency/1", "unit": "us", "run_id": "...",
//    "settings": {"server", "producers", "consumers", "subscriptions",
//                 "topics", "size", "batch", "window", "rate",
//                 "duration_s", "count" (null: duration only), "replay"},
//    "e2e": DIST or null,      publish call -> receipt by a consumer
//    "confirm": DIST or null}  publish call -> broker's confirm
//
//   DIST = {"count": N, "min": us, "mean": us, "max": us,
//           "percentiles": {"0": us, "50": us, "75": us, "90": us,
//                           "95": us, "99": us, "99.9": us, "99.99": us,
//                           "99.999": us, "100": us},
//           "percentile_curve": [[percentile, us], ...],
//           "buckets": [[highest_us, count], ...]}
//
// A distribution is null when the run measured none: no e2e without
// consumers (--consumers 0) or with --replay, no confirm with --no-confirm.
// "percentile_curve" holds HdrHistogram's "percentile distribution" points
// (Histogram::percentile_curve, 5 per halving of 100 - percentile), from 0
// to 100; "buckets" are the histogram's non-empty buckets, lowest first,
// each as the highest value it holds (values are exact to within 0.8%).
#pragma once

#include <cstdio>

#include "options.h"
#include "report.h"

namespace tern::bench {

// Writes the object and a newline to `out`. False if writing failed.
bool write_latency_json(const Options& options, const Results& results,
                        FILE* out);

}  // namespace tern::bench
