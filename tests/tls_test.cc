// TLS between clients and the broker: the C++ client, `openssl s_client` and
// the tern CLI over TLS; what is refused (a wrong CA, an expired or
// misnamed certificate, a missing client certificate under mutual TLS, a
// plaintext client); handshakes that stall; the certificate replaced on
// SIGHUP. Every certificate is made here, in the test's own directory, by
// the openssl command (EC P-256 keys: quick to make).
#include <doctest/doctest.h>
#include <signal.h>

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

const char* const kOpenssl = "/usr/bin/openssl";

// Certificates for one test, in a temporary directory of its own.
class Pki {
 public:
  Pki() : dir_(make_temp_dir("tern-tls")) {}
  ~Pki() { remove_tree(dir_); }
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  std::string crt(const std::string& name) const { return path(name + ".crt"); }
  std::string key(const std::string& name) const { return path(name + ".key"); }

  // A self-signed CA: NAME.crt and NAME.key.
  void make_ca(const std::string& name) {
    run({kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out",
         crt(name), "-days", "2", "-subj", "/CN=" + name});
  }

  // NAME.key and NAME.crt, signed by `ca`, for localhost and 127.0.0.1.
  // `expired`: valid only on 1 January 2020.
  void make_cert(const std::string& name, const std::string& ca,
                 const std::string& subject, bool expired = false) {
    std::string csr = path(name + ".csr"), ext = path("ext");
    std::ofstream(ext) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    run({kOpenssl, "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out",
         csr, "-subj", subject});
    if (!expired) {
      run({kOpenssl, "x509", "-req", "-in", csr, "-CA", crt(ca), "-CAkey",
           key(ca), "-CAcreateserial", "-out", crt(name), "-days", "2",
           "-extfile", ext});
      return;
    }
    // `openssl x509` cannot date a certificate in the past; `openssl ca`
    // can, with a database of its own.
    std::ofstream(path("index.txt")).flush();
    std::ofstream(path("serial")) << "01\n";
    std::ofstream(path("ca.cnf"))
        << "[ca]\ndefault_ca = tern\n[tern]\ndatabase = " << path("index.txt")
        << "\nnew_certs_dir = " << dir_ << "\nserial = " << path("serial")
        << "\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = "
           "supplied\n";
    run({kOpenssl,
         "ca",
         "-batch",
         "-config",
         path("ca.cnf"),
         "-cert",
         crt(ca),
         "-keyfile",
         key(ca),
         "-in",
         csr,
         "-out",
         crt(name),
         "-startdate",
         "20200101000000Z",
         "-enddate",
         "20200102000000Z",
         "-extfile",
         ext,
         "-notext"});
  }

 private:
  static void run(const std::vector<std::string>& argv) {
    RunResult r = run_program(argv, "", 20s);
    INFO("openssl: " << r.err);
    REQUIRE(r.exit_code == 0);
  }

  std::string dir_;
};

// A broker serving TLS with `cert` (signed by `ca`, see Pki).
BrokerOptions tls_broker(const Pki& pki, const std::string& cert,
                         std::vector<std::string> more = {}) {
  BrokerOptions options;
  options.extra_args = {"--tls-cert", pki.crt(cert), "--tls-key",
                        pki.key(cert)};
  options.extra_args.insert(options.extra_args.end(), more.begin(), more.end());
  return options;
}

ClientOptions trusting(const Pki& pki, const std::string& ca) {
  ClientOptions options;
  options.tls_ca_file = pki.crt(ca);
  options.timeout = 5s;
  return options;
}

// Trusting "ca", with the client certificate `name` for mutual TLS.
ClientOptions presenting(const Pki& pki, const std::string& name) {
  ClientOptions options = trusting(pki, "ca");
  options.tls_cert_file = pki.crt(name);
  options.tls_key_file = pki.key(name);
  return options;
}

