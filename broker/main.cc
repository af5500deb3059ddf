// tern-broker: reads its flags and config file, opens the store, serves until a
// signal.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "login.h"
#include "store.h"

int main(int argc, char** argv) {
  if (!tern::init_login()) {
    std::fprintf(stderr, "tern-broker: cannot initialise libsodium\n");
    return 1;
  }
  if (argc == 2 && std::strcmp(argv[1], "hash-password") == 0)
    return tern::print_password_hash();
  if (argc == 2 && std::strcmp(argv[1], "hash-token") == 0)
    return tern::print_token_hash();
  tern::Config config;
  int exit_code = tern::parse_config(argc, argv, &config);
  if (exit_code >= 0) return exit_code;
  tern::set_log_level(config.log_level);
  tern::set_log_format(config.log_format);

  // A peer that goes away mid-write must be an error on that write, not the
  // end of the process.
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<tern::storage::Store> store;
  tern::storage::Options options;
  options.path = config.data_dir;
  options.sync = config.fsync;
  options.min_free_bytes = config.min_free_bytes;
  tern::storage::Status status = tern::storage::Store::open(options, &store);
  if (!status.is_ok()) {
    LOG_ERROR("cannot open data directory: %s", status.message().c_str());
    return 1;
  }
  tern::Broker broker(config, *store,
                      [argc, argv](tern::Config* fresh, std::string* error) {
                        return tern::reread_config(argc, argv, fresh, error);
                      });
  if (!broker.load()) return 1;
  return broker.run();
}
