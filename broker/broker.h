// Broker: owns the loop thread's world — the listening socket, the
// connections, the topics (and through them the subscriptions), and the
// committer that hands batches to the storage thread.
//
// The path of one published message:
//   Connection::on_read -> FrameReader -> Session::on_publish
//   -> Broker::publish: record appended to the topic's tail and to the batch
//   -> after_io(): Committer::kick hands the batch to the storage thread
//   -> commit returns (uv_async) -> Topic::on_committed, PublishAck queued,
//      the topic's subscriptions scheduled
//   -> next after_io(): Subscription::dispatch builds Deliver frames,
//      Connection::flush writes everything queued for a socket at once.
// after_io() runs once per loop iteration (a uv_check handle), which is what
// batches commits, deliveries and socket writes across everything that
// arrived in that iteration.
//
// The Broker is one object, so that the loop thread's state has one owner,
// but its work is in files by concern:
//   broker.cc                 construction, load(), after_io(), the tick
//   server.cc                 listening, connections, signals, run, shutdown
//   topic_registry.cc         topics: find, create, alter, delete, temporary
//                             ones, wildcard consumers, reading behind tails
//   subscription_registry.cc  subscriptions: make, start positions, reset,
//                             consumers leaving, delete
//   publish.cc                publish, append, dead letters
//   scheduled.cc              scheduled messages: stored apart, appended
//                             when due
//   metadata.cc               topic records, cursors, settings, write retries,
//                             replies that wait for a commit
//   retention.cc              retention rounds and compactions
//   users.cc                  logins, and users reloaded on SIGHUP
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "committer.h"
#include "config.h"
#include "frame.h"
#include "http_server.h"
#include "memory_budget.h"
#include "retention.h"
#include "stats.h"
#include "store.h"
#include "subscription.h"
#include "tern_generated.h"
#include "tls.h"
#include "topic.h"
#include "worker.h"

namespace tern {

class Connection;
class Session;
class Topic;

// What a Subscribe asks for, taken out of the frame: a wildcard consumer
// keeps it to subscribe to matching topics created later.
struct SubscribeRequest {
  std::string subscription;  // empty: ephemeral
  wire::StartPosition start = wire::StartPosition::Latest;
  uint64_t start_offset = 0;
  int64_t start_time_ms = 0;
  uint32_t ack_timeout_ms = 0;  // 0: the existing one, or the default
  uint32_t max_deliveries = 16;
  std::string dead_letter_topic;  // empty: "<topic>.dlq"
  std::vector<uint32_t> retry_delays_ms;  // empty: the existing, or default
};

// Why an operation was refused: what the Error frame says.
struct Refusal {
  wire::ErrorCode code = wire::ErrorCode::None;
  std::string message;
};

// True if `count` is below `limit`; else false, and *refusal says that the
// broker's limit of `what` (e.g. "topics") is reached.
bool within_limit(size_t count, size_t limit, const char* what,
                  Refusal* refusal);

class Broker : public DeadLetters, public ReadBackSource {
 public:
  // Reads the command line and config file again, for SIGHUP (main's
  // reread_config()); false with *error if they are no longer valid.
  using Reread = std::function<bool(Config* config, std::string* error)>;

  Broker(const Config& config, storage::Store& store, Reread reread = {});
  ~Broker();

  // Restores topics and subscriptions from the store. Returns false (and
  // logs why) if the store cannot be read.
  bool load();
  // Listens and serves until SIGINT/SIGTERM. Returns the process exit code.
  int run();

  const Config& config() const { return config_; }
  // What topics' tails and connections' output hold, within --memory-budget.
  MemoryBudget& memory() { return memory_; }

  // --- operations, called by sessions ---

