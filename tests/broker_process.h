// BrokerProcess runs the real tern-broker binary for integration tests.
//
// Each instance owns a temporary work directory under /tmp holding the
// broker's data directory (unless the caller names one) and its stderr log, and
// picks a free loopback port. start() forks and execs the broker and returns
// once a TCP connect to its port succeeds; every wait is bounded, and a broker
// that does not come up fails the test with its stderr attached.
//
// The process is only ever signalled by its own PID. The destructor stops a
// broker that is still running (SIGTERM, SIGKILL after 5 s), fails the current
// test if it did not exit 0 or its stderr holds a sanitizer report, and removes
// the work directory.
//
// The binaries come from the environment, as `make test` sets them:
// TERN_BROKER (default build/tern-broker) and TERN_CLI (default build/tern),
// relative to the current directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/client.h"

namespace tern::test {

struct BrokerOptions {
  // Empty: "data" inside the work directory, created by the broker.
  std::string data_dir;
  std::string fsync = "always";  // "always" or "never"
  // --http: off, so that brokers of tests (and one a developer runs) never
  // compete for the default port.
  std::string http = "off";
  std::vector<std::string> extra_args;  // more tern-broker flags
};

class BrokerProcess {
 public:
  // Starts the broker; throws std::runtime_error (with its stderr) if it does
  // not accept connections within 10 s.
  explicit BrokerProcess(BrokerOptions options = {});
  ~BrokerProcess();

  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  // SIGTERM, then waits up to `grace` before SIGKILL. Returns the exit code,
  // 128 + signal number if it died by a signal, or -1 if it was not running.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // SIGKILL and reap: a crash, as far as the broker can tell.
  void kill9();
  // Starts again on the same data directory, on the same port if the broker
  // can bind it again, else on a new one (address() says which).
  void restart();
  // Starts again on the same data directory and the same port, trying for up
  // to `patience` (a client that reconnects knows only the old address).
  // Throws std::runtime_error if the port stays taken.
  void restart_on_same_port(
      std::chrono::milliseconds patience = std::chrono::seconds(10));

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  std::string address() const;
  const std::string& data_dir() const { return data_dir_; }
  // Everything the broker wrote to stderr so far, across restarts.
  std::string log() const;

 private:
  // One attempt to start on port_: true once it accepts connections, false if
  // the process exited first (e.g. the port was taken). Throws on timeout.
  bool try_start();
  void reap(int* status);

  BrokerOptions options_;
  std::string work_dir_;
  std::string data_dir_;
  std::string log_path_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// --- helpers shared by the integration, crash, bad-input and CLI tests ---

std::string broker_binary();  // $TERN_BROKER or build/tern-broker
std::string cli_binary();     // $TERN_CLI or build/tern

// A loopback port nothing listened on a moment ago.
uint16_t free_port();

// A fresh directory under /tmp; remove_tree() deletes it and its contents.
std::string make_temp_dir(const std::string& prefix);
void remove_tree(const std::string& path);

std::string read_file(const std::string& path);

// Runs a program to completion: `input` is its stdin, its stdout and stderr
// are captured. Killed (by PID) if it runs longer than `timeout`.
struct RunResult {
  int exit_code = -1;  // 128 + signal if killed by one
  bool timed_out = false;
  std::string out;
  std::string err;
};
// A broker config file in `dir` with one user, `name`, logging in with
// `password` (stored as tern-broker hash-password prints it), and `rules`
// (TOML lines such as publish.allow = ["orders.>"]). Returns its path.
std::string users_file(const std::string& dir, const std::string& name,
                       const std::string& password, const std::string& rules);

RunResult run_program(const std::vector<std::string>& argv,
                      const std::string& input,
                      std::chrono::milliseconds timeout);

// Starts a program in the background, its stdout and stderr appended to
// `log_path`. wait_program() reaps it: its exit code (128 + signal), or -1
// after killing it (by PID) if it did not exit within `timeout`.
pid_t start_program(const std::vector<std::string>& argv,
                    const std::string& log_path);
int wait_program(pid_t pid, std::chrono::milliseconds timeout);

// Connects a plain TCP socket to "127.0.0.1:PORT"; -1 on failure.
int connect_tcp(const std::string& address);

// Receives from `sub` until `max` messages arrived, none arrived for `idle`,
// or `total` elapsed, acking each one if `ack`.
std::vector<Message> receive(
    Subscription& sub, size_t max, std::chrono::milliseconds idle,
    std::chrono::milliseconds total = std::chrono::seconds(20),
    bool ack = true);

// Options for the durable subscription `name` on `topic`, starting (when
// new) at the earliest message.
SubscribeOptions durable(const std::string& topic, const std::string& name,
                         uint32_t prefetch = 1000);

// Everything in `topic`, read from the earliest offset through a new durable
// subscription (acked as read), until nothing more arrives for `idle`.
std::vector<Message> read_topic(
    const std::string& address, const std::string& topic,
    std::chrono::milliseconds idle = std::chrono::milliseconds(500));

}  // namespace tern::test