// Connects, or returns what connect() threw.
std::string connect_error(const std::string& address,
                          const ClientOptions& options) {
  try {
    auto client = Client::connect(address, options);
    client->ping();
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Waits up to `timeout` for `part` to appear in the broker's log.
bool log_shows(const BrokerProcess& broker, const std::string& part,
               std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!contains(broker.log(), part)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

std::string frame_bytes(flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

TEST_CASE("tls: the client, openssl s_client and the tern CLI connect") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  BrokerProcess broker(tls_broker(pki, "server"));
  CHECK(contains(broker.log(), "listening on 127.0.0.1:" +
                                   std::to_string(broker.port()) + ", TLS"));

  // Over the address's IP, and by name with tls_server_name.
  auto client = Client::connect(broker.address(), trusting(pki, "ca"));
  client->ping();
  CHECK(client->publish("orders", "over tls") == 0);
  ClientOptions by_name = trusting(pki, "ca");
  by_name.tls_server_name = "localhost";
  auto second = Client::connect(broker.address(), by_name);
  // A big frame crosses several TLS records both ways.
  std::string big(300 * 1024, 'x');
  CHECK(second->publish("orders", big) == 1);
  auto sub = second->subscribe(durable("orders", "all"));
  std::vector<Message> got = receive(sub, 2, 2s);
  REQUIRE(got.size() == 2);
  CHECK(got[1].payload == big);

  // openssl s_client: a Hello and a Ping in, HelloOk and Pong out. It
  // waits for more input until killed: 2 s is enough for the replies.
  flatbuffers::FlatBufferBuilder hello, ping;
  frame::finish(
      hello, wire::Body::Hello,
      wire::CreateHelloDirect(hello, 1, frame::kProtocolVersion, "s_client", "")
          .Union());
  frame::finish(ping, wire::Body::Ping, wire::CreatePing(ping, 2).Union());
  RunResult s_client =
      run_program({kOpenssl, "s_client", "-connect", broker.address(),
                   "-CAfile", pki.crt("ca"), "-verify_return_error", "-quiet"},
                  frame_bytes(hello) + frame_bytes(ping), 2s);
  INFO("s_client: " << s_client.err);
  frame::FrameReader reader(1 << 20);
  reader.feed(s_client.out.data(), s_client.out.size());
  std::vector<wire::Body> replies;
  const wire::Frame* frame = nullptr;
  while (reader.next(&frame) == frame::FrameReader::Result::kFrame)
    replies.push_back(frame->body_type());
  CHECK(replies ==
        std::vector<wire::Body>{wire::Body::HelloOk, wire::Body::Pong});

  // The tern CLI: --tls-ca implies --tls.
  RunResult pub =
      run_program({cli_binary(), "--server", broker.address(), "--tls-ca",
                   pki.crt("ca"), "pub", "orders", "from the cli"},
                  "", 10s);
  INFO("tern pub: " << pub.err);
  CHECK(pub.exit_code == 0);
  RunResult list = run_program(
      {cli_binary(), "topics", "list", "--tls-ca", pki.crt("ca"),
       "--tls-server-name", "localhost", "--server", broker.address()},
      "", 10s);
  INFO("tern topics list: " << list.err);
  CHECK(list.exit_code == 0);
  CHECK(contains(list.out, "orders"));
  // Without TLS the CLI cannot talk to it.
  RunResult plain = run_program(
      {cli_binary(), "--server", broker.address(), "topics", "list"}, "", 10s);
  CHECK(plain.exit_code != 0);
}

TEST_CASE("tls: threads share one TLS connection") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  BrokerProcess broker(tls_broker(pki, "server"));
  // Writers on four threads, the reader thread decrypting confirms and
  // deliveries meanwhile: one SSL object, never used by two at once (TSan
  // checks the locking).
  auto client = Client::connect(broker.address(), trusting(pki, "ca"));
  Subscription sub = client->subscribe(durable("shared", "all"));
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&client, t] {
      for (int i = 0; i < 50; ++i) {
        OutgoingMessage message;
        message.payload = "t" + std::to_string(t) + std::string(500, 'x');
        std::vector<OutgoingMessage> batch(8, message);
        client->publish_async("shared", batch);
      }
    });
  }
  for (auto& writer : writers) writer.join();
  client->flush();
  CHECK(receive(sub, 1600, 2s).size() == 1600);
}

TEST_CASE("tls: a wrong CA, a wrong name and an expired certificate fail") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_ca("other-ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  pki.make_cert("expired", "ca", "/CN=localhost", true);
  BrokerProcess broker(tls_broker(pki, "server"));

  std::string wrong_ca =
      connect_error(broker.address(), trusting(pki, "other-ca"));
  CHECK(contains(wrong_ca, "cannot connect to " + broker.address() +
                               ": TLS handshake failed: certificate verify "
                               "failed (unable to get local issuer "
                               "certificate)"));
  ClientOptions misnamed = trusting(pki, "ca");
  misnamed.tls_server_name = "orders.example.com";
  CHECK(
      contains(connect_error(broker.address(), misnamed), "hostname mismatch"));
  // The system's trust store does not know the test's CA either.
  ClientOptions system_store;
  system_store.tls = true;
  CHECK(contains(connect_error(broker.address(), system_store),
                 "certificate verify failed"));
  // The broker logs each refusal with the peer and OpenSSL's reason.
  CHECK(log_shows(broker, "TLS handshake failed: tlsv1 alert unknown ca"));
  CHECK(broker.stop() == 0);

  BrokerProcess stale(tls_broker(pki, "expired"));
  CHECK(contains(connect_error(stale.address(), trusting(pki, "ca")),
                 "certificate verify failed (certificate has expired)"));
}

