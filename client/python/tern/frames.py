"""Frames: Python values to wire bytes and back, with the flatc-generated
schema code (tern.wire). No I/O here: the clients (client.py, aio.py) own
the sockets.

Each frame is a 4-byte little-endian length and a FlatBuffer whose root is
a Frame (PROTOCOL.md, Transport and framing).
"""
import struct

import flatbuffers

from . import layout
from .errors import ErrorCode
from .types import PublishResult, SubscriptionInfo, TopicInfo, TopicSettings
from .wire import (Ack, AlterTopic, CreateTopic, DeleteSubscription, DeleteTopic,
                   Frame, Header, Hello, ListTopics, Message, OffsetRange, Ping,
                   Publish, PublishPart, ResetSubscription, Subscribe, Transaction,
                   Unsubscribe)
from .wire import TopicSettings as WireSettings
from .wire.Body import Body
from .wire.AlterTopicOk import AlterTopicOk
from .wire.ConsumerClosed import ConsumerClosed
from .wire.CreateTopicOk import CreateTopicOk
from .wire.DeleteOk import DeleteOk
from .wire.Deliver import Deliver
from .wire.Error import Error
from .wire.HelloOk import HelloOk
from .wire.Pong import Pong
from .wire.PublishAck import PublishAck
from .wire.ResetOk import ResetOk
from .wire.SubscribeOk import SubscribeOk
from .wire.TopicList import TopicList
from .wire.UnsubscribeOk import UnsubscribeOk

PROTOCOL_VERSION = 1
_LENGTH = struct.Struct("<I")
_PUBLISH_RESULT = struct.Struct("<QH??4x")  # 16 bytes (PROTOCOL.md)


def _as_bytes(value):
    return value.encode() if isinstance(value, str) else bytes(value)


def _finish(builder, body_type, body):
    Frame.Start(builder)
    Frame.AddBodyType(builder, body_type)
    Frame.AddBody(builder, body)
    builder.FinishSizePrefixed(Frame.End(builder))
    return builder.Output()


def _table(module, builder, **fields):
    """One table of `module` (a generated schema module) with `fields`:
    strings and bytes are written first, as FlatBuffers wants."""
    offsets = {}
    for name, value in fields.items():
        if isinstance(value, str):
            offsets[name] = builder.CreateString(value) if value else None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            offsets[name] = builder.CreateByteVector(value) if value else None
    module.Start(builder)
    for name, value in fields.items():
        value = offsets.get(name, value)
        if value is not None:
            getattr(module, "Add" + name)(builder, value)
    return module.End(builder)


def _tables(builder, tables):
    """A vector of the tables at `tables` (offsets), in order; None if
    empty (the field is then left out)."""
    if not tables:
        return None
    builder.StartVector(4, len(tables), 4)
    for t in reversed(tables):
        builder.PrependUOffsetTRelative(t)
    return builder.EndVector()


def _settings(builder, settings):
    if settings is None:
        return None
    return _table(WireSettings, builder,
                  MaxAgeMs=int(settings.max_age * 1000),
                  MaxBytes=settings.max_bytes,
                  MaxMessages=settings.max_messages,
                  WorkQueue=settings.work_queue,
                  DeadLetterExpired=settings.dead_letter_expired)


# --- frames a client sends ---

def hello(request_id, client_name, user="", password=b"", token="",
          heartbeat_ms=0):
    b = flatbuffers.Builder(256)
    # Any bytes, so not a str field for _table.
    secret = b.CreateString(_as_bytes(password)) if password else None
    body = _table(Hello, b, RequestId=request_id,
                  ProtocolVersion=PROTOCOL_VERSION, ClientName=client_name,
                  AuthToken=token, User=user, Password=secret,
                  HeartbeatMs=heartbeat_ms)
    return _finish(b, Body.Hello, body)


def ping(request_id):
    b = flatbuffers.Builder(64)
    return _finish(b, Body.Ping, _table(Ping, b, RequestId=request_id))


