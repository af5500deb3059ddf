// Request/reply: Client::request, Client::respond and Responder.
//
// Two kinds of tests. The "request (fake broker)" ones run the client against
// FakeBroker, a hand-scripted stand-in on a loopback port, so the client's own
// logic (headers, inbox, handing replies to the right thread, dropping late
// replies, ConsumerClosed) is checked exactly and without depending on the
// broker. The others run the real broker (BrokerProcess), end to end.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "fake_broker.h"
#include "frame.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string str(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : s->str();
}
std::string str(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

// One published message, as the fake broker saw it.
struct Published {
  std::string topic;
  std::string payload;
  std::map<std::string, std::string> headers;
  uint32_t ttl_ms = 0;
};

Published published(const wire::Publish& publish) {
  Published p;
  p.topic = str(publish.topic());
  const wire::Message* m = publish.messages()->Get(0);
  p.payload = str(m->payload());
  if (m->headers()) {
    for (const wire::Header* h : *m->headers()) {
      p.headers[str(h->name())] = str(h->value());
    }
  }
  p.ttl_ms = m->ttl_ms();
  return p;
}

// What a fake broker's script observed, checked on the test's thread.
struct Seen {
  bool hello = false;
  std::string inbox;  // from CreateTopic
  bool inbox_temporary = false;
  std::vector<Published> requests;
  // The last Subscribe.
  std::string sub_topic, sub_name;
  int sub_start = -1;
  uint32_t sub_prefetch = 0;
  int acks = 0;                    // offsets acked
  std::vector<wire::Body> frames;  // every frame type after Hello
};

// Serves requests the way a broker plus an echoing responder would, with one
// twist: it waits until `batch` requests are in, then answers them in
// reverse order, after first sending a reply nobody asked for.
void serve_requests_in_reverse(FakeBroker& broker, size_t batch, Seen* seen) {
  seen->hello = broker.accept_and_hello(5s);
  if (!seen->hello) return;
  const uint64_t kInboxConsumer = 42;
  uint64_t offset = 0;
  std::vector<Published> pending;
  auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    const wire::Frame* f = broker.next(200ms);
    if (f == nullptr) {
      if (seen->requests.size() >= batch && seen->acks >= int(batch)) break;
      continue;
    }
    seen->frames.push_back(f->body_type());
    switch (f->body_type()) {
      case wire::Body::CreateTopic: {
        auto* c = f->body_as_CreateTopic();
        seen->inbox = str(c->topic());
        seen->inbox_temporary = c->temporary();
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(
            fbb, wire::Body::CreateTopicOk,
            wire::CreateCreateTopicOk(fbb, c->request_id(), true).Union());
        broker.send(fbb);
        break;
      }
      case wire::Body::Subscribe:
        broker.subscribe_ok(f->body_as_Subscribe()->request_id(),
                            kInboxConsumer);
        break;
      case wire::Body::Publish: {
        auto* p = f->body_as_Publish();
        broker.publish_ack(p->request_id(), offset++);
        seen->requests.push_back(published(*p));
        pending.push_back(seen->requests.back());
        if (pending.size() == batch) {
          broker.deliver(kInboxConsumer, seen->inbox, 1000,
                         {{kCorrelationIdHeader, "no-such-request"}}, "stray");
          for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
            broker.deliver(
                kInboxConsumer, seen->inbox, offset++,
                {{kCorrelationIdHeader, it->headers[kCorrelationIdHeader]}},
                "re:" + it->payload);
          }
          pending.clear();
        }
        break;
      }
      case wire::Body::Ack:
        // Acks may come merged into ranges: count the offsets.
        for (const wire::OffsetRange* r : *f->body_as_Ack()->ranges())
          seen->acks += int(r->last() - r->first() + 1);
        break;
      default:
        break;
    }
  }
}

}  // namespace

