"""The blocking client: one socket, one reader thread, calls that wait.

    client = tern.Client.connect("127.0.0.1:7411")
    offset = client.publish("orders.created", b'{"id": 1}')
    with client.subscribe("orders.created", "billing") as sub:
        for message in sub:
            handle(message)
            message.ack()

Every call may be made from any thread. Replies are matched to requests by
request id, so calls from several threads share the connection.
"""
import concurrent.futures
import dataclasses
import queue
import socket
import ssl as ssl_module
import threading
import time

from . import frames
from .errors import ErrorCode, TernError
from .session import (RESPONDERS, acks_of, as_bytes, check_reply,
                      check_result, Consumer, Inbox, new_inbox_name,
                      parse_server, reply_message, reply_to, request_message,
                      Session)
from .trace import headers as trace_headers
from .types import OutgoingMessage, Start

_CLOSED = object()  # queued when the application closed a subscription


def outgoing(messages, trace=None):
    """Payloads (bytes or str) or OutgoingMessage values, as the latter;
    with `trace` (as for publish), each carries it."""
    out = [m if isinstance(m, OutgoingMessage)
           else OutgoingMessage(payload=as_bytes(m)) for m in messages]
    extra = trace_headers(trace)
    if not extra:
        return out
    return [dataclasses.replace(m, headers=list(m.headers) + extra)
            for m in out]


def tls_context(tls, ca_file):
    if isinstance(tls, ssl_module.SSLContext):
        return tls
    if not tls and not ca_file:
        return None
    return ssl_module.create_default_context(cafile=ca_file)


def subscribe_frame(topic, subscription, start, start_offset, start_time,
                    prefetch, ack_timeout, max_deliveries, dead_letter_topic,
                    retry_delays=()):
    start_time_ms = int(start_time * 1000) if start_time is not None else 0
    if start_time is not None and start == Start.LATEST:
        start = Start.TIME
    delays_ms = [int(round(d * 1000)) for d in retry_delays or ()]
    return lambda rid: frames.subscribe(
        rid, topic, subscription or "", Start(start), prefetch,
        int((ack_timeout or 0) * 1000), start_offset, start_time_ms,
        max_deliveries, dead_letter_topic or "", delays_ms)


class Subscription(Consumer):
    """Messages of one subscription, in order. Iterate, or call next()."""

    def __init__(self, client, topic):
        super().__init__(client._session, topic)
        self._client = client
        self.topic = topic
        self.name = ""  # the subscription's name; empty: ephemeral
        self._queue = queue.SimpleQueue()
        self._error = None

    def on_messages(self, messages):
        for m in messages:
            self._queue.put(m)

    def on_closed(self, error):
        self._queue.put(error)

    def next(self, timeout=None):
        """The next message, or None if none came within `timeout` seconds
        (None: wait for ever). Raises TernError once the broker ended the
        consumer or the connection is lost; StopIteration after close()."""
        if self._error is not None:
            raise self._error
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._error = StopIteration()
            raise self._error
        if isinstance(item, TernError):
            self._error = item
            raise item
        return item

    def __iter__(self):
        while True:
            try:
                yield self.next()
            except StopIteration:
                return

    def close(self):
        """Unsubscribes: what was delivered and not acked goes to the
        subscription's other consumers (a durable subscription keeps its
        state)."""
        if self._error is not None or self.id == 0:
            return
        self.session.remove_consumer(self)
        try:
            self._client._wait(self.session.request(
                lambda rid: frames.unsubscribe(rid, self.id)))
        except TernError:
            pass  # the connection is gone: so is the consumer
        self._queue.put(_CLOSED)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Responder:
    """Answers requests on a topic (see Client.respond)."""

    def __init__(self, client, requests, handler):
        self._client = client
        self._requests = requests
        self._handler = handler

    def serve_one(self, timeout=None):
        """Waits up to `timeout` seconds for a request and answers it.
        Returns whether one was answered."""
        request = self._requests.next(timeout)
        if request is None:
            return False
        inbox = reply_to(request)
        if inbox is None:  # not a request: nobody to answer
            request.ack()
            return False
        try:
            reply = reply_message(request, self._handler(request))
        except Exception as e:  # the requester learns what went wrong
            reply = reply_message(request, error=e)
        try:
            self._client.publish_message(inbox, reply)
        except TernError as e:
            # The requester is gone, and its inbox with it: nobody waits
            # for this reply. Anything else leaves the request unacked, for
            # another responder.
            if e.code != ErrorCode.UnknownTopic:
                raise
        request.ack()  # after the reply: a crash before it redelivers
        return True

    def serve(self, stop=None):
        """Answers requests until `stop` (a threading.Event) is set."""
        while stop is None or not stop.is_set():
            self.serve_one(timeout=0.2)

    def close(self):
        self._requests.close()