def publish(request_id, topic, messages, confirm=True):
    """`messages`: OutgoingMessage values. Laid out by hand, front to back
    (layout.py): the Python FlatBuffers builder costs some 25 us
    a message, which would cap a client at 40,000 messages a second.
    Scheduled messages, which layout.py does not lay out, take the
    generated builder."""
    if any(m.delay or m.deliver_at for m in messages):
        b = flatbuffers.Builder(1024)
        vector = _tables(b, [_message(b, m) for m in messages])
        return _finish(b, Body.Publish, _table(
            Publish, b, RequestId=request_id, Topic=topic, Confirm=confirm,
            Messages=vector))
    return layout.publish_frame(Body.Publish, request_id, topic,
                                        messages, confirm)


def transaction(request_id, parts, acks=()):
    """Parts: (topic, [OutgoingMessage]) pairs, stored in one commit with
    `acks`: (consumer id, topic or "", [offsets]) triples."""
    b = flatbuffers.Builder(1024)
    ack_tables = []
    for consumer_id, topic, offsets in acks:
        name = b.CreateString(topic) if topic else None
        ranges = _ranges(offsets)
        Ack.StartRangesVector(b, len(ranges))
        for first, last in reversed(ranges):
            OffsetRange.CreateOffsetRange(b, first, last)
        vector = b.EndVector()
        Ack.Start(b)
        Ack.AddConsumerId(b, consumer_id)
        Ack.AddRanges(b, vector)
        if name is not None:
            Ack.AddTopic(b, name)
        ack_tables.append(Ack.End(b))
    ack_vector = _tables(b, ack_tables)
    tables = []
    for topic, messages in parts:
        vector = _tables(b, [_message(b, m) for m in messages])
        tables.append(_table(PublishPart, b, Topic=topic, Messages=vector))
    body = _table(Transaction, b, RequestId=request_id,
                  Parts=_tables(b, tables), Acks=ack_vector)
    return _finish(b, Body.Transaction, body)


def _message(b, m):
    """A Message table with the generated builder (layout.py writes the
    Publish frame's by hand)."""
    headers = _tables(b, [_table(Header, b, Name=name, Value=_as_bytes(value))
                          for name, value in m.headers])
    return _table(Message, b, Key=bytes(m.key), Headers=headers,
                  Payload=bytes(m.payload), Id=m.id,
                  TtlMs=max(1, int(m.ttl * 1000)) if m.ttl else None,
                  DeliverAtMs=int(m.deliver_at * 1000) if m.deliver_at else None,
                  DelayMs=max(1, int(m.delay * 1000)) if m.delay else None)


def subscribe(request_id, topic, subscription, start, prefetch, ack_timeout_ms,
              start_offset, start_time_ms, max_deliveries, dead_letter_topic,
              retry_delays_ms=()):
    b = flatbuffers.Builder(256)
    delays = None
    if retry_delays_ms:
        Subscribe.StartRetryDelaysMsVector(b, len(retry_delays_ms))
        for delay in reversed(retry_delays_ms):
            b.PrependUint32(delay)
        delays = b.EndVector()
    body = _table(Subscribe, b, RequestId=request_id, Topic=topic,
                  Subscription=subscription, Start=int(start),
                  Prefetch=prefetch, AckTimeoutMs=ack_timeout_ms,
                  StartOffset=start_offset, StartTimeMs=start_time_ms,
                  MaxDeliveries=max_deliveries,
                  DeadLetterTopic=dead_letter_topic, RetryDelaysMs=delays)
    return _finish(b, Body.Subscribe, body)


def unsubscribe(request_id, consumer_id):
    b = flatbuffers.Builder(64)
    body = _table(Unsubscribe, b, RequestId=request_id, ConsumerId=consumer_id)
    return _finish(b, Body.Unsubscribe, body)


