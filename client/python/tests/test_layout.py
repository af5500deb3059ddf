"""The hand-laid Publish, Ack and Nack frames read back, field for field,
with the code flatc generated from tern.fbs."""
import tern
from tern import frames
from tern.wire.Body import Body
from tern.wire.Frame import Frame
from tern.wire.Ack import Ack
from tern.wire.Nack import Nack
from tern.wire.Publish import Publish


def read_back(data):
    assert len(data) % 8 == 0
    assert int.from_bytes(data[:4], "little") == len(data) - 4
    frame = Frame.GetRootAs(data[4:], 0)
    assert frame.BodyType() == Body.Publish
    p = Publish()
    p.Init(frame.Body().Bytes, frame.Body().Pos)
    return p


def test_every_field_reads_back():
    messages = [
        tern.OutgoingMessage(payload=b"plain"),
        tern.OutgoingMessage(payload=b"", key=b"k1"),
        tern.OutgoingMessage(payload=b"full", key=b"\x00key",
                             headers=[("a", b"1"), ("b\u00e9", "two")],
                             id="id-7", ttl=1.5),
        tern.OutgoingMessage(payload=b"plain again" * 100),
        tern.OutgoingMessage(payload=b"ttl only", ttl=0.0001),
    ]
    for confirm in (True, False):
        p = read_back(frames.publish(2**64 - 1, "orders.eu", messages,
                                     confirm))
        assert p.RequestId() == 2**64 - 1
        assert p.Topic() == b"orders.eu"
        assert p.Confirm() is confirm
        assert (p.Producer(), p.Sequence()) == (0, 0)
        assert p.MessagesLength() == len(messages)
        for i, want in enumerate(messages):
            assert as_sent(p.Messages(i)) == as_sent(want)


def vector(table, name):
    """A [ubyte] field through the generated accessors, as bytes."""
    get = getattr(table, name)
    return bytes([get(j) for j in range(getattr(table, name + "Length")())])


def as_sent(m):
    """(payload, key, headers, id, ttl_ms) of a generated Message, or what
    an OutgoingMessage should read back as."""
    if isinstance(m, tern.OutgoingMessage):
        return (m.payload, m.key,
                [(n, v.encode() if isinstance(v, str) else v)
                 for n, v in m.headers],
                m.id, max(1, int(m.ttl * 1000)) if m.ttl else 0)
    headers = []
    for j in range(m.HeadersLength()):
        h = m.Headers(j)
        headers.append((h.Name().decode(), vector(h, "Value")))
    return (vector(m, "Payload"), vector(m, "Key"), headers,
            (m.Id() or b"").decode(), m.TtlMs())


def test_empty_frame_and_alignment():
    assert read_back(frames.publish(1, "t", [], True)).MessagesLength() == 0
    for topic in ("t", "orders", "a.b.c.d"):
        p = read_back(frames.publish(5, topic, [], False))
        # request_id, 8 bytes, sits 4 past the table's start; positions
        # count from the length prefix, 4 bytes before data[4:].
        assert (4 + p._tab.Pos + 4) % 8 == 0


def settle_read_back(data, body_type, cls):
    assert len(data) % 8 == 0
    frame = Frame.GetRootAs(data[4:], 0)
    assert frame.BodyType() == body_type
    x = cls()
    x.Init(frame.Body().Bytes, frame.Body().Pos)
    ranges = [(x.Ranges(i).First(), x.Ranges(i).Last())
              for i in range(x.RangesLength())]
    # The 16-byte ranges are 8-aligned from the length prefix (the broker
    # refuses them otherwise).
    start = x._tab.Vector(x._tab.Offset(6))
    assert (4 + start) % 8 == 0
    return x, ranges


def test_ack_and_nack_read_back():
    offsets = [7, 3, 4, 5, 2**63, 10]
    want = [(3, 5), (7, 7), (10, 10), (2**63, 2**63)]
    for topic in ("", "shop.eu.paid"):
        a, ranges = settle_read_back(frames.ack(2**40 + 1, offsets, topic),
                                     Body.Ack, Ack)
        assert (a.ConsumerId(), ranges) == (2**40 + 1, want)
        assert (a.Topic() or b"") == topic.encode()
        for delay, dead in ((0, False), (1500, False), (0, True)):
            n, ranges = settle_read_back(
                frames.nack(9, offsets, delay, dead, topic), Body.Nack, Nack)
            assert (n.ConsumerId(), ranges) == (9, want)
            assert (n.DelayMs(), n.DeadLetter()) == (delay, dead)
            assert (n.Topic() or b"") == topic.encode()


def test_deliveries_read_as_the_generated_code_reads_them(broker,
                                                          monkeypatch):
    from tern import session
    from tern.wire.Deliver import Deliver
    seen = []
    on_frame = session.Session.on_frame

    def record(self, data):
        seen.append(data)
        return on_frame(self, data)

    monkeypatch.setattr(session.Session, "on_frame", record)
    sent = [
        tern.OutgoingMessage(payload=b"plain"),
        tern.OutgoingMessage(),  # nothing at all
        tern.OutgoingMessage(payload=b"\x00" * 3000, key=b"k",
                             headers=[("a", b""), ("\u00fc", b"\xff\x01")]),
    ]
    with tern.Client.connect(broker.address) as c:
        c.publish_async("shapes", sent)
        c.flush()
        sub = c.subscribe("shapes", start=tern.Start.EARLIEST)
        got = [sub.next(5) for _ in sent]
    assert [(m.payload, m.key, m.headers) for m in got] == [
        (m.payload, m.key, m.headers) for m in sent]

    checked = 0
    for data in seen:
        frame = Frame.GetRootAs(data, 0)
        if frame.BodyType() != Body.Deliver:
            continue
        d = Deliver()
        d.Init(frame.Body().Bytes, frame.Body().Pos)
        mine = frames._deliveries(d)
        for i in range(d.MessagesLength()):
            g = d.Messages(i)
            headers = [(g.Headers(j).Name().decode(), vector(g.Headers(j),
                                                             "Value"))
                       for j in range(g.HeadersLength())]
            assert (mine[i].offset, mine[i].attempt, mine[i].timestamp_ms,
                    mine[i].key, mine[i].headers, mine[i].payload) == (
                g.Offset(), g.Attempt(), g.TimestampMs(), vector(g, "Key"),
                headers, vector(g, "Payload"))
            checked += 1
    assert checked == len(sent)