TEST_CASE("tls: a plaintext client on a TLS listener is closed at once") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  BrokerProcess broker(tls_broker(pki, "server"));
  RawConnection raw(broker.address());
  REQUIRE(raw.ok());
  flatbuffers::FlatBufferBuilder hello;
  frame::finish(
      hello, wire::Body::Hello,
      wire::CreateHelloDirect(hello, 1, frame::kProtocolVersion, "plain", "")
          .Union());
  auto start = std::chrono::steady_clock::now();
  REQUIRE(raw.send_frame(hello));
  CHECK(raw.wait_closed(3s));
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(log_shows(broker,
                  "not TLS (plaintext client on a TLS listener?); "
                  "closing"));
  // The plaintext C++ client gets a clear error, not a hang.
  ClientOptions plain;
  plain.timeout = 3s;
  CHECK(contains(connect_error(broker.address(), plain), "cannot connect"));

  // And a TLS client on a plaintext broker is told what is likely wrong.
  BrokerProcess plaintext;
  CHECK(contains(connect_error(plaintext.address(), trusting(pki, "ca")),
                 "is the broker serving TLS?"));
}

TEST_CASE("tls: mutual TLS needs a client certificate the CA signed") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_ca("clients");
  pki.make_ca("other-ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  pki.make_cert("orders", "clients", "/O=Acme/CN=orders");
  pki.make_cert("stranger", "other-ca", "/CN=stranger");
  BrokerProcess broker(tls_broker(
      pki, "server",
      {"--tls-client-ca", pki.crt("clients"), "--log-level", "debug"}));
  CHECK(contains(broker.log(), "mutual TLS (client certificates required)"));

  ClientOptions anonymous = trusting(pki, "ca");
  std::string error = connect_error(broker.address(), anonymous);
  CHECK_MESSAGE(contains(error, "certificate required"), error);
  CHECK(log_shows(broker,
                  "TLS handshake failed: peer did not return a "
                  "certificate"));

  error = connect_error(broker.address(), presenting(pki, "stranger"));
  CHECK_MESSAGE(contains(error, "unknown ca"), error);
  CHECK(log_shows(broker,
                  "certificate verify failed (unable to get local "
                  "issuer certificate)"));

  auto client = Client::connect(broker.address(), presenting(pki, "orders"));
  CHECK(client->publish("orders", "signed") == 0);
  // Connection::peer_subject(), RFC 2253: most specific first.
  CHECK(log_shows(broker, "client certificate CN=orders,O=Acme"));
}

TEST_CASE(
    "tls: stalled handshakes neither slow others nor outlive the "
    "deadline") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  BrokerProcess broker(tls_broker(pki, "server", {"--hello-timeout", "1s"}));
  auto client = Client::connect(broker.address(), trusting(pki, "ca"));

  // Half send nothing after connecting, half the start of a ClientHello
  // (a record header promising 512 bytes, and 4 of them).
  const std::string partial_hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9);
  std::vector<std::unique_ptr<RawConnection>> stalled;
  auto opened = std::chrono::steady_clock::now();
  for (int i = 0; i < 500; ++i) {
    stalled.push_back(std::make_unique<RawConnection>(broker.address()));
    REQUIRE(stalled.back()->ok());
    if (i % 2 == 1) REQUIRE(stalled.back()->send_bytes(partial_hello));
  }
  auto start = std::chrono::steady_clock::now();
  CHECK(client->publish("orders", "while they stall") == 0);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  // Still open: nothing but the deadline closes them.
  CHECK_FALSE(stalled[0]->wait_closed(100ms));
  CHECK_FALSE(stalled[1]->wait_closed(100ms));

  // Every one is closed at the deadline (1 s after its accept), well
  // before 5 s.
  size_t closed = 0;
  for (auto& raw : stalled) closed += raw->wait_closed(5s) ? 1 : 0;
  CHECK(closed == 500);
  CHECK(std::chrono::steady_clock::now() - opened < 6s);
  CHECK(log_shows(broker, "closed: no Hello within 1000 ms"));
  client->ping();  // the greeted client was left alone
}

