// Client::Connection's reader thread (see connection.h): reads frames from
// the socket and hands each to whoever waits for it — a waiting call, a
// pipelined publish's callback, a consumer's queue — and fails the
// connection on a read error, EOF or a fatal Error frame.
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>

#include "connection.h"
#include "socket.h"

namespace tern {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

std::string to_string(const flatbuffers::Vector<uint8_t>* bytes) {
  if (bytes == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(bytes->data()),
                     bytes->size());
}

std::string to_string(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : s->str();
}

// Errors that concern one request and leave the connection open. Any other
// Error frame means the broker is about to close the connection.
bool is_request_error(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::InvalidTopic:
    case wire::ErrorCode::InvalidSubscription:
    case wire::ErrorCode::UnknownConsumer:
    case wire::ErrorCode::StorageFailure:
    case wire::ErrorCode::UnknownTopic:
    case wire::ErrorCode::TopicExists:
    case wire::ErrorCode::UnknownSubscription:
    case wire::ErrorCode::Deleted:
      return true;
    default:
      return false;
  }
}

std::string error_name(wire::ErrorCode code) {
  if (code > wire::ErrorCode::MAX) return "error " + std::to_string(int(code));
  return wire::EnumNameErrorCode(code);
}

}  // namespace

void Client::Connection::read_loop(Link& link) {
  frame::FrameReader reader(options_.max_frame_bytes);
  std::string reason;
  for (;;) {
    uint8_t* buf = reader.prepare(kReadChunk);
    ssize_t n = link.tls ? link.tls->read(buf, kReadChunk, &reason)
                         : ::recv(link.fd, buf, kReadChunk, 0);
    if (n < 0) {
      if (link.tls) break;  // it says why, and retried EINTR itself
      if (errno == EINTR) continue;
      reason = std::strerror(errno);
      break;
    }
    if (n == 0) {
      reason = "closed by the broker";
      break;
    }
    set_heard_from_broker();
    reader.commit(size_t(n));
    const wire::Frame* frame = nullptr;
    frame::FrameReader::Result result;
    while ((result = reader.next(&frame)) ==
           frame::FrameReader::Result::kFrame) {
      dispatch(*frame);
    }
    // After the whole read: the answers in it free the frames held back
    // meanwhile (see Coalescing), and they leave together.
    send_held(link.generation);
    if (result != frame::FrameReader::Result::kNeedMore) {
      reason = "unreadable frame from the broker: " + reader.error();
      break;
    }
  }
  // The broker's word for why (a fatal Error before it closed), or ours (a
  // heartbeat, a failed write), beats a bare "closed by the broker": the
  // link keeps it and link_lost() takes it.
  link_lost(link.generation, reason, ErrorCode::kConnectionLost);
  bool ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended = closed_;
  }
  // Here rather than in the keeper, so that without reconnect callbacks run
  // on the reader thread as they always did.
  if (ended) complete_all_publishes();
}

