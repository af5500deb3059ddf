"""The asyncio client: the same calls as tern.Client, as coroutines.

    client = await tern.aio.Client.connect("127.0.0.1:7411")
    await client.publish("orders.created", b"...")
    async with await client.subscribe("orders.created", "billing") as sub:
        async for message in sub:
            message.ack()          # acks and nacks only queue a frame

One task reads the connection; every call runs on the event loop it was
connected from.
"""
import asyncio

from . import frames
from .client import outgoing, subscribe_frame, tls_context
from .errors import ErrorCode, TernError
from .session import (RESPONDERS, acks_of, as_bytes, check_reply,
                      check_result, Consumer, Inbox, new_inbox_name,
                      parse_server, reply_message, reply_to, request_message,
                      Session)
from .trace import headers as trace_headers
from .types import OutgoingMessage, Start

_CLOSED = object()


class Subscription(Consumer):
    """Messages of one subscription, in order: `async for`, or next()."""

    def __init__(self, client, topic):
        super().__init__(client._session, topic)
        self._client = client
        self.topic = topic
        self.name = ""
        self._queue = asyncio.Queue()
        self._error = None

    def on_messages(self, messages):
        for m in messages:
            self._queue.put_nowait(m)

    def on_closed(self, error):
        self._queue.put_nowait(error)

    async def next(self, timeout=None):
        """The next message, or None after `timeout` seconds. Raises
        TernError once the consumer or connection ended;
        StopAsyncIteration after close()."""
        if self._error is not None:
            raise self._error
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if item is _CLOSED:
            self._error = StopAsyncIteration()
            raise self._error
        if isinstance(item, TernError):
            self._error = item
            raise item
        return item

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self.next()

    async def close(self):
        if self._error is not None or self.id == 0:
            return
        self.session.remove_consumer(self)
        try:
            await self._client._wait(self.session.request(
                lambda rid: frames.unsubscribe(rid, self.id)))
        except TernError:
            pass
        self._queue.put_nowait(_CLOSED)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class Responder:
    def __init__(self, client, requests, handler):
        self._client = client
        self._requests = requests
        self._handler = handler

    async def serve_one(self, timeout=None):
        """Answers one request (handler may be a coroutine function)."""
        request = await self._requests.next(timeout)
        if request is None:
            return False
        inbox = reply_to(request)
        if inbox is None:
            request.ack()
            return False
        try:
            payload = self._handler(request)
            if asyncio.iscoroutine(payload):
                payload = await payload
            reply = reply_message(request, payload)
        except Exception as e:
            reply = reply_message(request, error=e)
        try:
            await self._client.publish_message(inbox, reply)
        except TernError as e:
            if e.code != ErrorCode.UnknownTopic:
                raise
        request.ack()
        return True

    async def serve(self):
        """Answers requests until cancelled."""
        while True:
            await self.serve_one()

    async def close(self):
        await self._requests.close()