TEST_CASE("request (fake broker): replies reach the thread that asked") {
  FakeBroker broker;
  const size_t kThreads = 4;
  Seen seen;
  std::thread script(serve_requests_in_reverse, std::ref(broker), kThreads,
                     &seen);
  std::vector<std::string> answers(kThreads);
  std::vector<std::string> failures(kThreads);
  {
    auto client = Client::connect(broker.address());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        try {
          answers[i] =
              client->request("svc", "p" + std::to_string(i), 5s).payload;
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  script.join();
  REQUIRE(seen.hello);
  for (size_t i = 0; i < kThreads; ++i) {
    INFO("thread " << i << ": " << failures[i]);
    CHECK(answers[i] == "re:p" + std::to_string(i));
  }
  // One inbox, temporary, named _inbox.<16 hex digits>.
  CHECK(seen.inbox_temporary);
  REQUIRE(seen.inbox.size() == 7 + 16);
  CHECK(seen.inbox.rfind("_inbox.", 0) == 0);
  CHECK(seen.inbox.find_first_not_of("0123456789abcdef", 7) ==
        std::string::npos);
  REQUIRE(seen.requests.size() == kThreads);
  for (Published& p : seen.requests) {
    CHECK(p.topic == "svc");
    CHECK(p.headers[kReplyToHeader] == seen.inbox);
    CHECK(!p.headers[kCorrelationIdHeader].empty());
    CHECK(p.ttl_ms == 5000);  // the request expires with its timeout
  }
  // Every reply was acked, the stray one too.
  CHECK(seen.acks == int(kThreads) + 1);
}

TEST_CASE(
    "request (fake broker): a timeout is quick and clear, and its late reply "
    "goes to nobody") {
  FakeBroker broker;
  Seen seen;
  std::string first_id;
  std::thread script([&] {
    seen.hello = broker.accept_and_hello(5s);
    auto deadline = Clock::now() + 10s;
    int publishes = 0;
    while (seen.hello && Clock::now() < deadline) {
      const wire::Frame* f = broker.next(200ms);
      if (f == nullptr) {
        if (publishes == 2) break;
        continue;
      }
      if (auto* c = f->body_as_CreateTopic()) {
        seen.inbox = str(c->topic());
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(
            fbb, wire::Body::CreateTopicOk,
            wire::CreateCreateTopicOk(fbb, c->request_id(), true).Union());
        broker.send(fbb);
      } else if (auto* s = f->body_as_Subscribe()) {
        broker.subscribe_ok(s->request_id(), 9);
      } else if (auto* p = f->body_as_Publish()) {
        broker.publish_ack(p->request_id(), uint64_t(publishes));
        Published request = published(*p);
        seen.requests.push_back(request);
        if (++publishes == 1) {
          first_id = request.headers[kCorrelationIdHeader];
          continue;  // no answer: let it time out
        }
        // The late reply to the first request, then the second's.
        broker.deliver(9, seen.inbox, 10, {{kCorrelationIdHeader, first_id}},
                       "late");
        broker.deliver(
            9, seen.inbox, 11,
            {{kCorrelationIdHeader, request.headers[kCorrelationIdHeader]}},
            "second");
      }
    }
  });

  std::string message;
  ErrorCode code = ErrorCode::kNone;
  std::chrono::milliseconds took{0};
  std::string second;
  try {
    auto client = Client::connect(broker.address());
    auto start = Clock::now();
    try {
      client->request("quiet", "hello?", 300ms);
    } catch (const Error& e) {
      code = e.code();
      message = e.what();
    }
    took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                 start);
    second = client->request("quiet", "again", 5s).payload;
  } catch (const std::exception& e) {
    FAIL_CHECK("unexpected error: " << e.what());
  }
  script.join();
  CHECK(code == ErrorCode::kTimeout);
  CHECK(message ==
        "no reply to request on 'quiet' within 300 ms (is a responder "
        "running?)");
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  CHECK(second == "second");
}

TEST_CASE(
    "request (fake broker): a consumer the broker closes hands out what it "
    "had, then throws the broker's reason") {
  FakeBroker broker;
  Seen seen;
  std::thread script([&] {
    seen.hello = broker.accept_and_hello(5s);
    auto deadline = Clock::now() + 10s;
    while (seen.hello && Clock::now() < deadline) {
      const wire::Frame* f = broker.next(5s);
      if (f == nullptr) break;  // the client closed
      seen.frames.push_back(f->body_type());
      if (auto* s = f->body_as_Subscribe()) {
        broker.subscribe_ok(s->request_id(), 7);
        broker.deliver(7, "orders", 0, {}, "m0");
        broker.deliver(7, "orders", 1, {}, "m1");
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(
            fbb, wire::Body::ConsumerClosed,
            wire::CreateConsumerClosedDirect(fbb, 7, wire::ErrorCode::Deleted,
                                             "topic orders was deleted")
                .Union());
        broker.send(fbb);
      } else if (auto* p = f->body_as_Ping()) {
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(fbb, wire::Body::Pong,
                      wire::CreatePong(fbb, p->request_id()).Union());
        broker.send(fbb);
      }
    }
  });

  std::vector<std::string> got;
  ErrorCode code = ErrorCode::kNone;
  std::string message;
  {
    auto client = Client::connect(broker.address());
    SubscribeOptions options;
    options.topic = "orders";
    auto sub = client->subscribe(options);
    try {
      for (int i = 0; i < 5; ++i) {
        auto m = sub.next(2s);
        if (!m) break;
        got.push_back(m->payload);
      }
    } catch (const Error& e) {
      code = e.code();
      message = e.what();
    }
    // Ending it now sends nothing: the broker ended it already.
    sub.unsubscribe();
    client->ping();  // everything the client sent is in before the Pong
  }
  script.join();
  REQUIRE(seen.hello);
  CHECK(got == std::vector<std::string>{"m0", "m1"});
  CHECK(code == ErrorCode::kDeleted);
  CHECK(message.find("topic orders was deleted") != std::string::npos);
  CHECK(std::count(seen.frames.begin(), seen.frames.end(),
                   wire::Body::Unsubscribe) == 0);
}

TEST_CASE(
    "request (fake broker): a responder replies, reports handler errors and "
    "acks what it cannot answer") {
  FakeBroker broker;
  Seen seen;
  std::vector<Published> replies;
  std::vector<uint64_t> acked;
  std::thread script([&] {
    seen.hello = broker.accept_and_hello(5s);
    auto deadline = Clock::now() + 10s;
    while (seen.hello && Clock::now() < deadline) {
      const wire::Frame* f = broker.next(5s);
      if (f == nullptr) break;
      if (auto* s = f->body_as_Subscribe()) {
        seen.sub_topic = str(s->topic());
        seen.sub_name = str(s->subscription());
        seen.sub_start = int(s->start());
        seen.sub_prefetch = s->prefetch();
        broker.subscribe_ok(s->request_id(), 3);
        // A good request, one the handler fails, one without reply-to and
        // one whose requester is gone.
        broker.deliver(
            3, "svc", 0,
            {{kReplyToHeader, "_inbox.a"}, {kCorrelationIdHeader, "c0"}}, "ok");
        broker.deliver(
            3, "svc", 1,
            {{kReplyToHeader, "_inbox.a"}, {kCorrelationIdHeader, "c1"}},
            "fail");
        broker.deliver(3, "svc", 2, {}, "not a request");
        broker.deliver(
            3, "svc", 3,
            {{kReplyToHeader, "_inbox.gone"}, {kCorrelationIdHeader, "c3"}},
            "ok");
      } else if (auto* p = f->body_as_Publish()) {
        replies.push_back(published(*p));
        if (replies.back().topic == "_inbox.gone") {
          broker.error(p->request_id(), wire::ErrorCode::UnknownTopic,
                       "no topic _inbox.gone");
        } else {
          broker.publish_ack(p->request_id(), replies.size());
        }
      } else if (auto* a = f->body_as_Ack()) {
        for (const wire::OffsetRange* r : *a->ranges()) {
          for (uint64_t o = r->first(); o <= r->last(); ++o) acked.push_back(o);
        }
      } else if (auto* p = f->body_as_Ping()) {
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(fbb, wire::Body::Pong,
                      wire::CreatePong(fbb, p->request_id()).Union());
        broker.send(fbb);
      } else if (auto* u = f->body_as_Unsubscribe()) {
        flatbuffers::FlatBufferBuilder fbb;
        frame::finish(fbb, wire::Body::UnsubscribeOk,
                      wire::CreateUnsubscribeOk(fbb, u->request_id()).Union());
        broker.send(fbb);
      }
    }
  });

  std::vector<bool> served;
  std::string failure;
  try {
    auto client = Client::connect(broker.address());
    auto responder = client->respond("svc", [](const Message& m) {
      if (m.payload == "fail") throw std::runtime_error("cannot do that");
      return "done:" + m.payload;
    });
    for (int i = 0; i < 4; ++i) served.push_back(responder.serve_one(2s));
    client->ping();  // the last ack is in
  } catch (const std::exception& e) {
    failure = e.what();
  }
  script.join();
  REQUIRE(seen.hello);
  INFO("failure: " << failure);
  CHECK(failure.empty());
  // A durable, shared subscription that starts at the earliest request, one
  // request at a time.
  CHECK(seen.sub_topic == "svc");
  CHECK(seen.sub_name == "responders");
  CHECK(seen.sub_start == int(wire::StartPosition::Earliest));
  CHECK(seen.sub_prefetch == 1);

  CHECK(served == std::vector<bool>{true, true, false, true});
  REQUIRE(replies.size() == 3);
  CHECK(replies[0].topic == "_inbox.a");
  CHECK(replies[0].payload == "done:ok");
  CHECK(replies[0].headers[kCorrelationIdHeader] == "c0");
  CHECK(replies[0].headers.count(kErrorHeader) == 0);
  CHECK(replies[1].payload.empty());
  CHECK(replies[1].headers[kCorrelationIdHeader] == "c1");
  CHECK(replies[1].headers[kErrorHeader] == "cannot do that");
  CHECK(replies[2].topic == "_inbox.gone");
  CHECK(acked == std::vector<uint64_t>{0, 1, 2, 3});
}

// --- against the real broker ---

namespace {

// A responder serving on its own thread until stopped; `handler` answers.
class ResponderThread {
 public:
  ResponderThread(const std::string& address, const std::string& topic,
                  Client::RequestHandler handler)
      : client_(Client::connect(address)),
        responder_(client_->respond(topic, std::move(handler))),
        thread_([this] {
          try {
            while (!stop_) responder_.serve_one(100ms);
          } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(mu_);
            error_ = e.what();
          }
        }) {}
  ~ResponderThread() {
    stop_ = true;
    thread_.join();
  }
  std::string error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::unique_ptr<Client> client_;
  Responder responder_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string error_;
  std::thread thread_;  // last: starts once the rest exists
};

std::vector<std::string> inbox_topics(Client& client) {
  std::vector<std::string> inboxes;
  for (const TopicInfo& t : client.topics()) {
    if (t.name.rfind("_inbox.", 0) == 0) inboxes.push_back(t.name);
  }
  return inboxes;
}

}  // namespace

