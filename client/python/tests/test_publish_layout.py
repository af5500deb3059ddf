"""The hand-laid Publish frame reads back, field for field, with the code
flatc generated from tern.fbs."""
import tern
from tern import frames
from tern.wire.Body import Body
from tern.wire.Frame import Frame
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