void Client::Connection::dispatch(const wire::Frame& frame) {
  switch (frame.body_type()) {
    case wire::Body::HelloOk: {
      auto* ok = frame.body_as_HelloOk();
      Reply reply;
      reply.max_frame_bytes = ok->max_frame_bytes();
      reply.server_name = to_string(ok->server_name());
      reply.heartbeat_ms = ok->heartbeat_ms();
      on_reply(ok->request_id(), wire::Body::HelloOk, reply);
      break;
    }
    case wire::Body::Pong:
      on_reply(frame.body_as_Pong()->request_id(), wire::Body::Pong, Reply());
      break;
    case wire::Body::SubscribeOk:
      on_subscribe_ok(*frame.body_as_SubscribeOk());
      break;
    case wire::Body::UnsubscribeOk:
      on_reply(frame.body_as_UnsubscribeOk()->request_id(),
               wire::Body::UnsubscribeOk, Reply());
      break;
    case wire::Body::PublishAck:
      on_publish_ack(*frame.body_as_PublishAck());
      break;
    case wire::Body::Error:
      on_error(*frame.body_as_Error());
      break;
    case wire::Body::Deliver:
      on_deliver(*frame.body_as_Deliver());
      break;
    case wire::Body::ResetOk: {
      auto* ok = frame.body_as_ResetOk();
      Reply reply;
      reply.result.offset = ok->offset();
      on_reply(ok->request_id(), wire::Body::ResetOk, reply);
      break;
    }
    case wire::Body::CreateTopicOk: {
      auto* ok = frame.body_as_CreateTopicOk();
      Reply reply;
      reply.created = ok->created();
      on_reply(ok->request_id(), wire::Body::CreateTopicOk, reply);
      break;
    }
    case wire::Body::DeleteOk:
      on_reply(frame.body_as_DeleteOk()->request_id(), wire::Body::DeleteOk,
               Reply());
      break;
    case wire::Body::AlterTopicOk:
      on_reply(frame.body_as_AlterTopicOk()->request_id(),
               wire::Body::AlterTopicOk, Reply());
      break;
    case wire::Body::ConsumerClosed:
      on_consumer_closed(*frame.body_as_ConsumerClosed());
      break;
    case wire::Body::TopicList: {
      auto* list = frame.body_as_TopicList();
      Reply reply;
      if (list->topics()) {
        for (const wire::TopicInfo* t : *list->topics()) {
          TopicInfo info;
          info.name = to_string(t->name());
          info.first_offset = t->first_offset();
          info.next_offset = t->next_offset();
          if (t->subscriptions()) {
            for (const wire::SubscriptionInfo* s : *t->subscriptions()) {
              info.subscriptions.push_back(
                  {to_string(s->name()), s->consumers(), s->ack_floor(),
                   s->lag(), s->pending(), s->waiting_redelivery(),
                   s->ack_timeout_ms(), s->max_deliveries(),
                   to_string(s->dead_letter_topic()), s->skipped(),
                   s->dead_letter_blocked(), to_string(s->dead_letter_error()),
                   s->retry_delays_ms()
                       ? std::vector<uint32_t>(s->retry_delays_ms()->begin(),
                                               s->retry_delays_ms()->end())
                       : std::vector<uint32_t>{}});
            }
          }
          // Absent from an older broker: no settings, all zero.
          if (const wire::TopicSettings* ts = t->settings()) {
            info.settings.max_age = std::chrono::milliseconds(
                int64_t(std::min<uint64_t>(ts->max_age_ms(), INT64_MAX)));
            info.settings.max_bytes = ts->max_bytes();
            info.settings.max_messages = ts->max_messages();
            info.settings.work_queue = ts->work_queue();
            info.settings.dead_letter_expired = ts->dead_letter_expired();
          }
          info.messages = t->messages();
          info.bytes = t->bytes();
          info.temporary = t->temporary();
          info.disk_bytes = t->disk_bytes();
          info.memory_bytes = t->memory_bytes();
          info.scheduled = t->scheduled();
          reply.topics.push_back(std::move(info));
        }
      }
      on_reply(list->request_id(), wire::Body::TopicList, reply);
      break;
    }
    default:
      // A client-only frame type: the broker is confused, and so would we be.
      fail_link(0, std::string("broker sent a ") +
                       frame::body_name(frame.body_type()) + " frame");
      break;
  }
}

void Client::Connection::on_reply(uint64_t request_id, wire::Body type,
                                  const Reply& reply) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = waiters_.find(request_id);
  if (it == waiters_.end()) return;  // its caller timed out and left
  Waiter* waiter = it->second;
  waiters_.erase(it);
  waiter->reply = reply;
  waiter->reply.type = type;
  waiter->done = true;
  waiter->cv.notify_one();
}

