"""What the three saga services share: their flags, topic names, the
SQLite store with its step log, and the loop that consumes, handles and
publishes, reconnecting when the broker goes away.

The one rule every handler follows:

  1. change its own database idempotently, keyed by (order, step): the
     first delivery decides what the step does and stores that decision,
     outputs included; a redelivery reads the decision back;
  2. commit the database;
  3. publish the outputs AND ack the input in one broker commit
     (Client.publish_atomic(parts, acks=[message])).

A crash before 2 leaves nothing: the input comes again. A crash between 2
and 3 leaves the database changed and the input unacked: it comes again,
step 1 finds the stored decision and 3 publishes the same outputs once. A
crash after 3 leaves the input acked: it never comes again. Step 3 is all
or nothing on the broker's side, so there is no window in which the outputs
are stored but the input is not acked (which would publish them twice), and
no de-duplication of outputs is needed anywhere downstream.
"""
import argparse
import contextlib
import json
import os
import pathlib
import signal
import sqlite3
import sys
import threading
import time

# Run from a checkout without installing: the tern package is in
# client/python (as client/python/examples/_common.py does it).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]
                       / "client" / "python"))

import tern  # noqa: E402

DEFAULT_SERVER = os.environ.get("TERN_SERVER", "127.0.0.1:7411")

# Errors that mean "the connection is gone": connect again. Any other
# TernError is a bug or a misconfiguration, and stops the service.
CONNECTION_ERRORS = (tern.ErrorCode.ConnectFailed,
                     tern.ErrorCode.ConnectionLost,
                     tern.ErrorCode.Timeout)

TERMINAL = ("COMPLETED", "CANCELLED")


def arguments(description):
    """The flags every service takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help="broker address (default: $TERN_SERVER, else "
                             "127.0.0.1:7411)")
    parser.add_argument("--namespace", default="saga",
                        help="prefix of every topic name, so that runs do "
                             "not mix (default: saga)")
    parser.add_argument("--data-dir", default="saga-data",
                        help="directory of the service's SQLite database "
                             "(default: ./saga-data)")
    parser.add_argument("--crash-after-commit", metavar="TOPIC",
                        help="testing: kill -9 itself right after the "
                             "database commit of the first message from "
                             "TOPIC (e.g. payments.requested), before "
                             "publishing")
    return parser


def topic(namespace, name):
    """The broker topic of a saga topic: 'payments.requested' in namespace
    'saga' is 'saga.payments.requested'."""
    return f"{namespace}.{name}"


def log(service, text):
    print(f"{time.strftime('%H:%M:%S')} {service}: {text}", flush=True)


def out(topic_name, body, delay=None, id=None):
    """One output of a step: a message for `topic_name` (without the
    namespace). `delay` makes it a scheduled message; `id` lets the broker
    store it only once per topic."""
    return {"topic": topic_name, "body": body, "delay": delay, "id": id}


# --- the store ---

STEPS = """
CREATE TABLE IF NOT EXISTS steps (
    order_id TEXT NOT NULL,
    step     TEXT NOT NULL,     -- the input topic, e.g. payments.completed
    outputs  TEXT NOT NULL,     -- JSON list of out() values
    at       REAL NOT NULL,
    PRIMARY KEY (order_id, step)
);
"""


class Store:
    """A service's own SQLite database (data_dir/<name>.db): its tables plus
    `steps`, the decision of every (order, step) it has handled."""

    def __init__(self, data_dir, name, schema):
        path = pathlib.Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / f"{name}.db"
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT
        # of transaction() below, nothing implicit.
        self.db = sqlite3.connect(str(self.path), isolation_level=None,
                                  check_same_thread=False, timeout=10)
        # WAL: the runner and the tests read while the service writes.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(STEPS + schema)
        # One handler thread per subscription share this connection; the
        # lock makes their transactions one after the other.
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def once(self, order, step, decide):
        """The outputs of `step` for `order`. The first time, decide(db)
        changes the database and returns them, and they are stored with the
        change in one commit; every later time (a redelivery after a crash
        before the publish) they are read back, and decide is not run: the
        step's database change happens once and its outputs are always the
        same."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT outputs FROM steps WHERE order_id = ? AND step = ?",
                (order, step)).fetchone()
            if row is not None:
                return json.loads(row[0])
            outputs = decide(db)
            db.execute("INSERT INTO steps VALUES (?, ?, ?, ?)",
                       (order, step, json.dumps(outputs), time.time()))
            return outputs


# --- publishing ---

