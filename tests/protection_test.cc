// What keeps a broker safe to run before users and TLS: protected mode (no
// listening beyond loopback unless --allow-anonymous), the Hello deadline,
// and the per-address connection limit.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST_CASE("protection: a broker with no users stays on loopback") {
  std::string dir = make_temp_dir("tern-protected");
  std::string port = std::to_string(free_port());
  // Refused before anything is opened or bound.
  for (const char* host : {"0.0.0.0", "[::]", "10.1.2.3"}) {
    RunResult run =
        run_program({broker_binary(), "--listen",
                     std::string(host) + ":" + port, "--data", dir + "/data"},
                    "", 10s);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("refusing to listen on") != std::string::npos);
    CHECK(run.err.find("--allow-anonymous") != std::string::npos);
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
    CHECK_FALSE(exists(dir + "/data"));
  }
  // With --allow-anonymous (flag or file) it goes on: here to a data
  // directory that cannot be opened (a file), so nothing is bound.
  write_file(dir + "/not-a-dir", "x");
  write_file(dir + "/open.toml", "allow-anonymous = true\n");
  for (const char* allow : {"--allow-anonymous", "--config"}) {
    std::vector<std::string> argv = {broker_binary(),    "--listen",
                                     "0.0.0.0:" + port,  "--data",
                                     dir + "/not-a-dir", allow};
    if (std::string(allow) == "--config") argv.push_back(dir + "/open.toml");
    RunResult run = run_program(argv, "", 10s);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("cannot open data directory") != std::string::npos);
  }
  remove_tree(dir);
}

TEST_CASE("protection: connections that never say Hello are closed") {
  BrokerOptions options;
  options.extra_args = {"--hello-timeout", "300ms"};
  BrokerProcess broker(options);
  RawConnection greeted(broker.address());
  REQUIRE(greeted.hello().type == wire::Body::HelloOk);
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 200; ++i) {
    silent.push_back(std::make_unique<RawConnection>(broker.address()));
    REQUIRE(silent.back()->ok());
  }
  Reply told = silent.front()->next(3s);
  CHECK(told.type == wire::Body::Error);
  CHECK(told.code == wire::ErrorCode::HelloRequired);
  CHECK(told.message == "no Hello within 300 ms");
  size_t closed = 0;
  for (auto& c : silent) closed += c->wait_closed(3s);
  CHECK(closed == silent.size());
  // The one that said Hello is served as before.
  flatbuffers::FlatBufferBuilder ping;
  frame::finish(ping, wire::Body::Ping, wire::CreatePing(ping, 9).Union());
  REQUIRE(greeted.send_frame(ping));
  CHECK(greeted.next(3s).type == wire::Body::Pong);
}

TEST_CASE("protection: connections from one address are limited") {
  BrokerOptions options;
  options.extra_args = {"--max-connections-per-ip", "3"};
  BrokerProcess broker(options);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<RawConnection>(broker.address()));
    REQUIRE(held.back()->hello().type == wire::Body::HelloOk);
  }
  RawConnection fourth(broker.address());
  Reply refused = fourth.next(3s);
  CHECK(refused.type == wire::Body::Error);
  CHECK(refused.code == wire::ErrorCode::LimitExceeded);
  CHECK(refused.message.find("connections from 127.0.0.1") !=
        std::string::npos);
  CHECK(fourth.wait_closed(3s));
  // A slot freed is a slot again.
  held.pop_back();
  bool accepted = false;
  for (int attempt = 0; attempt < 50 && !accepted; ++attempt) {
    RawConnection again(broker.address());
    accepted = again.hello().type == wire::Body::HelloOk;
    if (!accepted) std::this_thread::sleep_for(20ms);
  }
  CHECK(accepted);
}

}  // namespace
}  // namespace tern::test