def _ranges(offsets):
    """Offsets as inclusive (first, last) ranges of consecutive ones."""
    ranges = []
    for o in sorted(offsets):
        if ranges and ranges[-1][1] + 1 == o:
            ranges[-1][1] = o
        else:
            ranges.append([o, o])
    return ranges


def ack(consumer_id, offsets, topic=""):
    return layout.settle_frame(Body.Ack, consumer_id, _ranges(offsets), topic)


def nack(consumer_id, offsets, delay_ms=0, dead_letter=False, topic=""):
    return layout.settle_frame(Body.Nack, consumer_id, _ranges(offsets),
                               topic, nack=(delay_ms, dead_letter))


def list_topics(request_id, topic=""):
    b = flatbuffers.Builder(128)
    body = _table(ListTopics, b, RequestId=request_id, Topic=topic)
    return _finish(b, Body.ListTopics, body)


def create_topic(request_id, topic, settings, temporary):
    b = flatbuffers.Builder(256)
    wire_settings = _settings(b, settings)
    body = _table(CreateTopic, b, RequestId=request_id, Topic=topic,
                  Settings=wire_settings, Temporary=temporary)
    return _finish(b, Body.CreateTopic, body)


def alter_topic(request_id, topic, settings):
    b = flatbuffers.Builder(256)
    wire_settings = _settings(b, settings)
    body = _table(AlterTopic, b, RequestId=request_id, Topic=topic,
                  Settings=wire_settings)
    return _finish(b, Body.AlterTopic, body)


def delete_topic(request_id, topic):
    b = flatbuffers.Builder(128)
    body = _table(DeleteTopic, b, RequestId=request_id, Topic=topic)
    return _finish(b, Body.DeleteTopic, body)


def delete_subscription(request_id, topic, subscription):
    b = flatbuffers.Builder(128)
    body = _table(DeleteSubscription, b, RequestId=request_id, Topic=topic,
                  Subscription=subscription)
    return _finish(b, Body.DeleteSubscription, body)


def reset_subscription(request_id, topic, subscription, start, start_offset,
                       start_time_ms):
    b = flatbuffers.Builder(128)
    body = _table(ResetSubscription, b, RequestId=request_id, Topic=topic,
                  Subscription=subscription, Start=int(start),
                  StartOffset=start_offset, StartTimeMs=start_time_ms)
    return _finish(b, Body.ResetSubscription, body)


# --- frames the broker sends ---

def split(buffer, max_frame):
    """Whole frames at the front of `buffer` (a bytearray), removed from it.
    Raises ValueError for a length the broker would never send."""
    frames = []
    pos = 0
    while len(buffer) - pos >= 4:
        (n,) = _LENGTH.unpack_from(buffer, pos)
        if n == 0 or n > max_frame:
            raise ValueError(f"frame length {n} (at most {max_frame})")
        if len(buffer) - pos - 4 < n:
            break
        frames.append(bytes(buffer[pos + 4:pos + 4 + n]))
        pos += 4 + n
    del buffer[:pos]
    return frames


def _text(value):
    return value.decode("utf-8", "replace") if value is not None else ""


def _deliveries(deliver):
    o = deliver._tab.Offset(10)  # messages, field 3
    if o == 0:
        return []
    return layout.read_deliveries(deliver._tab.Bytes, deliver._tab.Vector(o))


def _publish_results(ack_frame):
    o = ack_frame._tab.Offset(6)
    if o == 0:
        return []
    tab = ack_frame._tab
    start = tab.Vector(o)
    data = tab.Bytes
    return [_PUBLISH_RESULT.unpack_from(data, start + 16 * i)
            for i in range(tab.VectorLen(o))]