void Client::Connection::on_subscribe_ok(const wire::SubscribeOk& ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiters_.find(ok.request_id());
    if (it != waiters_.end() && it->second->expect == wire::Body::SubscribeOk &&
        it->second->consumer) {
      Waiter* waiter = it->second;
      waiters_.erase(it);
      waiter->reply.type = wire::Body::SubscribeOk;
      waiter->reply.consumer_id = ok.consumer_id();
      waiter->reply.subscription = to_string(ok.subscription());
      waiter->done = true;
      waiter->cv.notify_one();
      std::shared_ptr<Consumer> consumer = waiter->consumer;
      if (!consumer->detached) {
        // Attach the consumer here, before the next frame is read, so that
        // deliveries right behind the SubscribeOk have somewhere to go.
        consumer->broker_id = ok.consumer_id();
        consumer->generation = generation_;  // the reader's link is current
        attached_[ok.consumer_id()] = consumer;
        consumers_[consumer->id] = consumer;
        return;
      }
      // Unsubscribed while being re-attached after a reconnect: detach.
    }
  }
  // Nobody wants this consumer (the subscribe timed out, or it was
  // unsubscribed meanwhile): detach it so its messages go to other consumers
  // rather than pile up unacked.
  unsubscribe_orphan(ok.consumer_id());
}

void Client::Connection::unsubscribe_orphan(uint64_t consumer_id) {
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = generation_;
  }
  flatbuffers::FlatBufferBuilder fbb(64);
  frame::finish(
      fbb, wire::Body::Unsubscribe,
      wire::CreateUnsubscribe(fbb, next_request_id(), consumer_id).Union());
  // Not a call: the reader cannot wait for its own reply. The consumer is
  // gone anyway if the link is.
  write_frame(fbb.GetBufferPointer(), fbb.GetSize(), generation);
}

void Client::Connection::on_publish_ack(const wire::PublishAck& ack) {
  uint64_t request_id = ack.request_id();
  std::optional<PendingPublish> publish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = publishes_.find(request_id);
    if (it == publishes_.end()) {
      // A blocking publish() (or a stray ack, which is ignored).
      auto w = waiters_.find(request_id);
      if (w == waiters_.end()) return;
      Waiter* waiter = w->second;
      waiters_.erase(w);
      waiter->reply.type = wire::Body::PublishAck;
      if (auto* results = ack.results()) {
        for (const wire::PublishResult* r : *results)
          waiter->reply.results.push_back({r->offset(), ErrorCode(r->error()),
                                           r->duplicate(), r->scheduled()});
      }
      if (!waiter->reply.results.empty())
        waiter->reply.result = waiter->reply.results[0];
      waiter->done = true;
      waiter->cv.notify_one();
      return;
    }
    publish = std::move(it->second);
    publishes_.erase(it);
  }

  std::vector<PublishResult> results(publish->count);
  std::string error_message;
  auto* wire_results = ack.results();
  if (wire_results == nullptr || wire_results->size() != publish->count) {
    for (auto& r : results) r.error = ErrorCode::kProtocol;
    error_message = "broker confirmed " + std::to_string(publish->count) +
                    " messages with " +
                    std::to_string(wire_results ? wire_results->size() : 0) +
                    " results";
  } else {
    for (size_t i = 0; i < results.size(); ++i) {
      const wire::PublishResult* r =
          wire_results->Get(flatbuffers::uoffset_t(i));
      results[i].offset = r->offset();
      results[i].error = ErrorCode(r->error());
      results[i].duplicate = r->duplicate();
      results[i].scheduled = r->scheduled();
      if (results[i].error != ErrorCode::kNone && error_message.empty()) {
        error_message = "publish to " + publish->topic +
                        " failed: " + error_name(r->error());
      }
    }
  }
  complete_publish(std::move(*publish), results, error_message);
}

void Client::Connection::complete_publish(
    PendingPublish publish, const std::vector<PublishResult>& results,
    const std::string& error_message) {
  if (publish.on_confirm) publish.on_confirm(results);
  // Released only after the callback, so flush() returning means every
  // callback has run.
  std::lock_guard<std::mutex> lock(mu_);
  unconfirmed_ -= publish.count;
  if (!error_message.empty() && !first_publish_error_) {
    ErrorCode code = ErrorCode::kNone;
    for (const auto& r : results) {
      if (r.error != ErrorCode::kNone) {
        code = r.error;
        break;
      }
    }
    first_publish_error_.emplace(code, error_message);
  }
  window_cv_.notify_all();
}

