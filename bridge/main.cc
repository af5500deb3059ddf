// tern-bridge: mirrors Tern topics into Kafka and Kafka topics into Tern,
// as its config file's routes say (bridge/README.md). Each route runs on a
// thread of its own, with its own Tern connection and Kafka client.
//
// Exit status: 0 after SIGTERM or SIGINT once every route stopped cleanly;
// 1 if the config is wrong or a route failed (the others are stopped
// first); 2 for bad usage. A route that fails leaves nothing unconfirmed
// acked or committed: run the bridge under a supervisor that restarts it.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "from_kafka.h"
#include "log.h"
#include "metrics.h"
#include "to_kafka.h"

namespace {

// How long stopping may take before the bridge exits anyway: librdkafka's
// close can hang on a broken cluster, and a supervisor waits for the exit.
constexpr int kStopGraceSeconds = 30;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tern-bridge: mirrors Tern topics to Kafka and back"};
  std::string config_path;
  app.add_option("-c,--config", config_path,
                 "the bridge's config file (TOML, see bridge/README.md)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  using namespace tern::bridge;
  Config config;
  std::string error;
  if (!read_config(config_path, &config, &error)) {
    log_line("tern-bridge: " + error);
    return 1;
  }

  // Signals are taken by sigtimedwait below, never by a route's thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  AllMetrics metrics;
  for (const ToKafkaRoute& route : config.to_kafka)
    metrics.emplace_back(route_name(route), "to_kafka");
  for (const FromKafkaRoute& route : config.from_kafka)
    metrics.emplace_back(route_name(route), "from_kafka");
  std::unique_ptr<MetricsServer> metrics_server;
  if (!config.metrics_listen.empty()) {
    try {
      metrics_server =
          std::make_unique<MetricsServer>(config.metrics_listen, metrics);
    } catch (const std::exception& e) {
      log_line(std::string("tern-bridge: ") + e.what());
      return 1;
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::vector<std::thread> routes;
  auto start = [&](RouteMetrics* m, std::function<void()> run) {
    routes.emplace_back([&failed, m, run] {
      m->running = true;
      try {
        run();
      } catch (const std::exception& e) {
        log_line(m->route + ": " + e.what());
        failed = true;
      }
      m->running = false;
    });
  };
  // Routes and their metrics are in the config's order, to_kafka first.
  size_t i = 0;
  for (const ToKafkaRoute& route : config.to_kafka) {
    RouteMetrics* m = &metrics[i++];
    start(m, [&, r = &route, m] { run_to_kafka(config, *r, *m, stop); });
  }
  for (const FromKafkaRoute& route : config.from_kafka) {
    RouteMetrics* m = &metrics[i++];
    start(m, [&, r = &route, m] { run_from_kafka(config, *r, *m, stop); });
  }

  timespec tick{0, 200 * 1000 * 1000};
  int signal_number = -1;
  while (!failed && signal_number < 0)
    signal_number = sigtimedwait(&signals, nullptr, &tick);
  log_line(failed ? "tern-bridge: a route failed; stopping the others"
                  : std::string("tern-bridge: ") + strsignal(signal_number) +
                        "; stopping");
  stop = true;

  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(kStopGraceSeconds));
    log_line("tern-bridge: routes did not stop within " +
             std::to_string(kStopGraceSeconds) + " s; exiting");
    _exit(1);
  }).detach();
  for (std::thread& route : routes) route.join();
  return failed ? 1 : 0;
}
