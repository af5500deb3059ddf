"""What is written or read once per message (Publish, Ack and Nack frames;
the deliveries of a Deliver), done by hand with struct.

FlatBuffers' Python builder writes a buffer back to front through a dozen
method calls per field; a Publish of 100 small messages took 2.5 ms, an Ack
0.1 ms. Its generated readers make as many calls per field read, which held
a reader thread to 50,000 deliveries a second. This writes the same format
front to back and reads it through the vtables directly, for what is done
per message; everything else uses the generated code. tests/test_layout.py
checks both against the generated code (tern.wire), and the broker verifies
every frame it gets.

The Publish layout (positions from the start of the 4-byte length; every
table 4-aligned, 8-byte fields 8-aligned, the frame padded to 8 bytes):

    length | root offset | Frame vtable | Frame | Publish vtable | Publish
    | messages vector | topic | for each message: [its vtable, the first
    time its set of fields appears] table, key, headers, payload, id

Offsets to tables and vectors point forward, as uoffsets must; a table
finds its vtable before it (a positive soffset), so messages of one shape
share one vtable.
"""
import struct

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_TABLE_AND_OFFSET = struct.Struct("<iI")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")

# Message fields (tern.fbs): key 0, headers 1, payload 2, id 3, ttl_ms 4.
_KEY, _HEADERS, _PAYLOAD, _ID, _TTL = range(5)


def _pad(buf, alignment):
    buf += bytes(-len(buf) % alignment)


def _vtable(buf, slots, table_size):
    """A vtable for fields at the table offsets `slots` (0: absent)."""
    _pad(buf, 2)
    at = len(buf)
    buf += struct.pack(f"<HH{len(slots)}H", 4 + 2 * len(slots), table_size,
                       *slots)
    return at


def _bytes_vector(buf, data):
    _pad(buf, 4)
    at = len(buf)
    buf += _U32.pack(len(data))
    buf += data
    return at


def _string(buf, text):
    at = _bytes_vector(buf, text)
    buf += b"\0"
    return at


def _patch(buf, slot, target):
    _U32.pack_into(buf, slot, target - slot)


def _header(buf, vtable_of, name, value):
    """A Header table {name, value}; returns its position."""
    vt = vtable_of.get("header")
    if vt is None:
        vt = vtable_of["header"] = _vtable(buf, (4, 8), 12)
    _pad(buf, 4)
    at = len(buf)
    buf += struct.pack("<iII", at - vt, 0, 0)
    _patch(buf, at + 4, _string(buf, name.encode()))
    _patch(buf, at + 8, _bytes_vector(
        buf, value.encode() if isinstance(value, str) else bytes(value)))
    return at


def _message(buf, vtable_of, m):
    """A Message table and what it points to; returns its position."""
    present = []  # field ids with an offset, in table order
    if m.key:
        present.append(_KEY)
    if m.headers:
        present.append(_HEADERS)
    if m.payload:
        present.append(_PAYLOAD)
    if m.id:
        present.append(_ID)
    ttl_ms = max(1, int(m.ttl * 1000)) if m.ttl else 0
    shape = (tuple(present), bool(ttl_ms))
    vt = vtable_of.get(shape)
    table_size = 4 + 4 * len(present) + (4 if ttl_ms else 0)
    if vt is None:
        slots = [0] * 5
        for i, field in enumerate(present):
            slots[field] = 4 + 4 * i
        if ttl_ms:
            slots[_TTL] = 4 + 4 * len(present)
        while slots and slots[-1] == 0:
            slots.pop()
        vt = vtable_of[shape] = _vtable(buf, slots, table_size)
    _pad(buf, 4)
    at = len(buf)
    if present == [_PAYLOAD] and not ttl_ms:
        # The common case in one step: the payload follows the table.
        buf += _TABLE_AND_OFFSET.pack(at - vt, 4)
        buf += _U32.pack(len(m.payload))
        buf += m.payload
        return at
    buf += struct.pack("<i", at - vt)
    buf += bytes(4 * len(present))
    if ttl_ms:
        buf += _U32.pack(ttl_ms)
    for i, field in enumerate(present):
        slot = at + 4 + 4 * i
        if field == _KEY:
            _patch(buf, slot, _bytes_vector(buf, m.key))
        elif field == _PAYLOAD:
            _patch(buf, slot, _bytes_vector(buf, m.payload))
        elif field == _ID:
            _patch(buf, slot, _string(buf, m.id.encode()))
        else:
            _pad(buf, 4)
            vector = len(buf)
            _patch(buf, slot, vector)
            buf += _U32.pack(len(m.headers))
            buf += bytes(4 * len(m.headers))
            for j, (name, value) in enumerate(m.headers):
                _patch(buf, vector + 4 + 4 * j,
                       _header(buf, vtable_of, name, value))
    return at


def _frame(body_type):
    """A buffer with the length (filled in by _finish), the root offset and
    the Frame table; returns it and the position of Frame.body."""
    buf = bytearray(8)
    # Frame: body_type (field 0, ubyte) at 8, body (field 1) at 4.
    frame_vt = _vtable(buf, (8, 4), 9)
    frame = len(buf)  # 16
    buf += struct.pack("<iIB", frame - frame_vt, 0, body_type)
    _U32.pack_into(buf, 4, frame - 4)
    return buf, frame + 4