class Client:
    @classmethod
    async def connect(cls, server="127.0.0.1:7411", *,
                      client_name="tern-python-aio", user="", password="",
                      token="", tls=False, ca_file=None, server_hostname=None,
                      timeout=10.0, heartbeat=None, max_unconfirmed=10000):
        """As tern.Client.connect."""
        self = cls()
        self.timeout = timeout
        self._max_unconfirmed = max(1, max_unconfirmed)
        host, port = parse_server(server)
        context = tls_context(tls, ca_file)
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context,
                    server_hostname=(server_hostname or host)
                    if context else None),
                timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise TernError(ErrorCode.ConnectFailed,
                            f"cannot connect to {host}:{port}: {e!r}")
        loop = asyncio.get_running_loop()
        self._session = Session(loop.create_future, self._send)
        heartbeat_ms = int(heartbeat * 1000) if heartbeat else 0
        hello = self._session.request(lambda rid: frames.hello(
            rid, client_name, user, password, token, heartbeat_ms))
        self._task = loop.create_task(self._read_loop())
        try:
            max_frame, heartbeat_ms, _ = await self._wait(hello)
        except TernError:
            await self.close()
            raise
        self._session.max_frame = max_frame
        self._heartbeat = (loop.create_task(self._beat(heartbeat_ms / 1000))
                           if heartbeat_ms else None)
        return self

    def __init__(self):
        self._unconfirmed = 0
        self._confirms = asyncio.Condition()
        self._inbox = None
        self._inbox_lock = asyncio.Lock()
        self._closed = False

    def _send(self, data):
        if self._writer.is_closing():
            raise self._session.failure or TernError(
                ErrorCode.ConnectionLost, "the connection is closed")
        self._writer.write(data)

    async def _read_loop(self):
        buffer = bytearray()
        try:
            while True:
                chunk = await self._reader.read(1 << 16)
                if not chunk:
                    raise TernError(ErrorCode.ConnectionLost,
                                    "the broker closed the connection")
                buffer += chunk
                try:
                    batch = frames.split(buffer, self._session.max_frame)
                except ValueError as e:
                    raise TernError(ErrorCode.Protocol, str(e))
                for frame in batch:
                    self._session.on_frame(frame)
        except TernError as e:
            error = e
        except (OSError, asyncio.IncompleteReadError) as e:
            error = TernError(ErrorCode.ConnectionLost,
                              f"connection to the broker failed: {e!r}")
        except asyncio.CancelledError:
            error = TernError(ErrorCode.ConnectionLost, "the client is closed")
        self._session.fail(error)
        async with self._confirms:
            self._confirms.notify_all()

    async def _beat(self, interval):
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.ping(), 2 * interval)
            except (TernError, asyncio.TimeoutError):
                # Gone (or unreachable): end the connection.
                self._task.cancel()
                return

    async def _wait(self, future, timeout=None):
        try:
            return await asyncio.wait_for(
                future, self.timeout if timeout is None else timeout)
        except asyncio.TimeoutError:
            raise TernError(ErrorCode.Timeout, "no reply from the broker "
                            f"within {self.timeout} s")

    async def close(self):
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_heartbeat", None):
            self._heartbeat.cancel()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, ConnectionError):
            pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def ping(self):
        await self._wait(self._session.request(frames.ping))

    async def publish(self, topic, payload, *, headers=(), key=b"", id="",
                      ttl=None, trace=None, delay=None, deliver_at=None):
        message = OutgoingMessage(
            payload=as_bytes(payload),
            headers=list(headers) + trace_headers(trace), key=as_bytes(key),
            id=id, ttl=ttl, delay=delay, deliver_at=deliver_at)
        return (await self.publish_message(topic, message)).offset

    async def publish_message(self, topic, message):
        [result] = await self._wait(await self.publish_async(topic, [message]))
        return check_result(result)

    async def publish_atomic(self, parts, acks=(), trace=None):
        """As tern.Client.publish_atomic."""
        parts = [(topic, outgoing(messages, trace))
                 for topic, messages in parts]
        results = await self._wait(self._session.request(
            lambda rid: frames.transaction(rid, parts, acks_of(acks)),
            frames.publish_results))
        for result in results:
            if not result.ok:
                raise TernError(result.error, "atomic publish failed, "
                                "nothing of it stored")
        return results

    async def publish_async(self, topic, messages, confirm=True):
        """Sends one frame; returns a future of its PublishResults (waits
        first while max_unconfirmed messages are out)."""
        messages = outgoing(messages)
        count = len(messages)
        async with self._confirms:
            await self._confirms.wait_for(
                lambda: self._unconfirmed == 0 or
                self._unconfirmed + count <= self._max_unconfirmed or
                self._session.failure is not None)
            self._unconfirmed += count
        future = self._session.request(
            lambda rid: frames.publish(rid, topic, messages, confirm),
            frames.publish_results, answered=confirm)
        asyncio.ensure_future(self._confirmed_when(future, count))
        # Frames queue in the transport: wait while it is full.
        await self._writer.drain()
        return future

    async def _confirmed_when(self, future, count):
        try:
            await asyncio.shield(future)
        except Exception:
            pass
        async with self._confirms:
            self._unconfirmed -= count
            self._confirms.notify_all()

    async def flush(self, timeout=None):
        async with self._confirms:
            try:
                await asyncio.wait_for(self._confirms.wait_for(
                    lambda: self._unconfirmed == 0 or
                    self._session.failure is not None),
                    self.timeout if timeout is None else timeout)
            except asyncio.TimeoutError:
                raise TernError(ErrorCode.Timeout, f"{self._unconfirmed} "
                                "messages still unconfirmed")
        if self._session.failure is not None and self._unconfirmed:
            raise self._session.failure

    async def subscribe(self, topic, subscription="", *, start=Start.LATEST,
                        start_offset=0, start_time=None, prefetch=1000,
                        ack_timeout=None, max_deliveries=16,
                        dead_letter_topic="", retry_delays=()):
        consumer = Subscription(self, topic)

        def subscribed(value):
            consumer_id, name = value
            consumer.name = name
            self._session.add_consumer(consumer, consumer_id)
            return consumer

        return await self._wait(self._session.request(subscribe_frame(
            topic, subscription, start, start_offset, start_time, prefetch,
            ack_timeout, max_deliveries, dead_letter_topic, retry_delays),
            subscribed))

    async def request(self, topic, payload, timeout=5.0, headers=(),
                      trace=None):
        inbox = await self._get_inbox()
        correlation_id, future = inbox.expect()
        try:
            await self.publish_message(topic, request_message(
                payload, list(headers) + trace_headers(trace), inbox.topic,
                correlation_id, timeout))
            try:
                reply = await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise TernError(ErrorCode.Timeout,
                                f"no reply to request on {topic!r} within "
                                f"{timeout} s (is a responder running?)")
        finally:
            inbox.forget(correlation_id)
        return check_reply(reply)

    async def _get_inbox(self):
        async with self._inbox_lock:
            if self._inbox is None:
                topic = new_inbox_name()
                await self.create_topic(topic, temporary=True)
                inbox = Inbox(self._session, topic,
                              asyncio.get_running_loop().create_future)

                def subscribed(value):
                    self._session.add_consumer(inbox, value[0])

                await self._wait(self._session.request(subscribe_frame(
                    topic, "", Start.LATEST, 0, None, 1000, None, 16, ""),
                    subscribed))
                self._inbox = inbox
            return self._inbox

    async def respond(self, topic, handler, subscription=RESPONDERS):
        requests = await self.subscribe(topic, subscription,
                                        start=Start.EARLIEST, prefetch=1)
        return Responder(self, requests, handler)

    async def create_topic(self, name, settings=None, temporary=False):
        return await self._wait(self._session.request(
            lambda rid: frames.create_topic(rid, name, settings, temporary)))

    async def alter_topic(self, name, settings):
        await self._wait(self._session.request(
            lambda rid: frames.alter_topic(rid, name, settings)))

    async def delete_topic(self, name):
        await self._wait(self._session.request(
            lambda rid: frames.delete_topic(rid, name)))

    async def delete_subscription(self, topic, subscription):
        await self._wait(self._session.request(
            lambda rid: frames.delete_subscription(rid, topic, subscription)))

    async def reset_subscription(self, topic, subscription,
                                 start=Start.EARLIEST, start_offset=0,
                                 start_time=None):
        if start_time is not None:
            start = Start.TIME
        start_time_ms = int(start_time * 1000) if start_time else 0
        return await self._wait(self._session.request(
            lambda rid: frames.reset_subscription(
                rid, topic, subscription, Start(start), start_offset,
                start_time_ms)))

    async def list_topics(self):
        return await self._wait(self._session.request(frames.list_topics))

    async def topic_info(self, name):
        topics = await self._wait(self._session.request(
            lambda rid: frames.list_topics(rid, name)))
        return topics[0] if topics else None