TEST_CASE("request: a responder's reply comes back to the requester") {
  BrokerProcess broker;
  ResponderThread responder(broker.address(), "echo", [](const Message& m) {
    return "echo:" + m.payload;
  });
  auto client = Client::connect(broker.address());
  Message reply = client->request("echo", "hi", 5s, {{"trace", "t1"}});
  CHECK(reply.payload == "echo:hi");
  CHECK(reply.topic.rfind("_inbox.", 0) == 0);
  // Again, through the same inbox.
  CHECK(client->request("echo", "again", 5s).payload == "echo:again");
  CHECK(inbox_topics(*client).size() == 1);
  CHECK(responder.error().empty());
}

TEST_CASE(
    "request: concurrent requests from several threads get their own reply") {
  BrokerProcess broker;
  ResponderThread r1(broker.address(), "double",
                     [](const Message& m) { return m.payload + m.payload; });
  ResponderThread r2(broker.address(), "double",
                     [](const Message& m) { return m.payload + m.payload; });
  auto client = Client::connect(broker.address());
  const int kThreads = 4, kEach = 25;
  std::atomic<int> right{0};
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kEach; ++i) {
          std::string p = std::to_string(t) + "-" + std::to_string(i) + ";";
          if (client->request("double", p, 5s).payload == p + p) ++right;
        }
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(failures[t].empty());
  }
  CHECK(right == kThreads * kEach);
  CHECK(r1.error().empty());
  CHECK(r2.error().empty());
}