  // The topic named `name`, created if new; nullptr and *refusal if the name
  // is not valid or the topic limit is reached. Inboxes ("_inbox.*") are
  // never created here: only by create_topic(), as temporary topics.
  Topic* topic(const std::string& name, Refusal* refusal);
  // Creates the topic `name` with `settings`; *created is false if it
  // existed already with the same settings. A temporary topic is deleted
  // when connection `owner` ends.
  Topic* create_topic(const std::string& name,
                      const storage::TopicSettings& settings, uint64_t owner,
                      bool* created, Refusal* refusal);
  // Replaces the retention limits of the existing topic `name` (see
  // AlterTopic in PROTOCOL.md); the next retention round applies them.
  bool alter_topic(const std::string& name,
                   const storage::TopicSettings& settings, Refusal* refusal);
  // Deletes a topic with its messages and subscriptions, or one durable
  // subscription; their consumers are closed.
  bool delete_topic(const std::string& name, Refusal* refusal);
  bool delete_subscription(const std::string& topic, const std::string& name,
                           Refusal* refusal);
  // Sends connection `connection_id` the reply `build` makes once everything
  // put into the batch so far is committed, or StorageFailure if that fails.
  // The caller has made the connection owe it (Connection::owe_reply).
  void reply_when_committed(
      uint64_t connection_id, uint64_t request_id,
      std::function<void(flatbuffers::FlatBufferBuilder&)> build);
  // Appends the frame's messages and confirms them once committed (a
  // confirm is owed from the request on: Connection::owe_reply).
  void publish(uint64_t connection_id, Topic& topic,
               const wire::Publish& publish);
  // A Transaction's ack of [first, last], which `consumer` holds.
  struct HeldAck {
    Consumer* consumer;
    uint64_t first, last;
  };
  // Appends every part of `transaction` (part i to topics[i]) and applies
  // `acks`, all into one commit, and confirms them with one PublishAck
  // (owed, as above). If the commit fails the acks are taken back.
  void publish_atomic(uint64_t connection_id,
                      const wire::Transaction& transaction,
                      const std::vector<Topic*>& topics,
                      const std::vector<HeldAck>& acks);
  // Whether `entries` more de-duplication ids or sequences fit under
  // --max-dedupe-ids.
  bool dedupe_room(size_t entries) const {
    return dedupe_ids_ + entries <= config_.max_dedupe_ids;
  }
  // The topics of `names`, created if new; nullptr and *refusal if any
  // name is refused (then none is created).
  bool topics_for(const std::vector<std::string>& names,
                  std::vector<Topic*>* topics, Refusal* refusal);
  // The subscription `request` attaches a consumer to: the durable one it
  // names (created at its start position if new) or, for an empty name, a
  // new ephemeral one.
  Subscription* subscription(Topic& topic, const SubscribeRequest& request,
                             Refusal* refusal);
  // Wildcard consumers: `session`'s consumer `consumer_id` is attached to
  // every topic `pattern` matches, those created later included.
  void add_wildcard(Session& session, uint64_t consumer_id,
                    const std::string& pattern);
  void remove_wildcard(Session& session, uint64_t consumer_id);
  // Whether `to` may be the dead-letter topic of a subscription on `topic`:
  // a valid topic name, not `topic` itself, not an inbox.
  bool valid_dead_letter_topic(const Topic& topic, const std::string& to,
                               Refusal* refusal) const;
  // Moves the durable subscription `request` names to its start position
  // and sends connection `connection_id` the ResetOk saying where that is
  // (later, for a time: see move_to_start()). False and *refusal if it
  // cannot.
  bool reset(uint64_t connection_id, const wire::ResetSubscription& request,
             Refusal* refusal);
  // A consumer left `subscription`; an ephemeral one ends with its consumer.
  void consumer_left(Subscription& subscription);
  // DeadLetters: appends the message to the subscription's dead-letter topic
  // with headers saying where it came from and why.
  bool dead_letter(Subscription& from, uint64_t offset, uint32_t attempts,
                   const wire::StoredMessage& message, const char* reason,
                   std::string* error) override;
  // ReadBackSource: reads a stretch of `topic` from `from` on the reader
  // thread, hands it to the topic and dispatches its subscriptions.
  void read_back(Topic& topic, uint64_t from) override;
  // Every topic in name order, or only the one named (none if unknown).
  std::vector<Topic*> topics(const std::string& name);
  // Loop time in ms, for deadlines.
  uint64_t now_ms() { return uv_now(&loop_); }

  // Work for the next after_io(); it also writes the cursor if that changed.
  void schedule_dispatch(Subscription& subscription);

  void forget(Connection& connection);  // from Connection::on_close

  // What a Hello proves who it is with.
  struct Credentials {
    std::string user;
    std::string password;
    std::string token;
  };
  // Logs connection `connection_id` in, or closes it with NotAuthorized to
  // `request_id` after a delay that grows with the failures from its IP
  // address, so that guessing is slow. The session reads nothing meanwhile.
  // See users.cc.
  void log_in(uint64_t connection_id, uint64_t request_id,
              Credentials credentials);
  // Whether `topic` is an inbox connection `connection_id` created.
  bool owns_inbox(uint64_t connection_id, const std::string& topic) const;