def _topic_info(t):
    s = t.Settings()
    settings = TopicSettings()
    if s is not None:
        settings = TopicSettings(max_age=s.MaxAgeMs() / 1000,
                                 max_bytes=s.MaxBytes(),
                                 max_messages=s.MaxMessages(),
                                 work_queue=s.WorkQueue(),
                                 dead_letter_expired=s.DeadLetterExpired())
    subs = []
    for i in range(t.SubscriptionsLength()):
        x = t.Subscriptions(i)
        subs.append(SubscriptionInfo(
            name=_text(x.Name()), consumers=x.Consumers(),
            ack_floor=x.AckFloor(), lag=x.Lag(), pending=x.Pending(),
            waiting_redelivery=x.WaitingRedelivery(),
            ack_timeout_ms=x.AckTimeoutMs(), max_deliveries=x.MaxDeliveries(),
            dead_letter_topic=_text(x.DeadLetterTopic()), skipped=x.Skipped(),
            dead_letter_blocked=x.DeadLetterBlocked(),
            dead_letter_error=_text(x.DeadLetterError()),
            retry_delays_ms=[x.RetryDelaysMs(j)
                             for j in range(x.RetryDelaysMsLength())]))
    return TopicInfo(name=_text(t.Name()), first_offset=t.FirstOffset(),
                     next_offset=t.NextOffset(), subscriptions=subs,
                     settings=settings, messages=t.Messages(),
                     bytes=t.Bytes(), temporary=t.Temporary(),
                     disk_bytes=t.DiskBytes(), memory_bytes=t.MemoryBytes(),
                     scheduled=t.Scheduled())


# Body type -> (its generated class, what the client wants of it). Each
# entry gives (request_id or consumer_id, value).
def _request_reply(cls, value):
    def decode(tab):
        x = cls()
        x.Init(tab.Bytes, tab.Pos)
        return x.RequestId(), value(x)
    return decode


_REPLIES = {
    Body.HelloOk: _request_reply(
        HelloOk, lambda x: (x.MaxFrameBytes(), x.HeartbeatMs(),
                            _text(x.ServerName()))),
    Body.Pong: _request_reply(Pong, lambda x: None),
    Body.Error: _request_reply(
        Error, lambda x: (x.Code(), _text(x.Message()))),
    Body.PublishAck: _request_reply(PublishAck, _publish_results),
    Body.SubscribeOk: _request_reply(
        SubscribeOk, lambda x: (x.ConsumerId(), _text(x.Subscription()))),
    Body.UnsubscribeOk: _request_reply(UnsubscribeOk, lambda x: None),
    Body.TopicList: _request_reply(
        TopicList, lambda x: [_topic_info(x.Topics(i))
                              for i in range(x.TopicsLength())]),
    Body.ResetOk: _request_reply(ResetOk, lambda x: x.Offset()),
    Body.CreateTopicOk: _request_reply(CreateTopicOk, lambda x: x.Created()),
    Body.DeleteOk: _request_reply(DeleteOk, lambda x: None),
    Body.AlterTopicOk: _request_reply(AlterTopicOk, lambda x: None),
}


def decode(data):
    """A frame from the broker (without its length) as (kind, id, value):
    kind is the Body type; id the request id (replies) or consumer id
    (Deliver: value is (topic, subscription, [Delivery]); ConsumerClosed:
    value is (code, message)). Raises ValueError for what a broker never
    sends."""
    frame = Frame.Frame.GetRootAs(data, 0)
    kind = frame.BodyType()
    body = frame.Body()
    if body is None:
        raise ValueError(f"frame of type {kind} without a body")
    if kind == Body.Deliver:
        d = Deliver()
        d.Init(body.Bytes, body.Pos)
        return kind, d.ConsumerId(), (_text(d.Topic()),
                                      _text(d.Subscription()), _deliveries(d))
    if kind == Body.ConsumerClosed:
        c = ConsumerClosed()
        c.Init(body.Bytes, body.Pos)
        return kind, c.ConsumerId(), (c.Code(), _text(c.Message()))
    reply = _REPLIES.get(kind)
    if reply is None:
        raise ValueError(f"unexpected frame type {kind}")
    request_id, value = reply(body)
    return kind, request_id, value


def publish_results(raw):
    return [PublishResult(offset, duplicate, ErrorCode(error), scheduled)
            for offset, error, duplicate, scheduled in raw]