def _table_at_4_mod_8(buf):
    """Pads so that a table starts 4 bytes before an 8-byte boundary: its
    first field after the soffset can then be 8 bytes wide."""
    buf += bytes((4 - len(buf)) % 8)
    return len(buf)


def _finish(buf):
    _pad(buf, 8)
    _U32.pack_into(buf, 0, len(buf) - 4)
    return bytes(buf)


def publish_frame(body_type, request_id, topic, messages, confirm):
    buf, body = _frame(body_type)
    # Publish: request_id (0) at 4, topic (1) at 12, confirm (2) at 20,
    # messages (3) at 16. The table starts 4 past an 8-byte boundary, so
    # that request_id is 8-aligned.
    publish_vt = _vtable(buf, (4, 12, 20 if not confirm else 0, 16),
                         21 if not confirm else 20)
    table = _table_at_4_mod_8(buf)
    _patch(buf, body, table)
    buf += struct.pack("<iQII", table - publish_vt, request_id, 0, 0)
    if not confirm:
        buf += b"\0"
    _pad(buf, 4)
    vector = len(buf)
    _patch(buf, table + 16, vector)
    buf += _U32.pack(len(messages))
    buf += bytes(4 * len(messages))
    _patch(buf, table + 12, _string(buf, topic.encode()))
    vtable_of = {}
    for i, m in enumerate(messages):
        _patch(buf, vector + 4 + 4 * i, _message(buf, vtable_of, m))
    return _finish(buf)


def settle_frame(body_type, consumer_id, ranges, topic, nack=None):
    """An Ack, or with nack = (delay_ms, dead_letter) a Nack: consumer_id
    (field 0) at 4, ranges (1) at 12, then for a Nack delay_ms (2) at 16
    and dead_letter (3) at 20; topic (2 in an Ack, 4 in a Nack) last, when
    given. `ranges`: inclusive (first, last) pairs."""
    buf, body = _frame(body_type)
    topic_slot = 16 if nack is None else 24
    slots = [4, 12] if nack is None else [4, 12, 16, 20]
    if topic:
        slots.append(topic_slot)
    vt = _vtable(buf, slots, topic_slot + 4 if topic else topic_slot)
    table = _table_at_4_mod_8(buf)
    _patch(buf, body, table)
    buf += struct.pack("<iQI", table - vt, consumer_id, 0)
    if nack is not None:
        buf += struct.pack("<I?3x", *nack)
    if topic:
        buf += bytes(4)
    # The ranges' 16-byte structs must be 8-aligned, after a 4-byte count.
    vector = _table_at_4_mod_8(buf)
    _patch(buf, table + 12, vector)
    buf += _U32.pack(len(ranges))
    for first, last in ranges:
        buf += struct.pack("<QQ", first, last)
    if topic:
        _patch(buf, table + topic_slot, _string(buf, topic.encode()))
    return _finish(buf)


# --- reading deliveries ---

class Delivery:
    """One message of a Deliver frame, before the client wraps it."""

    __slots__ = ("offset", "attempt", "timestamp_ms", "key", "headers",
                 "payload")


def _slots(buf, table):
    """The field offsets of `table` (0: absent), from its vtable."""
    vt = table - _I32.unpack_from(buf, table)[0]
    size = _U16.unpack_from(buf, vt)[0]
    return struct.unpack_from(f"<{size // 2 - 2}H", buf, vt + 4)


def _target(buf, at):
    """Where the uoffset at `at` points."""
    return at + _U32.unpack_from(buf, at)[0]


def _vector_bytes(buf, table, slots, field):
    if field >= len(slots) or slots[field] == 0:
        return b""
    start = _target(buf, table + slots[field])
    n = _U32.unpack_from(buf, start)[0]
    return bytes(buf[start + 4:start + 4 + n])


def _read_header(buf, table):
    slots = _slots(buf, table)
    return (_vector_bytes(buf, table, slots, 0).decode("utf-8", "replace"),
            _vector_bytes(buf, table, slots, 1))


def read_deliveries(buf, vector):
    """The Delivery tables of the vector whose elements start at `vector`
    (after its length) in `buf`: offset 0, attempt 1, timestamp_ms 2,
    key 3, headers 4, payload 5 (tern.fbs)."""
    count = _U32.unpack_from(buf, vector - 4)[0]
    out = []
    for i in range(count):
        table = _target(buf, vector + 4 * i)
        slots = _slots(buf, table) + (0,) * 6
        d = Delivery()
        d.offset = _U64.unpack_from(buf, table + slots[0])[0] if slots[0] else 0
        d.attempt = _U32.unpack_from(buf, table + slots[1])[0] if slots[1] else 0
        d.timestamp_ms = (_I64.unpack_from(buf, table + slots[2])[0]
                          if slots[2] else 0)
        d.key = _vector_bytes(buf, table, slots, 3)
        d.headers = []
        if slots[4]:
            headers = _target(buf, table + slots[4])
            for j in range(_U32.unpack_from(buf, headers)[0]):
                d.headers.append(_read_header(
                    buf, _target(buf, headers + 4 + 4 * j)))
        d.payload = _vector_bytes(buf, table, slots, 5)
        out.append(d)
    return out
