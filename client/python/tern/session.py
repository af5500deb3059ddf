"""What both clients share: the state of one connection's conversation.

A Session numbers requests, remembers which reply each one waits for, and
hands deliveries to their consumers. It does no I/O: the blocking client
(client.py) and the asyncio one (aio.py) feed it the frames they read and
send the frames it builds. Its futures are made by the client, so they are
concurrent.futures or asyncio futures as fits.
"""
import os
import threading

from . import frames, trace
from .errors import ErrorCode, TernError
from .types import OutgoingMessage
from .wire.Body import Body

# Request/reply headers (PROTOCOL.md, Request/reply).
REPLY_TO = "tern-reply-to"
CORRELATION_ID = "tern-correlation-id"
ERROR = "tern-error"
RESPONDERS = "responders"  # the shared responder subscription

DEFAULT_PORT = 7411


def parse_server(server):
    """'host:port', '[v6]:port' or 'host' as (host, port)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    else:
        host, port = server, ""
    try:
        return host or "127.0.0.1", int(port) if port else DEFAULT_PORT
    except ValueError:
        raise TernError(ErrorCode.InvalidArgument,
                        f"bad server address {server!r} (want host:port)")


def new_inbox_name():
    return "_inbox." + os.urandom(8).hex()


class Message:
    """A delivered message. ack(), nack() and reject() settle it with the
    subscription it came from."""

    __slots__ = ("topic", "subscription", "offset", "attempt", "timestamp_ms",
                 "key", "headers", "payload", "_consumer")

    def __init__(self, consumer, topic, subscription, d):
        self._consumer = consumer
        self.topic = topic
        self.subscription = subscription  # empty: ephemeral
        self.offset = d.offset
        self.attempt = d.attempt  # 1 on first delivery
        self.timestamp_ms = d.timestamp_ms  # broker's append time, Unix ms
        self.key = d.key
        self.headers = d.headers  # [(name, value bytes)]
        self.payload = d.payload

    def header(self, name):
        """The first header called `name` (bytes), or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    @property
    def text(self):
        return self.payload.decode("utf-8")

    @property
    def traceparent(self):
        """Its W3C traceparent (str), or None if it has no valid one."""
        value = self.header(trace.TRACEPARENT)
        return value.decode() if trace.parse(value) else None

    @property
    def tracestate(self):
        value = self.header(trace.TRACESTATE)
        return value.decode("utf-8", "replace") if value is not None else None

    def ack(self):
        self._consumer.settle(self, frames.ack)

    def nack(self, delay=0):
        """Redelivered after `delay` seconds (0: at once)."""
        self._consumer.settle(self, frames.nack, delay_ms=int(delay * 1000))

    def reject(self):
        """Given up on: moved to the subscription's dead-letter topic."""
        self._consumer.settle(self, frames.nack, dead_letter=True)

    def __repr__(self):
        return (f"Message(topic={self.topic!r}, offset={self.offset}, "
                f"attempt={self.attempt}, payload={self.payload[:40]!r})")


class Consumer:
    """The part of a subscription the session drives: it is given the
    deliveries (on_messages) and told when it ends (on_closed). The clients'
    Subscription classes build on it."""

    def __init__(self, session, topic):
        self.session = session
        self.id = 0  # set from SubscribeOk
        # A pattern's consumer must name the topic in its acks.
        self.wildcard = "*" in topic or ">" in topic

    def settle(self, message, build, **options):
        topic = message.topic if self.wildcard else ""
        self.session.send(build(self.id, [message.offset], topic=topic,
                                **options))

    def on_messages(self, messages):
        raise NotImplementedError

    def on_closed(self, error):
        raise NotImplementedError


class Inbox(Consumer):
    """Where a client's requests get their replies: a temporary topic read
    by one ephemeral consumer; each reply goes to the future its
    correlation id names. Futures come from `new_future` (the client's
    kind); the lock is for the blocking client's threads."""

    def __init__(self, session, topic, new_future):
        super().__init__(session, topic)
        self.topic = topic
        self._new_future = new_future
        self._lock = threading.Lock()
        self._next = 1
        self._waiting = {}  # correlation id -> future

    def expect(self):
        with self._lock:
            correlation_id = str(self._next)
            self._next += 1
            future = self._new_future()
            self._waiting[correlation_id] = future
        return correlation_id, future

    def forget(self, correlation_id):
        with self._lock:
            self._waiting.pop(correlation_id, None)

    def on_messages(self, messages):
        for m in messages:
            m.ack()  # a late reply nobody waits for is done all the same
            cid = (m.header(CORRELATION_ID) or b"").decode()
            with self._lock:
                future = self._waiting.pop(cid, None)
            if future is not None and not future.done():
                future.set_result(m)

    def on_closed(self, error):
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)