  // Every frame received is counted for metrics (count_frame), and every
  // Error frame sent (build_error).
  void count_frame(wire::Body type) {
    if (size_t(type) < frames_received_.size())
      ++frames_received_[size_t(type)];
  }
  // An Error frame for a client, counted by its code.
  void build_error(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                   wire::ErrorCode code, const std::string& message) {
    frame::build_error(fbb, request_id, code, message);
    if (size_t(code) < errors_sent_.size()) ++errors_sent_[size_t(code)];
  }

  // When `message` is due (scheduled.cc): 0 for at once; -1 if it is beyond
  // the furthest the broker schedules (refused).
  static int64_t due_time(const wire::Message& message, int64_t now);

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_reload_signal(uv_signal_t* handle, int signum);
  // SIGHUP: applies what may change while running (users and their
  // permissions, the TLS certificate) from the config read again; the rest
  // needs a restart, and the log says so.
  void reload();
  // Takes the users and permissions of `fresh`: connections of users gone
  // are closed, the others' sessions get their new permissions.
  void reload_users(const Config& fresh);
  // The end of a login: HelloOk as `user`, or for an empty one NotAuthorized
  // after the delay.
  void finish_login(uint64_t connection_id, uint64_t request_id,
                    const std::string& user);
  static void on_tick(uv_timer_t* handle);
  static void on_check(uv_check_t* handle);
  bool listen();
  void after_io();
  // Every tick: ack deadlines, expired message ids, retries of metadata
  // writes and of failed read-backs.
  void expire();
  static void on_retention_timer(uv_timer_t* handle);
  // Puts a metadata write into the filling batch. If that batch fails (e.g.
  // disk full) the write is put into a batch again on the next tick, until
  // it is stored: metadata must not be lost, and retrying at once would
  // spin. `write` runs each time, so it should write the state of then.
  void write_metadata(std::function<void(storage::Batch&)> write);
  Topic& add_topic(const storage::TopicRecord& record);
  // Stores the topic's name and settings (and state).
  void persist_topic(Topic& topic);
  Topic* find_topic(uint64_t id);
  // A subscription of topic `topic_id` after a commit returned: a durable
  // one by `name`, an ephemeral one (empty name) by address, `was`.
  Subscription* find_subscription(uint64_t topic_id, const std::string& name,
                                  const Subscription* was);
  // Removes `topic` from memory and its data from the store.
  void remove_topic(Topic& topic);
  // Closes the consumers of a subscription about to be destroyed.
  void end_subscription(Subscription& subscription, const std::string& why);
  // Every --retention-interval: plans a round for each topic with limits.
  void enforce_retention();
  void apply_retention(const RetentionJob& job, const RetentionCut& cut);
  // Moves `subscription` to a start position (a known one: `offset` is for
  // Offset, `time_ms` for Time) as Subscription::reset() does, and calls
  // `done` with where it now starts. A time means a look in the store, done
  // on the reader thread while the subscription is held: `done` then comes
  // later, with the offset (even if a later reset overtook this one), or
  // with a refusal if the lookup failed (the subscription stays where it
  // was) or the topic went away.
  void move_to_start(
      Subscription& subscription, wire::StartPosition position,
      uint64_t offset, int64_t time_ms,
      std::function<void(const Refusal& refusal, uint64_t start)> done);
  // Marks the cursor to be written with the next batch (write_cursors()).
  void persist_cursor(Subscription& subscription);
  // Puts every cursor marked so far into the filling batch; a failed commit
  // marks them again on the next tick.
  void write_cursors();
  // Stores a durable subscription's max deliveries and dead-letter topic.
  void persist_settings(Subscription& subscription);
  // Puts the state of every topic that changed since into the batch.
  void write_topic_states();
  // Persists the cursor if the subscription says it changed.
  void note_cursor(Subscription& subscription);
  // The HTTP side (stats.cc): started after listen(); a snapshot handed to
  // it at most once a second (from the tick); its users reloaded.
  bool start_http();
  void publish_stats(uint64_t now);
  void reload_http(const Config& fresh);
  Stats take_stats() const;
  // Runs `change` on `topic`'s de-duplication state, keeping dedupe_ids_
  // in step.
  template <typename Change>
  void counting_dedupe(Topic& topic, Change&& change) {
    size_t before = topic.dedupe_entries();
    change();
    dedupe_ids_ += topic.dedupe_entries();
    dedupe_ids_ -= before;
  }
  // A new sequence `one` (count 1) appended: joins the record staged for its
  // topic and producer if it continues it and its run (`starts_run` false),
  // else that record goes into the batch and `one` is staged instead. So a
  // producer's consecutive messages cost one record per batch.
  void stage_sequence(const storage::SequencesRecord& one, bool starts_run);
  // Puts the staged records into the batch (when it is sealed).
  void write_staged_sequences();
  // What one topic's share of a publish appended, for its commit's outcome.
  using MessageList = flatbuffers::Vector<flatbuffers::Offset<wire::Message>>;
  struct Appended {
    uint64_t topic_id = 0;
    uint64_t producer = 0;
    uint64_t first = 0, end = 0;  // the offsets appended
    // Per message: a new offset, or (a repeated id or sequence) the
    // original's.
    std::vector<wire::PublishResult> results;
    // New ids and sequences (in runs), forgotten if the commit fails.
    std::vector<std::string> new_ids;
    std::vector<storage::SequencesRecord> new_sequences;
    // Duplicates of messages not durable yet: they stand or fall with their
    // original's commit.
    struct Unsettled {
      size_t index;  // in results
      std::string id;
      uint64_t sequence;  // if no id
      uint64_t original;  // its offset, or ticket (kTicketBit)
    };
    std::vector<Unsettled> unsettled;
    // Due times of the messages scheduled: known to the mover once stored.
    std::vector<int64_t> scheduled;
  };
  Appended append_messages(Topic& topic, const MessageList* messages,
                           uint64_t producer, uint64_t sequence, int64_t now);
  // The commit holding `appended` returned `status`: the topic learns it,
  // and the results say what was stored.
  void settle(Appended& appended, const storage::Status& status);
  void confirm(uint64_t connection_id, uint64_t request_id,
               const std::vector<wire::PublishResult>& results);
  // Appends one message to `topic` (into the filling batch and the tail) and
  // returns its offset.
  uint64_t append(Topic& topic, const wire::Message& message,
                  int64_t timestamp_ms);
  // Appends an encoded record (storage/record.h) to `topic`.
  uint64_t append_record(Topic& topic, flatbuffers::FlatBufferBuilder& fbb);