void Client::Connection::complete_all_publishes() {
  std::unordered_map<uint64_t, PendingPublish> publishes;
  std::string message;
  {
    std::lock_guard<std::mutex> lock(mu_);
    publishes.swap(publishes_);  // closed_ is set: no more get added
    message = lost_error().what();
  }
  for (auto& [id, publish] : publishes) {
    std::vector<PublishResult> results(publish.count);
    for (auto& r : results) r.error = ErrorCode::kConnectionLost;
    complete_publish(std::move(publish), results, message);
  }
}

void Client::Connection::on_error(const wire::Error& error) {
  uint64_t request_id = error.request_id();
  ErrorCode code = ErrorCode(error.code());
  std::string text = error_name(error.code());
  if (error.message() != nullptr && error.message()->size() > 0) {
    text += ": " + error.message()->str();
  }

  if (request_id == 0) {
    // Request errors without a request id can only be about an Ack (which has
    // no reply): the broker keeps the connection and there is no caller to
    // tell, so they are dropped. Anything else ends the link, and is why.
    // (An error with a request id is about that request, even a
    // NotAuthorized: it must not make a later lost link look final.)
    if (is_request_error(error.code())) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (link_ && link_->reason.empty()) {
        link_->reason = "broker error " + text;
        link_->code = code;
      }
    }
    fail_link(0, "broker error " + text);
    return;
  }

  std::optional<PendingPublish> publish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto w = waiters_.find(request_id);
    if (w != waiters_.end()) {
      Waiter* waiter = w->second;
      waiters_.erase(w);
      waiter->reply.type = wire::Body::Error;
      waiter->reply.error = code;
      waiter->reply.message = text;
      waiter->done = true;
      waiter->cv.notify_one();
      return;
    }
    auto p = publishes_.find(request_id);
    if (p == publishes_.end()) return;  // its caller timed out and left
    publish = std::move(p->second);
    publishes_.erase(p);
  }
  std::vector<PublishResult> results(publish->count);
  for (auto& r : results) r.error = code;
  std::string message = "publish to " + publish->topic + " failed: " + text;
  complete_publish(std::move(*publish), results, message);
}

void Client::Connection::on_deliver(const wire::Deliver& deliver) {
  auto* deliveries = deliver.messages();
  if (deliveries == nullptr || deliveries->size() == 0) return;

  // Decode outside the lock; the strings are the one copy a Message needs.
  std::string topic = to_string(deliver.topic());
  std::string subscription = to_string(deliver.subscription());
  std::vector<Message> messages(deliveries->size());
  for (flatbuffers::uoffset_t i = 0; i < deliveries->size(); ++i) {
    const wire::Delivery* d = deliveries->Get(i);
    Message& m = messages[i];
    m.topic = topic;
    m.subscription = subscription;
    m.offset = d->offset();
    m.attempt = d->attempt();
    m.timestamp_ms = d->timestamp_ms();
    m.key = to_string(d->key());
    if (auto* headers = d->headers()) {
      m.headers.reserve(headers->size());
      for (const wire::Header* h : *headers) {
        m.headers.push_back(
            Header{to_string(h->name()), to_string(h->value())});
      }
    }
    m.payload = to_string(d->payload());
  }

  std::lock_guard<std::mutex> lock(mu_);
  auto it = attached_.find(deliver.consumer_id());
  // Unsubscribed meanwhile: the broker redelivers what we never ack.
  if (it == attached_.end()) return;
  Consumer& consumer = *it->second;
  for (Message& m : messages) {
    // Acks go back on this link only (see Generations in connection.h).
    m.generation = generation_;
    consumer.next_offset = std::max(consumer.next_offset, m.offset + 1);
    consumer.queue.push_back(std::move(m));
  }
  consumer.cv.notify_all();
}

void Client::Connection::on_consumer_closed(
    const wire::ConsumerClosed& closed) {
  std::string text = to_string(closed.message());
  if (text.empty()) text = error_name(closed.code());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = attached_.find(closed.consumer_id());
  // Unsubscribed meanwhile (or never ours): nobody to tell.
  if (it == attached_.end()) return;
  Consumer& consumer = *it->second;
  if (!consumer.ended) {
    consumer.ended.emplace(ErrorCode(uint16_t(closed.code())),
                           "subscription ended by the broker: " + text);
  }
  consumer.cv.notify_all();
}

}  // namespace tern