class Session:
    def __init__(self, new_future, send):
        self._new_future = new_future
        self.send = send  # writes a frame; raises TernError if it cannot
        self._lock = threading.Lock()
        self._next_id = 1
        self._pending = {}  # request id -> (future, convert)
        self._consumers = {}  # consumer id -> Consumer
        self.max_frame = 16 << 20  # until HelloOk says
        self.failure = None  # TernError once the connection is over
        # The last Error with request id 0: why the broker is about to
        # close, if it does.
        self._last_error = None

    def request(self, build, convert=lambda value: value, answered=True):
        """Sends the frame build(request_id) and returns a future for the
        reply, converted by `convert` (which runs on the reading side as
        soon as the reply is read). answered=False: nothing is waited for
        (a Publish without confirm); the future is done at once."""
        future = self._new_future()
        with self._lock:
            if self.failure is not None:
                raise self.failure
            request_id = self._next_id
            self._next_id += 1
            if answered:
                self._pending[request_id] = (future, convert)
            else:
                future.set_result(None)
        try:
            self.send(build(request_id))
        except TernError:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        return future

    def add_consumer(self, consumer, consumer_id):
        """Called from a SubscribeOk's convert, before the next frame is
        read: its deliveries may come right behind it."""
        consumer.id = consumer_id
        with self._lock:
            self._consumers[consumer_id] = consumer

    def remove_consumer(self, consumer):
        with self._lock:
            self._consumers.pop(consumer.id, None)

    def on_frame(self, data):
        """One frame from the broker (without its length)."""
        try:
            kind, ident, value = frames.decode(data)
        except Exception as e:
            raise TernError(ErrorCode.Protocol,
                            f"unreadable frame from the broker: {e}")
        if kind == Body.Deliver:
            topic, subscription, deliveries = value
            with self._lock:
                consumer = self._consumers.get(ident)
            # None: unsubscribed meanwhile; what it held is redelivered.
            if consumer is not None:
                consumer.on_messages(
                    [Message(consumer, topic, subscription, d)
                     for d in deliveries])
            return
        if kind == Body.ConsumerClosed:
            with self._lock:
                consumer = self._consumers.pop(ident, None)
            if consumer is not None:
                consumer.on_closed(TernError(*value))
            return
        with self._lock:
            entry = self._pending.pop(ident, None)
        if entry is None:
            # Request id 0: about the connection, which is about to close.
            # Another: a request nobody waits for (confirm=False).
            if kind == Body.Error and ident == 0:
                self._last_error = TernError(*value)
            return
        future, convert = entry
        if kind == Body.Error:
            future.set_exception(TernError(*value))
            return
        try:
            future.set_result(convert(value))
        except TernError as e:
            future.set_exception(e)

    def fail(self, error):
        """The connection is over: every waiting request and consumer gets
        `error` (or the broker's own reason, if it gave one)."""
        with self._lock:
            if self.failure is not None:
                return
            if self._last_error is not None:
                error = TernError(error.code,
                                  f"{error.message} ({self._last_error})")
            self.failure = error
            pending, self._pending = self._pending, {}
            consumers, self._consumers = self._consumers, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)
        for consumer in consumers.values():
            consumer.on_closed(error)


def hello_reply(value):
    max_frame, heartbeat_ms, server_name = value
    return max_frame, heartbeat_ms, server_name


def acks_of(inputs):
    """Delivered messages as a Transaction's acks: (consumer id, topic for
    a wildcard consumer, offsets) per consumer and topic."""
    grouped = {}
    for m in inputs:
        c = m._consumer
        key = (c.id, m.topic if c.wildcard else "")
        grouped.setdefault(key, []).append(m.offset)
    return [(cid, topic, offsets) for (cid, topic), offsets in grouped.items()]


def check_result(result):
    if not result.ok:
        raise TernError(result.error, "the message was not stored")
    return result


def request_message(payload, headers, inbox, correlation_id, timeout):
    for name, _ in headers:
        if name in (REPLY_TO, CORRELATION_ID, ERROR):
            raise TernError(ErrorCode.InvalidArgument,
                            f"header {name} is set by request() itself")
    # A request nobody took in time is not answered later: its ttl.
    return OutgoingMessage(
        payload=as_bytes(payload),
        headers=list(headers) + [(REPLY_TO, inbox),
                                 (CORRELATION_ID, correlation_id)],
        ttl=timeout)


def reply_to(request):
    """The inbox a request wants its reply in (None: not a request)."""
    inbox = request.header(REPLY_TO)
    return inbox.decode() if inbox else None


def reply_message(request, payload=b"", error=None):
    """The reply to `request`: `payload`, or if the handler failed with
    `error`, an empty payload and a tern-error header saying why."""
    reply = OutgoingMessage(payload=as_bytes(payload))
    correlation_id = request.header(CORRELATION_ID)
    if correlation_id is not None:
        reply.headers.append((CORRELATION_ID, correlation_id))
    # The reply is the next hop of the request's trace, if it has one.
    hop = trace.child(request.traceparent)
    if hop is not None:
        reply.headers += trace.headers((hop, request.tracestate))
    if error is not None:
        reply.payload = b""
        reply.headers.append((ERROR, str(error) or type(error).__name__))
    return reply


def check_reply(reply):
    error = reply.header(ERROR)
    if error is not None:
        raise TernError(ErrorCode.RemoteError,
                        "responder failed: " + error.decode("utf-8", "replace"))
    return reply


def as_bytes(value):
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)