class Client:
    """A connection to a Tern broker. Make one with Client.connect()."""

    @classmethod
    def connect(cls, server="127.0.0.1:7411", *, client_name="tern-python",
                user="", password="", token="", tls=False, ca_file=None,
                server_hostname=None, timeout=10.0, heartbeat=None,
                max_unconfirmed=10000):
        """Connects and logs in. `tls`: True, or an ssl.SSLContext (ca_file:
        the CA to trust instead of the system's). `timeout`: seconds any
        call waits for its reply. `heartbeat`: seconds; the broker and the
        client each notice within two intervals that the other vanished.
        `max_unconfirmed`: messages publish_async() may have out before it
        waits."""
        return cls(server, client_name, user, password, token,
                   tls_context(tls, ca_file), server_hostname, timeout,
                   heartbeat, max_unconfirmed)

    def __init__(self, server, client_name, user, password, token, context,
                 server_hostname, timeout, heartbeat, max_unconfirmed):
        self.timeout = timeout
        self._write_lock = threading.Lock()
        self._session = Session(concurrent.futures.Future, self._send)
        self._unconfirmed = 0  # messages sent and not confirmed yet
        self._max_unconfirmed = max(1, max_unconfirmed)
        self._confirms = threading.Condition()
        self._inbox = None
        self._inbox_lock = threading.Lock()
        self._closed = False
        host, port = parse_server(server)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(
                    sock, server_hostname=server_hostname or host)
        except (OSError, ssl_module.SSLError) as e:
            raise TernError(ErrorCode.ConnectFailed,
                            f"cannot connect to {host}:{port}: {e}")
        self._sock = sock
        self._buffer = bytearray()
        heartbeat_ms = int(heartbeat * 1000) if heartbeat else 0
        hello = self._session.request(lambda rid: frames.hello(
            rid, client_name, user, password, token, heartbeat_ms))
        # Read here until HelloOk, so a refused login fails connect().
        try:
            while not hello.done():
                for frame in self._read_frames():
                    self._session.on_frame(frame)
            max_frame, heartbeat_ms, _ = hello.result()
        except TernError:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            raise TernError(ErrorCode.ConnectFailed,
                            f"no answer to Hello from {host}:{port}: {e}")
        self._session.max_frame = max_frame
        sock.settimeout(None)
        self._last_read = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="tern-reader")
        self._reader.start()
        if heartbeat_ms:
            threading.Thread(target=self._heartbeat, args=(heartbeat_ms,),
                             daemon=True, name="tern-heartbeat").start()

    # --- the connection ---

    def _send(self, data):
        try:
            with self._write_lock:
                self._sock.sendall(data)
        except (OSError, ValueError) as e:
            raise self._session.failure or TernError(
                ErrorCode.ConnectionLost, f"cannot send to the broker: {e}")

    def _read_frames(self):
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise TernError(ErrorCode.ConnectionLost,
                            "the broker closed the connection")
        self._buffer += chunk
        try:
            return frames.split(self._buffer, self._session.max_frame)
        except ValueError as e:
            raise TernError(ErrorCode.Protocol, str(e))

    def _read_loop(self):
        try:
            while True:
                for frame in self._read_frames():
                    self._last_read = time.monotonic()
                    self._session.on_frame(frame)
        except TernError as e:
            error = e
        except OSError as e:
            error = TernError(ErrorCode.ConnectionLost,
                              f"connection to the broker failed: {e}")
        if self._closed:
            error = TernError(ErrorCode.ConnectionLost, "the client is closed")
        self._session.fail(error)
        with self._confirms:
            self._confirms.notify_all()

    def _heartbeat(self, interval_ms):
        interval = interval_ms / 1000
        while self._session.failure is None:
            time.sleep(interval / 2)
            if time.monotonic() - self._last_read > 2 * interval:
                # The broker (or the path to it) is gone: stop waiting.
                self._sock.shutdown(socket.SHUT_RDWR)
                return
            try:
                self._session.request(frames.ping)
            except TernError:
                return

    def _wait(self, future, timeout=None):
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            raise TernError(ErrorCode.Timeout, "no reply from the broker "
                            f"within {self.timeout} s")

    def close(self):
        """Closes the connection. What consumers had not acked is
        redelivered; publishes not confirmed yet may or may not be stored."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ping(self):
        """Round trip to the broker. When it returns, every frame sent
        before it (acks included) has been acted on."""
        self._wait(self._session.request(frames.ping))

    # --- publishing ---

    def publish(self, topic, payload, *, headers=(), key=b"", id="",
                ttl=None, trace=None, delay=None, deliver_at=None):
        """Publishes one message and waits until it is durable. Returns its
        offset (0 if scheduled). `ttl`: seconds it may wait to be delivered;
        `id`: producer message id (a repeat within the broker's window is not
        stored again); `trace`: a W3C traceparent, or (traceparent,
        tracestate) (tern.trace); `delay` (seconds) or `deliver_at` (Unix
        seconds): scheduled, delivered from then on (OutgoingMessage)."""
        message = OutgoingMessage(
            payload=as_bytes(payload),
            headers=list(headers) + trace_headers(trace), key=as_bytes(key),
            id=id, ttl=ttl, delay=delay, deliver_at=deliver_at)
        return self.publish_message(topic, message).offset

    def publish_message(self, topic, message):
        """Publishes an OutgoingMessage and waits. Returns its
        PublishResult (duplicate tells a repeat of an id)."""
        [result] = self._wait(self.publish_async(topic, [message]))
        return check_result(result)

    def publish_atomic(self, parts, acks=(), trace=None):
        """Publishes to several topics in one commit: every message of every
        part is stored, or none is (any refusal refuses the whole request).
        `parts`: (topic, messages) pairs, messages as for publish_async.
        Returns every message's PublishResult, parts in order; raises
        TernError if nothing was stored.

        `acks`: delivered messages acked in the same commit (consume and
        publish): after a crash either both happened or neither, so a
        processor from one topic to another gives each input exactly one
        output. TernError(NotHeld) if one is no longer its consumer's (its
        ack timeout passed): nothing happened, and it comes again.

        `trace`: as for publish, put on every message (e.g. the child of
        an input's: (tern.trace.child(m.traceparent), m.tracestate))."""
        parts = [(topic, outgoing(messages, trace))
                 for topic, messages in parts]
        results = self._wait(self._session.request(
            lambda rid: frames.transaction(rid, parts, acks_of(acks)),
            frames.publish_results))
        for result in results:
            if not result.ok:
                raise TernError(result.error, "atomic publish failed, "
                                "nothing of it stored")
        return results

    def publish_async(self, topic, messages, confirm=True):
        """Sends `messages` (payloads or OutgoingMessage values) in one
        frame without waiting. Returns a Future of their PublishResults
        (each with .ok and .error); it raises TernError if the broker
        refused the whole frame. Blocks while max_unconfirmed messages are
        out. With confirm=False the future is done at once (None), and
        refusals are not reported."""
        messages = outgoing(messages)
        count = len(messages)
        with self._confirms:
            while (self._unconfirmed > 0 and
                   self._unconfirmed + count > self._max_unconfirmed and
                   self._session.failure is None):
                self._confirms.wait()
            self._unconfirmed += count

        def confirmed(results):
            self._confirmed(count)
            return frames.publish_results(results)

        try:
            future = self._session.request(
                lambda rid: frames.publish(rid, topic, messages, confirm),
                confirmed, answered=confirm)
        except TernError:
            self._confirmed(count)
            raise
        if not confirm:
            self._confirmed(count)
        else:
            future.add_done_callback(
                lambda f: f.exception() and self._confirmed(count))
        return future

    def _confirmed(self, count):
        with self._confirms:
            self._unconfirmed -= count
            self._confirms.notify_all()

    def flush(self, timeout=None):
        """Waits until every message sent is confirmed (or failed)."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                                       else timeout)
        with self._confirms:
            while self._unconfirmed > 0 and self._session.failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TernError(ErrorCode.Timeout,
                                    f"{self._unconfirmed} messages still "
                                    "unconfirmed")
                self._confirms.wait(left)
        if self._session.failure is not None and self._unconfirmed:
            raise self._session.failure

    # --- consuming ---

    def subscribe(self, topic, subscription="", *, start=Start.LATEST,
                  start_offset=0, start_time=None, prefetch=1000,
                  ack_timeout=None, max_deliveries=16,
                  dead_letter_topic="", retry_delays=()):
        """Subscribes to `topic`. With a `subscription` name it is durable
        (it keeps its position while nobody reads; consumers of one name
        share its messages), else ephemeral (`topic` may then be a pattern,
        "orders.*" or "orders.>"). A new subscription starts at `start`
        (or at `start_offset`, or `start_time`, Unix seconds).
        `retry_delays`: the backoff, seconds to wait before delivering a
        message again after its delivery n failed (ack timeout, or a nack
        without delay), entry n-1, the last repeating; [0]: at once; empty:
        the subscription's (a new one: the broker's). Times are in
        seconds."""
        consumer = Subscription(self, topic)

        def subscribed(value):
            consumer_id, name = value
            consumer.name = name
            self._session.add_consumer(consumer, consumer_id)
            return consumer

        return self._wait(self._session.request(subscribe_frame(
            topic, subscription, start, start_offset, start_time, prefetch,
            ack_timeout, max_deliveries, dead_letter_topic, retry_delays),
            subscribed))

    # --- request/reply ---

    def request(self, topic, payload, timeout=5.0, headers=(),
                trace=None):
        """Publishes a request to `topic` and returns the reply Message.
        TernError(Timeout) if none comes within `timeout` seconds,
        TernError(RemoteError) if the responder failed."""
        inbox = self._get_inbox()
        correlation_id, future = inbox.expect()
        try:
            self.publish_message(topic, request_message(
                payload, list(headers) + trace_headers(trace), inbox.topic,
                correlation_id, timeout))
            try:
                reply = future.result(timeout)
            except concurrent.futures.TimeoutError:
                raise TernError(ErrorCode.Timeout,
                                f"no reply to request on {topic!r} within "
                                f"{timeout} s (is a responder running?)")
        finally:
            inbox.forget(correlation_id)
        return check_reply(reply)

    def _get_inbox(self):
        with self._inbox_lock:
            if self._inbox is None:
                topic = new_inbox_name()
                self.create_topic(topic, temporary=True)
                inbox = Inbox(self._session, topic,
                              concurrent.futures.Future)

                def subscribed(value):
                    self._session.add_consumer(inbox, value[0])

                self._wait(self._session.request(subscribe_frame(
                    topic, "", Start.LATEST, 0, None, 1000, None, 16, ""),
                    subscribed))
                self._inbox = inbox
            return self._inbox

    def respond(self, topic, handler, subscription=RESPONDERS):
        """A Responder answering requests on `topic` with handler(message)
        (its return value, bytes or str, is the reply; an exception becomes
        a tern-error reply). Responders of one subscription name share the
        requests; requests wait in the topic while none runs."""
        requests = self.subscribe(topic, subscription, start=Start.EARLIEST,
                                  prefetch=1)
        return Responder(self, requests, handler)

    # --- topics and subscriptions ---

    def create_topic(self, name, settings=None, temporary=False):
        """Creates a topic; False if it existed with the same settings."""
        return self._wait(self._session.request(
            lambda rid: frames.create_topic(rid, name, settings, temporary)))

    def alter_topic(self, name, settings):
        self._wait(self._session.request(
            lambda rid: frames.alter_topic(rid, name, settings)))

    def delete_topic(self, name):
        self._wait(self._session.request(
            lambda rid: frames.delete_topic(rid, name)))

    def delete_subscription(self, topic, subscription):
        self._wait(self._session.request(
            lambda rid: frames.delete_subscription(rid, topic, subscription)))

    def reset_subscription(self, topic, subscription, start=Start.EARLIEST,
                           start_offset=0, start_time=None):
        """Moves a durable subscription; returns the offset it now starts
        at."""
        if start_time is not None:
            start = Start.TIME
        start_time_ms = int(start_time * 1000) if start_time else 0
        return self._wait(self._session.request(
            lambda rid: frames.reset_subscription(
                rid, topic, subscription, Start(start), start_offset,
                start_time_ms)))

    def list_topics(self):
        """Every topic (TopicInfo), in name order."""
        return self._wait(self._session.request(frames.list_topics))

    def topic_info(self, name):
        """The TopicInfo of `name`, or None if there is no such topic."""
        topics = self._wait(self._session.request(
            lambda rid: frames.list_topics(rid, name)))
        return topics[0] if topics else None
