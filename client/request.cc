// Request/reply on top of topics: Client::request, Client::respond and
// Responder. Nothing here is known to the broker except temporary topics; the
// rest is a convention carried in headers (see client.h):
//
//   requester                         broker                   responder
//   create_topic(_inbox.X, temporary)
//   subscribe(_inbox.X, ephemeral)
//   publish(T, tern-reply-to: _inbox.X,
//              tern-correlation-id: 7, ttl)  --> T -->  durable subscription
//                                                       "responders" on T
//                 _inbox.X  <--  publish(_inbox.X, tern-correlation-id: 7)
//   next() on the inbox, match 7                        ack the request
//
// The inbox. One per Client, made by the first request() and deleted by the
// broker when the connection ends. Requests from several threads share it:
// each registers its correlation id, then whichever waiter finds nobody
// reading becomes the reader for a while, taking replies off the inbox and
// handing each to the waiter its correlation id names. So there is no extra
// thread, and a reader whose own reply came (or whose time is up) stops
// reading and wakes the others so one of them takes over.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <random>
#include <unordered_map>

#include "connection.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

bool is_reserved(const Header& h) {
  return h.name == kReplyToHeader || h.name == kCorrelationIdHeader ||
         h.name == kErrorHeader;
}

}  // namespace

struct Client::Inbox {
  Inbox(std::string topic, Subscription replies)
      : topic(std::move(topic)), replies(std::move(replies)) {}

  // Waits until `deadline` for the reply with correlation id `id`, which
  // must be registered in `waiting`. Returns nullopt on timeout.
  std::optional<Message> wait(const std::string& id,
                              Clock::time_point deadline);
  // Takes one message off the inbox (waiting until `deadline`) and hands it
  // to its waiter. Called by the one reader, without mu held.
  void read_one(std::unique_lock<std::mutex>& lock, Clock::time_point deadline);

  const std::string topic;
  Subscription replies;  // used by the reader only

  std::mutex mu;
  std::condition_variable cv;  // a reply was handed over, or reading stopped
  bool reading = false;        // some waiter is in replies.next()
  uint64_t next_id = 1;
  // Correlation id -> its reply, once here. Ids not in it are late replies.
  std::unordered_map<std::string, std::optional<Message>> waiting;
};

void Client::Inbox::read_one(std::unique_lock<std::mutex>& lock,
                             Clock::time_point deadline) {
  reading = true;
  lock.unlock();
  std::optional<Message> m;
  try {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    m = replies.next(std::max(left, std::chrono::milliseconds(0)));
    // Acked straight away: a reply nobody waits for any more is still done.
    if (m) replies.ack(*m);
  } catch (...) {
    lock.lock();
    reading = false;
    cv.notify_all();  // another waiter tries, and sees the same failure
    throw;
  }
  lock.lock();
  reading = false;
  if (m) {
    const std::string* id = m->header(kCorrelationIdHeader);
    auto it = id ? waiting.find(*id) : waiting.end();
    if (it != waiting.end() && !it->second) it->second = std::move(*m);
    // Otherwise: a late reply to a request that timed out; dropped.
  }
  cv.notify_all();
}

std::optional<Message> Client::Inbox::wait(const std::string& id,
                                           Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    auto it = waiting.find(id);
    if (it->second) return std::move(it->second);
    if (Clock::now() >= deadline) return std::nullopt;
    if (!reading) {
      read_one(lock, deadline);
    } else {
      cv.wait_until(lock, deadline);
    }
  }
}

std::shared_ptr<Client::Inbox> Client::inbox() {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (inbox_) return inbox_;
  std::string topic = "_inbox." + random_hex16();
  create_topic(topic, TopicSettings{}, /*temporary=*/true);
  SubscribeOptions options;
  options.topic = topic;
  options.start = StartPosition::kLatest;  // nothing was sent to it yet
  inbox_ = std::make_shared<Inbox>(topic, subscribe(options));
  return inbox_;
}

