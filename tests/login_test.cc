// Users and logging in: tern-broker hash-password, [users.NAME] in the
// config file, Hello's credentials, one answer for every failed login, a
// delay that grows with failures, and the secrets never logged.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string hash_of(const std::string& password) {
  RunResult run =
      run_program({broker_binary(), "hash-password"}, password + "\n", 20s);
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.out.rfind("$argon2id$", 0) == 0);
  return run.out.substr(0, run.out.find('\n'));
}

constexpr char kRobotToken[] = "robot-token-0123456789abcdef0123456789";

// A broker whose config file has the user alice, password "s3cret", and
// the user robot, token kRobotToken.
struct BrokerWithUsers {
  BrokerWithUsers() : dir(make_temp_dir("tern-users")), broker(options(dir)) {}
  ~BrokerWithUsers() { remove_tree(dir); }

  static BrokerOptions options(const std::string& dir) {
    RunResult token = run_program({broker_binary(), "hash-token"},
                                  std::string(kRobotToken) + "\n", 10s);
    REQUIRE(token.exit_code == 0);
    std::ofstream(dir + "/users.toml")
        << "[users.alice]\npassword = \"" << hash_of("s3cret") << "\"\n"
        << "[users.robot]\ntoken = \""
        << token.out.substr(0, token.out.find('\n')) << "\"\n";
    BrokerOptions o;
    o.extra_args = {"--config", dir + "/users.toml"};
    return o;
  }

  std::unique_ptr<Client> connect(const std::string& user,
                                  const std::string& password) {
    ClientOptions o;
    o.user = user;
    o.password = password;
    return Client::connect(broker.address(), o);
  }

  // The error connecting with these credentials, kNone if it worked.
  ErrorCode refusal(const std::string& user, const std::string& password,
                    std::string* message = nullptr) {
    try {
      connect(user, password);
    } catch (const Error& e) {
      if (message) *message = e.what();
      return e.code();
    }
    return ErrorCode::kNone;
  }

  std::string dir;
  BrokerProcess broker;
};

TEST_CASE("login: hash-password prints an argon2id hash; nothing, nothing") {
  std::string a = hash_of("s3cret"), b = hash_of("s3cret");
  CHECK(a != b);  // salted
  RunResult empty = run_program({broker_binary(), "hash-password"}, "", 10s);
  CHECK(empty.exit_code == 2);
  CHECK(empty.err.find("stdin") != std::string::npos);
}

TEST_CASE("login: a user with the right password gets in, nobody else") {
  BrokerWithUsers b;
  auto alice = b.connect("alice", "s3cret");
  CHECK(alice->publish("orders", "hello") == 0);

  std::string wrong, unknown, none;
  CHECK(b.refusal("alice", "wrong-one", &wrong) == ErrorCode::kNotAuthorized);
  CHECK(b.refusal("mallory", "s3cret", &unknown) == ErrorCode::kNotAuthorized);
  CHECK(b.refusal("", "", &none) == ErrorCode::kNotAuthorized);
  // The same answer whether the user exists or not.
  CHECK(wrong.find("wrong user or password") != std::string::npos);
  CHECK(wrong == unknown);
  CHECK(wrong == none);

  std::string log = b.broker.log();
  CHECK(log.find("login failed") != std::string::npos);
  CHECK(log.find("127.0.0.1") != std::string::npos);
  CHECK(log.find("s3cret") == std::string::npos);
  CHECK(log.find("wrong-one") == std::string::npos);
}

TEST_CASE("login: frames sent right after Hello wait for the verdict") {
  BrokerWithUsers b;
  for (const char* password : {"s3cret", "nope"}) {
    RawConnection raw(b.broker.address());
    flatbuffers::FlatBufferBuilder hello;
    frame::finish(hello, wire::Body::Hello,
                  wire::CreateHelloDirect(hello, 1, frame::kProtocolVersion,
                                          "raw", nullptr, "alice", password)
                      .Union());
    flatbuffers::FlatBufferBuilder ping;
    frame::finish(ping, wire::Body::Ping, wire::CreatePing(ping, 2).Union());
    std::string both(reinterpret_cast<const char*>(hello.GetBufferPointer()),
                     hello.GetSize());
    both.append(reinterpret_cast<const char*>(ping.GetBufferPointer()),
                ping.GetSize());
    REQUIRE(raw.send_bytes(both));
    Reply first = raw.next(10s);
    CAPTURE(password);
    if (std::string(password) == "s3cret") {
      CHECK(first.type == wire::Body::HelloOk);
      CHECK(raw.next(5s).type == wire::Body::Pong);
    } else {
      CHECK(first.type == wire::Body::Error);
      CHECK(first.code == wire::ErrorCode::NotAuthorized);
      CHECK(first.request_id == 1);
      CHECK(raw.wait_closed(5s));
      CHECK_FALSE(raw.next(200ms).frame);  // the Ping was never answered
    }
  }
}

TEST_CASE("login: failures from one address are answered ever later") {
  BrokerWithUsers b;
  std::vector<std::chrono::milliseconds> took;
  for (int i = 0; i < 5; ++i) {
    auto start = Clock::now();
    CHECK(b.refusal("alice", "guess" + std::to_string(i)) ==
          ErrorCode::kNotAuthorized);
    took.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::now() - start));
  }
  // 100, 200, 400, 800, 1600 ms of delay, plus the hash check each time.
  CAPTURE(took[0].count());
  CAPTURE(took[4].count());
  CHECK(took[0] >= 100ms);
  CHECK(took[4] >= 1600ms);
  CHECK(took[4] > took[0] + 1000ms);
  // The right password still works (after its own hash check).
  CHECK(b.refusal("alice", "s3cret") == ErrorCode::kNone);
}