  // --- scheduled messages (scheduled.cc) ---
  // A scheduled message's results and de-duplication records hold its
  // ticket with this bit set where an appended one's hold its offset.
  static constexpr uint64_t kTicketBit = uint64_t(1) << 63;
  // Stores `message` to be appended to `topic` at `due`; returns its ticket
  // (with kTicketBit).
  uint64_t schedule(Topic& topic, const wire::Message& message, int64_t due,
                    int64_t now);
  // A scheduled entry due at `due` is committed: the mover must see it.
  void note_due(Topic& topic, int64_t due);
  // At load: when each topic's first scheduled message falls due.
  bool load_schedules();
  static void on_schedule_timer(uv_timer_t* handle);
  // Moves what is due, in every topic, into its topic.
  void move_due();
  void move_due(Topic& topic, int64_t now);
  // The move of `topic`'s entries up to (last_due, last_ticket) returned.
  void on_moved(uint64_t topic_id, int64_t last_due, uint64_t last_ticket,
                uint64_t moved, int64_t next_due,
                const storage::Status& status);
  // Sets the topic's next due time, and the timer for the earliest of all.
  void set_next_due(Topic& topic, int64_t due);
  void arm_schedule_timer();

  void shutdown();
  Connection* find_connection(uint64_t id);
  // Closes the connections that did not say Hello in time.
  void close_silent_connections(uint64_t now);
  // Closes the connections whose heartbeats stopped (Hello.heartbeat_ms).
  void close_dead_connections(uint64_t now);
  // Closes the connections whose failed login's delay is over.
  void refuse_logins(uint64_t now);

