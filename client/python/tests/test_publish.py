"""Publishing: confirms, order, pipelining, de-duplication, refusals."""
import pytest

import tern
from conftest import receive


def test_confirmed_offsets_and_order(client):
    offsets = [client.publish("orders", f"m{i}") for i in range(20)]
    assert offsets == list(range(20))
    futures = [client.publish_async("orders", [f"b{i}-{j}" for j in range(50)])
               for i in range(20)]
    client.flush()
    results = [r for f in futures for r in f.result()]
    assert [r.offset for r in results] == list(range(20, 1020))
    assert all(r.ok and not r.duplicate for r in results)

    sub = client.subscribe("orders", "reader", start=tern.Start.EARLIEST)
    got = receive(sub, 1020)
    assert [m.offset for m in got] == list(range(1020))
    assert got[0].payload == b"m0" and got[0].attempt == 1
    assert got[20].payload == b"b0-0" and got[-1].payload == b"b19-49"
    assert got[0].timestamp_ms > 0


def test_key_headers_and_binary_payload(client):
    payload = bytes(range(256))
    client.publish("bin", payload, key=b"k\x00y",
                   headers=[("h1", b"\xff\x00"), ("h2", "text")])
    [m] = receive(client.subscribe("bin", start=tern.Start.EARLIEST), 1)
    assert m.payload == payload
    assert m.key == b"k\x00y"
    assert m.headers == [("h1", b"\xff\x00"), ("h2", b"text")]
    assert m.header("h2") == b"text" and m.header("nope") is None


def test_unconfirmed_publishes_are_stored(client):
    client.publish_async("quiet", [b"x"] * 10, confirm=False)
    client.ping()  # read and acted on; stored once committed
    assert not client._session._pending  # nothing waits for a reply
    sub = client.subscribe("quiet", start=tern.Start.EARLIEST)
    assert len(receive(sub, 10)) == 10


def test_refusals_are_clear_errors(client):
    with pytest.raises(tern.TernError) as e:
        client.publish("bad topic", "x")
    assert e.value.code == tern.ErrorCode.InvalidTopic
    assert "bad topic" in str(e.value)
    future = client.publish_async("also..bad", [b"x"])
    with pytest.raises(tern.TernError) as e:
        future.result(10)
    assert e.value.code == tern.ErrorCode.InvalidTopic
    # An inbox must exist before anyone publishes to it.
    with pytest.raises(tern.TernError) as e:
        client.publish("_inbox.nobody", "x")
    assert e.value.code == tern.ErrorCode.UnknownTopic
    # The connection is still good.
    assert client.publish("fine", "x") == 0


def test_id_is_stored_once_across_reconnects(broker):
    with tern.Client.connect(broker.address) as first:
        r1 = first.publish_message(
            "payments", tern.OutgoingMessage(payload=b"pay 10", id="p-1"))
    assert not r1.duplicate
    # A producer that lost its connection before the confirm sends again.
    with tern.Client.connect(broker.address) as second:
        r2 = second.publish_message(
            "payments", tern.OutgoingMessage(payload=b"pay 10", id="p-1"))
        assert r2.duplicate and r2.offset == r1.offset
        # Also after a broker restart: the ids are stored.
    broker.restart()
    with tern.Client.connect(broker.address) as third:
        r3 = third.publish_message(
            "payments", tern.OutgoingMessage(payload=b"pay 10", id="p-1"))
        assert r3.duplicate and r3.offset == r1.offset
        assert third.topic_info("payments").messages == 1


def test_ttl_expires_undelivered_messages(client):
    import time
    client.publish("brief", "old", ttl=0.05)
    time.sleep(0.2)
    client.publish("brief", "new")
    sub = client.subscribe("brief", "late", start=tern.Start.EARLIEST)
    got = receive(sub, 2, timeout=1.5)
    assert [m.payload for m in got] == [b"new"]


def test_scheduled_messages(client, broker):
    import time
    sub = client.subscribe("later", "w", start=tern.Start.EARLIEST)
    start = time.time()
    r = client.publish_message("later", tern.OutgoingMessage(
        payload=b"in 0.6 s", delay=0.6, id="timeout-1"))
    assert r.scheduled and r.offset == 0 and r.ok
    again = client.publish_message("later", tern.OutgoingMessage(
        payload=b"in 0.6 s", delay=0.6, id="timeout-1"))
    assert again.duplicate and again.scheduled
    client.publish("later", "at", deliver_at=start + 0.3)
    client.publish("later", "now")
    assert client.topic_info("later").scheduled == 2
    got = receive(sub, 3, timeout=5)
    assert [m.payload for m in got] == [b"now", b"at", b"in 0.6 s"]
    assert got[1].timestamp_ms >= int((start + 0.3) * 1000)
    assert got[2].timestamp_ms >= int((start + 0.6) * 1000)
    assert client.topic_info("later").scheduled == 0


def test_atomic_publish(client):
    results = client.publish_atomic([("orders", [b"o1", b"o2"]),
                                     ("audit", [tern.OutgoingMessage(
                                         payload=b"a1", headers=[("h", "v")],
                                         id="audit-1")])])
    assert [(r.offset, r.duplicate) for r in results] == [
        (0, False), (1, False), (0, False)]
    with pytest.raises(tern.TernError) as e:
        client.publish_atomic([("orders", [b"o3"]), ("bad topic", [b"x"])])
    assert e.value.code == tern.ErrorCode.InvalidTopic
    assert client.topic_info("orders").next_offset == 2  # o3 not stored
    m = client.subscribe("audit", start=tern.Start.EARLIEST).next(5)
    assert (m.payload, m.headers) == (b"a1", [("h", b"v")])

    # trace= puts the trace on every message, after their own headers.
    trace = tern.trace.start()
    client.publish_atomic([("audit", [tern.OutgoingMessage(
        payload=b"a2", headers=[("h", "v")])])], trace=(trace, "v=1"))
    m = client.subscribe("audit", start=tern.Start.OFFSET,
                         start_offset=1).next(5)
    assert (m.payload, m.traceparent, m.tracestate) == (b"a2", trace, "v=1")
    assert m.headers[0] == ("h", b"v")


def test_consume_and_publish(client):
    for p in (b"a", b"b"):
        client.publish("in", p)
    sub = client.subscribe("in", "proc", start=tern.Start.EARLIEST)
    a, b = sub.next(5), sub.next(5)
    results = client.publish_atomic([("out", [b"A"])], acks=[a])
    assert results[0].ok
    b.ack()
    client.ping()
    with pytest.raises(tern.TernError) as e:
        client.publish_atomic([("out", [b"B"])], acks=[b])
    assert e.value.code == tern.ErrorCode.NotHeld
    assert client.topic_info("out").next_offset == 1
    assert client.topic_info("in").subscriptions[0].lag == 0
