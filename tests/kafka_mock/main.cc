// tern-kafka-mock: librdkafka's mock Kafka cluster as a process of its own,
// for trying tern-bridge and measuring it (bench/bridge.sh) without a Kafka.
//
//   tern-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...
//
// Prints "bootstrap.servers=HOST:PORT,..." on stdout once the cluster
// listens, then runs until SIGTERM or SIGINT. It is not a real Kafka's speed
// or durability: everything is in memory.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "../kafka_mock.h"

int main(int argc, char** argv) {
  int brokers = 3;
  std::vector<std::pair<std::string, int>> topics;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--brokers" && i + 1 < argc) {
      brokers = std::atoi(argv[++i]);
    } else if (arg == "--topic" && i + 1 < argc) {
      std::string topic = argv[++i];
      size_t colon = topic.rfind(':');
      if (colon == std::string::npos || colon == 0) {
        std::fprintf(stderr,
                     "tern-kafka-mock: --topic wants NAME:PARTITIONS\n");
        return 2;
      }
      topics.emplace_back(topic.substr(0, colon),
                          std::atoi(topic.c_str() + colon + 1));
    } else {
      std::fprintf(stderr,
                   "usage: tern-kafka-mock [--brokers N] "
                   "[--topic NAME:PARTITIONS]...\n");
      return 2;
    }
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    tern::test::KafkaMock mock(brokers);
    for (const auto& [name, partitions] : topics)
      mock.create_topic(name, partitions);
    std::printf("bootstrap.servers=%s\n", mock.bootstraps().c_str());
    std::fflush(stdout);
    int signal_number;
    sigwait(&signals, &signal_number);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern-kafka-mock: %s\n", e.what());
    return 1;
  }
  return 0;
}