  Config config_;
  const Reread reread_config_;
  TlsContext tls_;  // loaded by listen(), replaced by reload()
  storage::Store& store_;
  // Before the topics and connections, which count against it until the end.
  MemoryBudget memory_;
  uv_loop_t loop_;
  uv_tcp_t server_;
  uv_signal_t sigint_, sigterm_, sighup_;
  uv_timer_t tick_;
  uv_timer_t retention_timer_;
  uv_timer_t schedule_timer_;  // for the earliest scheduled message
  uv_check_t check_;
  uv_idle_t idle_;  // runs while dispatch work is left, so poll does not block
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<Worker> worker_;  // retention scans and compactions
  std::unique_ptr<Worker> reader_;  // reads behind topics' tails
  std::unique_ptr<Worker> login_;   // checks passwords (slow on purpose)

  std::map<std::string, std::unique_ptr<Topic>> topics_;
  std::unordered_map<uint64_t, Topic*> topics_by_id_;
  // Temporary topics: topic id -> the connection that created it.
  std::unordered_map<uint64_t, uint64_t> temporary_owner_;
  // Topics that appended or removed messages this iteration: their state is
  // written with the batch.
  std::unordered_set<uint64_t> changed_topics_;
  // Per topic with retention: a round in flight on the worker, and what was
  // removed since the last compaction.
  struct RetentionProgress {
    bool busy = false;
    uint64_t uncompacted_end = 0;    // compact below this offset
    uint64_t uncompacted_bytes = 0;
    uint64_t last_cut_ms = 0;        // loop time
  };
  std::unordered_map<uint64_t, RetentionProgress> retention_;
  uint64_t next_topic_id_ = 1;
  size_t subscription_count_ = 0;  // over all topics
  uint64_t last_start_lookup_ = 0;  // names move_to_start()'s lookups
  // Producer message ids and sequence runs remembered, all topics (what
  // --max-dedupe-ids bounds).
  size_t dedupe_ids_ = 0;
  std::unique_ptr<HttpServer> http_;
  int64_t started_ms_ = 0;      // wall clock
  uint64_t last_stats_ms_ = 0;  // loop time
  std::shared_ptr<const Stats> last_stats_;  // for rates
  uint64_t connections_accepted_ = 0;
  uint64_t connections_refused_ = 0;
  std::array<uint64_t, size_t(wire::Body::MAX) + 1> frames_received_{};
  std::array<uint64_t, size_t(wire::ErrorCode::MAX) + 1> errors_sent_{};
  // By (topic id, producer): sequence records for the filling batch.
  std::map<std::pair<uint64_t, uint64_t>, storage::SequencesRecord>
      staged_sequences_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, size_t> connections_per_ip_;
  // Connections in accept order, with when they must have said Hello; the
  // timeout is one setting, so this is in deadline order.
  struct HelloDeadline {
    uint64_t at_ms;  // loop time
    uint64_t connection_id;
  };
  std::deque<HelloDeadline> hello_deadlines_;
  uint64_t last_heartbeat_check_ms_ = 0;  // loop time
  // Logins: the hash unknown users are checked against (login.h), recent
  // failures per IP address, and failed logins waiting out their delay.
  std::string unusable_hash_;
  struct LoginFailures {
    uint32_t count = 0;
    uint64_t last_ms = 0;  // loop time
  };
  std::unordered_map<std::string, LoginFailures> login_failures_;
  struct FailedLogin {
    uint64_t connection_id;
    uint64_t request_id;
  };
  std::multimap<uint64_t, FailedLogin> failed_logins_;  // by loop time due
  uint64_t next_connection_id_ = 1;
  struct Wildcard {
    Session* session;
    uint64_t consumer_id;
    std::string pattern;
  };
  std::vector<Wildcard> wildcards_;
  std::unordered_set<Subscription*> to_dispatch_;
  std::unordered_set<Subscription*> dispatching_;  // after_io()'s scratch
  std::unordered_set<Subscription*> to_persist_;
  // Metadata whose commit failed, written again on the next tick.
  std::vector<std::function<void(storage::Batch&)>> retry_writes_;
  std::vector<std::pair<uint64_t, std::string>> retry_cursors_;
  // Topics whose read-back failed: topic id -> loop time to dispatch their
  // subscriptions again, so that they ask for the stretch once more.
  std::unordered_map<uint64_t, uint64_t> reread_;
  // (next due, topic id) of the topics with scheduled messages known due,
  // and not moving: the schedule timer waits for the first.
  std::set<std::pair<int64_t, uint64_t>> due_topics_;
  bool stopping_ = false;
};

}  // namespace tern