TEST_CASE(
    "request: without a responder it times out quickly with a clear message") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto start = Clock::now();
  try {
    client->request("nobody-home", "hello?", 300ms);
    FAIL_CHECK("request returned without a responder");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kTimeout);
    CHECK(std::string(e.what()) ==
          "no reply to request on 'nobody-home' within 300 ms (is a "
          "responder running?)");
  }
  auto took = Clock::now() - start;
  CHECK(took >= 250ms);
  CHECK(took < 3s);
}

TEST_CASE("request: a request that timed out is not answered later") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  CHECK_THROWS_AS(client->request("late", "stale", 200ms), Error);
  std::this_thread::sleep_for(300ms);  // its ttl has passed
  std::atomic<int> handled{0};
  ResponderThread responder(broker.address(), "late", [&](const Message& m) {
    ++handled;
    return m.payload;
  });
  CHECK(client->request("late", "fresh", 5s).payload == "fresh");
  CHECK(handled == 1);  // only the fresh one
}

TEST_CASE(
    "request: the inbox topic is deleted when the requesting client closes") {
  BrokerProcess broker;
  ResponderThread responder(broker.address(), "svc",
                            [](const Message&) { return std::string("ok"); });
  auto observer = Client::connect(broker.address());
  {
    auto client = Client::connect(broker.address());
    CHECK(client->request("svc", "x", 5s).payload == "ok");
    auto inboxes = inbox_topics(*observer);
    REQUIRE(inboxes.size() == 1);
    auto info = observer->topics(inboxes[0]);
    REQUIRE(info.size() == 1);
    CHECK(info[0].temporary);
  }
  // The broker notices the close asynchronously: poll, bounded.
  auto deadline = Clock::now() + 5s;
  while (!inbox_topics(*observer).empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(inbox_topics(*observer).empty());
}

TEST_CASE("request: a handler that throws is a remote error") {
  BrokerProcess broker;
  ResponderThread responder(broker.address(), "fragile",
                            [](const Message&) -> std::string {
                              throw std::runtime_error("out of widgets");
                            });
  auto client = Client::connect(broker.address());
  try {
    client->request("fragile", "one widget", 5s);
    FAIL_CHECK("request did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kRemoteError);
    CHECK(std::string(e.what()) == "responder failed: out of widgets");
  }
  CHECK(responder.error().empty());  // the responder keeps going
  CHECK_THROWS_AS(client->request("fragile", "again", 5s), Error);
}

TEST_CASE("request: reserved headers are refused") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  try {
    client->request("svc", "x", 1s, {{kReplyToHeader, "elsewhere"}});
    FAIL_CHECK("request accepted a tern-reply-to header");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("request: a responder acks requests it cannot answer and goes on") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  // Published by hand: no reply-to, and a reply-to whose inbox is gone.
  client->publish("svc", "not a request");
  client->publish("svc", "orphan",
                  {{kReplyToHeader, "_inbox.0000000000000000"},
                   {kCorrelationIdHeader, "1"}});
  int handled = 0;
  auto responder = client->respond("svc", [&](const Message& m) {
    ++handled;
    return m.payload;
  });
  CHECK_FALSE(responder.serve_one(5s));  // not a request
  CHECK(responder.serve_one(5s));        // answered into the void
  CHECK(handled == 1);
  CHECK_FALSE(responder.serve_one(300ms));  // both acked: nothing comes back
  auto info = client->topics("svc");
  REQUIRE(info.size() == 1);
  REQUIRE(info[0].subscriptions.size() == 1);
  CHECK(info[0].subscriptions[0].lag == 0);
}

TEST_CASE("request: a request waits in the topic until a responder starts") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  std::string reply, failure;
  std::thread requester([&] {
    try {
      reply = client->request("later", "q", 5s).payload;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  std::this_thread::sleep_for(500ms);  // the request is in, unanswered
  {
    ResponderThread responder(broker.address(), "later", [](const Message& m) {
      return "a:" + m.payload;
    });
    requester.join();
  }
  INFO("failure: " << failure);
  CHECK(reply == "a:q");
}

TEST_CASE(
    "request: a deleted inbox ends the waiting request, and the next request "
    "makes a new one") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto admin = Client::connect(broker.address());
  ErrorCode code = ErrorCode::kNone;
  std::thread requester([&] {
    try {
      client->request("nobody", "x", 5s);
    } catch (const Error& e) {
      code = e.code();
    }
  });
  // Wait for the request to be sent (so its inbox exists and is subscribed
  // to), then delete the inbox under the waiting request.
  auto sent = [&] {
    auto topics = admin->topics("nobody");
    return !topics.empty() && topics[0].next_offset > 0;
  };
  auto deadline = Clock::now() + 5s;
  while (!sent() && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  std::vector<std::string> inboxes = inbox_topics(*admin);
  REQUIRE(inboxes.size() == 1);
  auto start = Clock::now();
  admin->delete_topic(inboxes[0]);
  requester.join();
  CHECK(code == ErrorCode::kDeleted);
  CHECK(Clock::now() - start < 2s);  // ended at once, not at the timeout

  ResponderThread responder(broker.address(), "svc",
                            [](const Message&) { return std::string("ok"); });
  CHECK(client->request("svc", "y", 5s).payload == "ok");
  auto now = inbox_topics(*admin);
  REQUIRE(now.size() == 1);
  CHECK(now[0] != inboxes[0]);
}

}  // namespace tern::test
