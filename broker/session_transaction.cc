// A Transaction frame: messages for several topics, and acks of this
// connection's deliveries, checked whole and then committed together
// (Broker::publish_atomic).
#include "broker.h"
#include "clock.h"
#include "connection.h"
#include "consumer.h"
#include "session.h"
#include "subscription.h"

namespace tern {

void Session::on_transaction(const wire::Transaction& transaction,
                             uint32_t bytes) {
  uint64_t request_id = transaction.request_id();
  uint32_t limit = connection_.max_frame_bytes() - frame::kDeliverReserveBytes;
  if (bytes > limit)
    return reply_error(request_id, wire::ErrorCode::LimitExceeded,
                       "transaction frame of " + std::to_string(bytes) +
                           " bytes exceeds " + std::to_string(limit));
  // Everything is checked before anything is appended: a refusal of any
  // part refuses the whole request.
  std::vector<std::string> names;
  int64_t now = unix_ms();
  size_t remembered = 0;  // messages that may need a de-duplication entry
  if (transaction.parts()) {
    for (const wire::PublishPart* part : *transaction.parts()) {
      size_t count = part->messages() ? part->messages()->size() : 0;
      if (transaction.producer() != 0 && part->sequence() > UINT64_MAX - count)
        return connection_.fail(
            0, wire::ErrorCode::BadFrame,
            "PublishPart.sequence + message count exceeds 2^64-1");
      names.push_back(flatbuffers::GetString(part->topic()));
      // Reply rights to inboxes are not spent here: a part needs publish
      // permission of its own.
      if (!permitted(Action::kPublish, names.back(), "publish to", request_id))
        return;
      for (flatbuffers::uoffset_t i = 0; i < count; ++i) {
        const wire::Message* m = part->messages()->Get(i);
        if (transaction.producer() != 0 || (m->id() && m->id()->size() > 0))
          ++remembered;
        if (Broker::due_time(*m, now) < 0)
          return reply_error(request_id, wire::ErrorCode::LimitExceeded,
                             "a message of the transaction is scheduled "
                             "more than 366 days ahead");
      }
    }
  }
  if (!broker_.dedupe_room(remembered))
    return reply_error(request_id, wire::ErrorCode::LimitExceeded,
                       "the broker's limit of producer ids and sequences "
                       "(--max-dedupe-ids) leaves no room for this "
                       "transaction");
  // Each ack must name deliveries its consumer holds now: one taken back
  // (an ack timeout) may be another consumer's work already, and acking it
  // here would give it two outputs.
  std::vector<Broker::HeldAck> acks;
  if (transaction.acks()) {
    for (const wire::Ack* ack : *transaction.acks()) {
      bool wildcard;
      Consumer* consumer =
          consumer_of(ack->consumer_id(), ack->topic(), &wildcard);
      if (consumer == nullptr)
        return reply_error(request_id, wire::ErrorCode::UnknownConsumer,
                           "transaction acks for consumer " +
                               std::to_string(ack->consumer_id()) +
                               ", which this connection does not have" +
                               (wildcard ? " (a wildcard consumer's ack must "
                                           "name its topic)"
                                         : ""));
      if (!ack->ranges()) continue;
      for (const wire::OffsetRange* range : *ack->ranges()) {
        if (!consumer->subscription.holds(*consumer, range->first(),
                                          range->last()))
          return reply_error(
              request_id, wire::ErrorCode::NotHeld,
              "transaction acks offsets " + std::to_string(range->first()) +
                  ".." + std::to_string(range->last()) + " of consumer " +
                  std::to_string(ack->consumer_id()) +
                  ", which it does not hold (not delivered to it, settled, "
                  "or taken back after its ack timeout)");
        acks.push_back({consumer, range->first(), range->last()});
      }
    }
  }
  std::vector<Topic*> topics;
  Refusal refusal;
  if (!broker_.topics_for(names, &topics, &refusal))
    return reply_error(request_id, refusal.code, refusal.message);
  connection_.owe_reply();
  broker_.publish_atomic(connection_.id(), transaction, topics, acks);
}

}  // namespace tern