def publish(client, namespace, message, outputs):
    """Publishes `outputs` and acks `message` in one broker commit.

    Every output goes out in the trace of its input, as a child span (a new
    parent id in the same trace id): the whole saga of one order is one
    trace, whichever service handled which step."""
    parts = {}
    for o in outputs:
        parts.setdefault(topic(namespace, o["topic"]), []).append(
            tern.OutgoingMessage(payload=json.dumps(o["body"]).encode(),
                                 delay=o["delay"], id=o["id"] or ""))
    # With no outputs this is just a confirmed, durable ack.
    client.publish_atomic(list(parts.items()), acks=[message],
                          trace=(tern.trace.child(message.traceparent),
                                 message.tracestate))


# --- the service loop ---

class Handler:
    """What a service does with one topic: `handle(body, message)` returns
    the step's outputs (from Store.once), or raises to have the message
    delivered again after the subscription's backoff. `options` are
    Client.subscribe's (retry_delays, max_deliveries, ...)."""

    def __init__(self, topic_name, handle, **options):
        self.topic = topic_name
        self.handle = handle
        self.options = options


def connect(server, name, deadline=None):
    """A connected client, trying again every 0.3 s while the broker is
    unreachable (it may be restarting), until `deadline` (monotonic)."""
    said = False
    while True:
        try:
            return tern.Client.connect(server, client_name=name, timeout=5)
        except tern.TernError as e:
            if e.code not in CONNECTION_ERRORS:
                raise
            if deadline is not None and time.monotonic() > deadline:
                raise
            if not said:
                log(name, f"cannot reach {server} ({e}); trying again")
                said = True
            time.sleep(0.3)


def serve(args, name, handlers):
    """Runs the service until SIGTERM or Ctrl-C. The Python client does not
    reconnect by itself: when the connection is lost (the broker was killed
    or restarted) this connects again and subscribes again. The durable
    subscriptions resume at their cursors, and what was delivered but not
    acked is delivered again."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(name, f"serving {args.server}, namespace {args.namespace}, "
              f"data in {args.data_dir}")
    try:
        while True:
            client = connect(args.server, name)
            try:
                run(client, args, name, handlers)
            except tern.TernError as e:
                if e.code not in CONNECTION_ERRORS:
                    raise
                log(name, f"connection lost ({e}); reconnecting")
            finally:
                client.close()
    except KeyboardInterrupt:
        pass


def run(client, args, name, handlers):
    """One connection's life: a thread per subscription (Subscription.next
    blocks on one subscription), until one of them fails. Raises the
    TernError it failed with."""
    lost = threading.Event()
    errors = []
    for handler in handlers:
        # Durable (named) subscriptions starting at the earliest message:
        # what was published before the service first ran, or while it was
        # down, waits for it.
        sub = client.subscribe(topic(args.namespace, handler.topic), name,
                               start=tern.Start.EARLIEST, **handler.options)
        threading.Thread(target=consume, daemon=True, name=handler.topic,
                         args=(client, args, name, handler, sub, lost,
                               errors)).start()
    while not lost.wait(0.5):  # a timeout, so that signals get through
        pass
    if errors:
        raise errors[0]


def consume(client, args, name, handler, sub, lost, errors):
    try:
        for message in sub:
            handle_one(client, args, name, handler, message)
    except tern.TernError as e:
        errors.append(e)
    finally:
        lost.set()  # run() returns


def handle_one(client, args, name, handler, message):
    try:
        body = json.loads(message.payload)
        order = body["order"]
    except (ValueError, KeyError, TypeError):
        # Unreadable: no retry can help. Straight to the dead-letter topic.
        log(name, f"{handler.topic} offset {message.offset}: not an order "
                  "message; rejected to the dead-letter topic")
        message.reject()
        return
    where = (f"{order} {handler.topic} (attempt {message.attempt}, "
             f"trace {tern.trace.trace_id(message.traceparent)})")
    try:
        outputs = handler.handle(body, message)
    except Exception as e:
        # A nack without delay: delivered again after the subscription's
        # backoff (retry_delays), dead-lettered after max_deliveries.
        log(name, f"{where}: failed: {e}; nacked")
        message.nack()
        return
    if args.crash_after_commit == handler.topic:
        log(name, f"{where}: committed; crashing before the publish")
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        publish(client, args.namespace, message, outputs)
    except tern.TernError as e:
        if e.code != tern.ErrorCode.NotHeld:
            raise
        # Its ack timeout passed and the broker took it back: nothing was
        # published, it comes again and the stored decision is reused.
        log(name, f"{where}: no longer ours, not published")
        return
    said = ", ".join(o["topic"] + (f" (in {o['delay']} s)" if o["delay"]
                                   else "") for o in outputs)
    log(name, f"{where} -> {said or 'nothing'}")