TEST_CASE("login: the tern tool logs in with --user and $TERN_PASSWORD") {
  BrokerWithUsers b;
  auto tern = [&](const char* password, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "TERN_PASSWORD"};
    if (password) argv.push_back(std::string("TERN_PASSWORD=") + password);
    argv.insert(argv.end(), {cli_binary(), "--server", b.broker.address()});
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, "", 20s);
  };
  RunResult ok = tern("s3cret", {"--user", "alice", "pub", "t", "hello"});
  INFO("stderr: " << ok.err);
  CHECK(ok.exit_code == 0);
  RunResult wrong = tern("nope", {"pub", "t", "x", "--user", "alice"});
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("wrong user or password") != std::string::npos);
  RunResult anonymous = tern(nullptr, {"topics", "list"});
  CHECK(anonymous.exit_code == 1);
  CHECK(anonymous.err.find("wrong user or password") != std::string::npos);
  RunResult no_password = tern(nullptr, {"--user", "alice", "topics", "list"});
  CHECK(no_password.exit_code == 1);
  CHECK(no_password.err.find("$TERN_PASSWORD") != std::string::npos);
}

TEST_CASE("login: tern-bench logs in with --user and $TERN_PASSWORD") {
  BrokerWithUsers b;
  std::string bench = broker_binary();
  bench.replace(bench.rfind("tern-broker"), 11, "tern-bench");
  auto run = [&](const char* password) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "TERN_PASSWORD"};
    if (password) argv.push_back(std::string("TERN_PASSWORD=") + password);
    argv.insert(argv.end(), {bench, "--server", b.broker.address(), "--user",
                             "alice", "--count", "200", "--size", "64"});
    return run_program(argv, "", 60s);
  };
  RunResult ok = run("s3cret");
  INFO("stdout: " << ok.out << "\nstderr: " << ok.err);
  CHECK(ok.exit_code == 0);
  RunResult missing = run(nullptr);
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("$TERN_PASSWORD") != std::string::npos);
  RunResult wrong = run("nope");
  CHECK(wrong.exit_code == 1);
}

TEST_CASE("login: a token logs its user in; a wrong one is refused") {
  BrokerWithUsers b;
  auto with_token = [&](const std::string& user, const std::string& token) {
    ClientOptions o;
    o.user = user;
    o.token = token;
    try {
      Client::connect(b.broker.address(), o)->ping();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kNone;
  };
  CHECK(with_token("", kRobotToken) == ErrorCode::kNone);
  CHECK(with_token("robot", kRobotToken) == ErrorCode::kNone);
  CHECK(with_token("alice", kRobotToken) == ErrorCode::kNotAuthorized);
  CHECK(with_token("", std::string(kRobotToken) + "x") ==
        ErrorCode::kNotAuthorized);
  CHECK(b.broker.log().find(kRobotToken) == std::string::npos);

  // The tern tool: $TERN_TOKEN or --token-file; --password-file.
  std::string token_file = b.dir + "/token", password_file = b.dir + "/pw";
  std::ofstream(token_file) << kRobotToken << "\n";
  std::ofstream(password_file) << "s3cret\n";
  auto tern = [&](const std::string& env, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "TERN_PASSWORD",
                                     "-u", "TERN_TOKEN"};
    if (!env.empty()) argv.push_back(env);
    argv.insert(argv.end(), {cli_binary(), "--server", b.broker.address()});
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, "", 20s);
  };
  RunResult from_env =
      tern(std::string("TERN_TOKEN=") + kRobotToken, {"pub", "t", "a"});
  INFO("stderr: " << from_env.err);
  CHECK(from_env.exit_code == 0);
  CHECK(tern("", {"--token-file", token_file, "pub", "t", "b"}).exit_code ==
        0);
  CHECK(tern("", {"--user", "alice", "--password-file", password_file, "pub",
                  "t", "c"})
            .exit_code == 0);
  RunResult missing = tern("", {"--token-file", b.dir + "/none", "pub", "t"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("cannot read") != std::string::npos);
}

TEST_CASE("login: users in the config file are checked at start") {
  std::string dir = make_temp_dir("tern-users-bad");
  std::ofstream(dir + "/plain.toml") << "[users.bob]\npassword = \"hunter2\"\n";
  RunResult plain = run_program({broker_binary(), "--config",
                                 dir + "/plain.toml", "--data", dir + "/data"},
                                "", 10s);
  CHECK(plain.exit_code == 2);
  CHECK(plain.err.find("plain.toml:2: users.bob.password: want the "
                       "\"$argon2id$...\"") != std::string::npos);
  CHECK(plain.err.find("hunter2") == std::string::npos);

  // With users, protected mode lets the broker listen beyond loopback: here
  // it gets as far as the data directory (a file, so nothing is bound).
  std::ofstream(dir + "/users.toml")
      << "[users.bob]\npassword = \"" << hash_of("pw") << "\"\n";
  std::ofstream(dir + "/not-a-dir") << "x";
  RunResult open = run_program(
      {broker_binary(), "--config", dir + "/users.toml", "--listen",
       "0.0.0.0:" + std::to_string(free_port()), "--data", dir + "/not-a-dir"},
      "", 20s);
  CHECK(open.exit_code == 1);
  CHECK(open.err.find("cannot open data directory") != std::string::npos);
  remove_tree(dir);
}

}  // namespace
}  // namespace tern::test