Message Client::request(const std::string& topic, std::string payload,
                        std::chrono::milliseconds timeout,
                        std::vector<Header> headers) {
  if (timeout.count() <= 0 || timeout.count() > UINT32_MAX) {
    throw Error(ErrorCode::kInvalidArgument,
                "request timeout must be from 1 to 2^32-1 ms");
  }
  for (const Header& h : headers) {
    if (is_reserved(h)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "header " + h.name + " is set by request() itself");
    }
  }
  auto deadline = Clock::now() + timeout;
  std::string timeout_message = "no reply to request on '" + topic +
                                "' within " + std::to_string(timeout.count()) +
                                " ms (is a responder running?)";
  std::shared_ptr<Inbox> box = inbox();

  std::string id;
  {
    std::lock_guard<std::mutex> lock(box->mu);
    id = std::to_string(box->next_id++);
    box->waiting.emplace(id, std::nullopt);
  }
  // Whatever happens next, a reply arriving later is not ours to keep.
  struct Unregister {
    Inbox& box;
    const std::string& id;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(box.mu);
      box.waiting.erase(id);
    }
  } unregister{*box, id};

  OutgoingMessage request;
  request.payload = std::move(payload);
  request.headers = std::move(headers);
  request.headers.push_back({kReplyToHeader, box->topic});
  request.headers.push_back({kCorrelationIdHeader, id});
  // A request nobody took in time must not be answered later: its requester
  // has given up.
  request.ttl = timeout;
  try {
    publish_message(*connection_, topic, request, deadline);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kTimeout) {
      throw Error(ErrorCode::kTimeout, timeout_message);
    }
    throw;
  }

  std::optional<Message> reply;
  try {
    reply = box->wait(id, deadline);
  } catch (const Error& e) {
    // Someone deleted the inbox: make a new one for the next request.
    if (e.code() == ErrorCode::kDeleted) {
      std::lock_guard<std::mutex> lock(inbox_mu_);
      if (inbox_ == box) inbox_.reset();
    }
    throw;
  }
  if (!reply) throw Error(ErrorCode::kTimeout, timeout_message);
  if (const std::string* error = reply->header(kErrorHeader)) {
    throw Error(ErrorCode::kRemoteError, "responder failed: " + *error);
  }
  return std::move(*reply);
}

Responder Client::respond(const std::string& topic, RequestHandler handler,
                          const std::string& subscription) {
  if (!handler) {
    throw Error(ErrorCode::kInvalidArgument, "respond() needs a handler");
  }
  SubscribeOptions options;
  options.topic = topic;
  options.subscription = subscription;
  // Requests sent before the subscription first existed are answered too;
  // those that outlived their requester's timeout have expired (ttl).
  options.start = StartPosition::kEarliest;
  // One request at a time, so competing responders share the load instead
  // of one of them holding a backlog the others could be working on.
  options.prefetch = 1;
  return Responder(connection_, subscribe(options), std::move(handler));
}

// --- Responder ---

Responder::Responder(std::shared_ptr<Client::Connection> connection,
                     Subscription requests, Client::RequestHandler handler)
    : connection_(std::move(connection)),
      requests_(std::move(requests)),
      handler_(std::move(handler)) {}

bool Responder::serve_one(std::chrono::milliseconds timeout) {
  std::optional<Message> request = requests_.next(timeout);
  if (!request) return false;
  const std::string* reply_to = request->header(kReplyToHeader);
  if (reply_to == nullptr || reply_to->empty()) {
    // Not a request: nobody to answer. Acked so it does not come back.
    requests_.ack(*request);
    return false;
  }

  OutgoingMessage reply;
  if (const std::string* id = request->header(kCorrelationIdHeader)) {
    reply.headers.push_back({kCorrelationIdHeader, *id});
  }
  // The reply is the next hop of the request's trace, if it has one.
  TraceContext::of(*request).child().attach(&reply);
  try {
    reply.payload = handler_(*request);
  } catch (const std::exception& e) {
    reply.payload.clear();
    reply.headers.push_back({kErrorHeader, e.what()});
  } catch (...) {
    reply.payload.clear();
    reply.headers.push_back({kErrorHeader, "unknown exception"});
  }
  try {
    publish_message(*connection_, *reply_to, reply,
                    Clock::now() + connection_->options().timeout);
  } catch (const Error& e) {
    // The requester is gone and its inbox with it: nobody waits for this
    // reply, so the request is done all the same. Anything else is thrown,
    // and the request, unacked, goes to another responder.
    if (e.code() != ErrorCode::kUnknownTopic) throw;
  }
  requests_.ack(*request);
  return true;
}

}  // namespace tern