TEST_CASE("tls: SIGHUP replaces the certificate for new connections") {
  Pki pki;
  pki.make_ca("old-ca");
  pki.make_ca("new-ca");
  pki.make_cert("old", "old-ca", "/CN=localhost");
  pki.make_cert("new", "new-ca", "/CN=localhost");
  // The broker reads its certificate from files that are then replaced.
  std::string cert = pki.path("server.crt"), key = pki.path("server.key");
  auto install = [&](const std::string& name) {
    std::ofstream(cert) << read_file(pki.crt(name));
    std::ofstream(key) << read_file(pki.key(name));
  };
  install("old");
  BrokerOptions options;
  options.extra_args = {"--tls-cert", cert, "--tls-key", key};
  BrokerProcess broker(options);

  auto before = Client::connect(broker.address(), trusting(pki, "old-ca"));
  CHECK(contains(connect_error(broker.address(), trusting(pki, "new-ca")),
                 "certificate verify failed"));

  install("new");
  REQUIRE(kill(broker.pid(), SIGHUP) == 0);
  REQUIRE(log_shows(broker, "SIGHUP: configuration reloaded"));
  CHECK(connect_error(broker.address(), trusting(pki, "new-ca")).empty());
  CHECK(contains(connect_error(broker.address(), trusting(pki, "old-ca")),
                 "certificate verify failed"));
  before->ping();  // existing connections keep theirs

  // A key that does not load is logged, and the certificate in use kept.
  std::ofstream(key) << "not a key\n";
  REQUIRE(kill(broker.pid(), SIGHUP) == 0);
  CHECK(log_shows(broker, "new connections keep the previous certificate"));
  CHECK(connect_error(broker.address(), trusting(pki, "new-ca")).empty());

  // A config file that lost its certificate does not turn TLS off.
  install("new");
  std::string toml = pki.path("tern.toml");
  std::ofstream(toml) << "tls-cert = \"" << cert << "\"\ntls-key = \"" << key
                      << "\"\n";
  BrokerOptions from_file;
  from_file.extra_args = {"--config", toml};
  BrokerProcess configured(from_file);
  std::ofstream(toml) << "log-level = \"info\"\n";
  REQUIRE(kill(configured.pid(), SIGHUP) == 0);
  CHECK(log_shows(configured, "turning TLS on or off needs a restart"));
  CHECK(connect_error(configured.address(), trusting(pki, "new-ca")).empty());
}

TEST_CASE("tls: a client certificate's subject logs its user in") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_ca("clients");
  pki.make_cert("server", "ca", "/CN=localhost");
  pki.make_cert("orders", "clients", "/O=Acme/CN=orders");
  pki.make_cert("stranger", "clients", "/CN=stranger");
  std::string toml = pki.path("users.toml");
  std::ofstream(toml) << "[users.orders]\ncert_subject = \"CN=orders,O=Acme\"\n"
                      << "publish.allow = [\"orders.>\"]\n";
  BrokerProcess broker(tls_broker(
      pki, "server", {"--tls-client-ca", pki.crt("clients"), "--config", toml}));

  // No password: the certificate says who it is.
  auto orders = Client::connect(broker.address(), presenting(pki, "orders"));
  CHECK(log_shows(broker, "user orders logged in"));
  CHECK(orders->publish("orders.eu", "signed") == 0);
  try {
    orders->publish("payments", "x");
    FAIL_CHECK("a publish beyond the user's permissions went through");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNotAuthorized);
  }
  // Naming the certificate's user is fine, naming another is not.
  ClientOptions named = presenting(pki, "orders");
  named.user = "orders";
  CHECK(connect_error(broker.address(), named).empty());
  named.user = "admin";
  CHECK(contains(connect_error(broker.address(), named),
                 "wrong user or password"));
  // A certificate the CA signed for no user gets the TLS session, not in.
  CHECK(contains(connect_error(broker.address(), presenting(pki, "stranger")),
                 "wrong user or password"));
}

TEST_CASE("tls: the broker's TLS settings are checked at start") {
  Pki pki;
  pki.make_ca("ca");
  pki.make_cert("server", "ca", "/CN=localhost");
  std::string data = pki.path("data");
  std::string port = "127.0.0.1:" + std::to_string(free_port());
  auto start = [&](std::vector<std::string> more) {
    std::vector<std::string> argv = {broker_binary(), "--listen", port,
                                     "--data", data};
    argv.insert(argv.end(), more.begin(), more.end());
    return run_program(argv, "", 10s);
  };
  RunResult alone = start({"--tls-cert", pki.crt("server")});
  CHECK(alone.exit_code == 2);
  CHECK(contains(alone.err, "--tls-cert needs --tls-key as well"));
  RunResult ca_only = start({"--tls-client-ca", pki.crt("ca")});
  CHECK(ca_only.exit_code == 2);
  RunResult missing = start(
      {"--tls-cert", pki.path("nothing.crt"), "--tls-key", pki.key("server")});
  CHECK(missing.exit_code != 0);
  CHECK(contains(missing.err, "cannot load TLS certificate " +
                                  pki.path("nothing.crt") +
                                  ": No such file or directory"));
  RunResult mismatch =
      start({"--tls-cert", pki.crt("server"), "--tls-key", pki.key("ca")});
  CHECK(mismatch.exit_code != 0);
  CHECK(contains(mismatch.err, "cannot load TLS key " + pki.key("ca")));
}

}  // namespace
}  // namespace tern::test
