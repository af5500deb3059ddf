"""Consuming: acks, redelivery, nacks, dead letters, start positions."""
import time

import pytest

import tern
from conftest import receive


def test_unacked_messages_go_to_the_next_consumer(broker, client):
    for i in range(5):
        client.publish("jobs", f"j{i}")
    with tern.Client.connect(broker.address) as worker:
        sub = worker.subscribe("jobs", "workers", start=tern.Start.EARLIEST)
        got = receive(sub, 5, ack=False)
        assert len(got) == 5
        got[0].ack()
        got[1].ack()
        worker.ping()
    # The worker went away holding three: they come again, attempt 2.
    sub = client.subscribe("jobs", "workers")
    again = receive(sub, 3)
    assert [m.offset for m in again] == [2, 3, 4]
    assert [m.attempt for m in again] == [2, 2, 2]
    assert sub.next(timeout=0.3) is None


def test_acks_are_applied_once_a_ping_returns(client):
    for i in range(10):
        client.publish("audit", f"a{i}")
    sub = client.subscribe("audit", "auditors", start=tern.Start.EARLIEST)
    receive(sub, 10)
    client.ping()
    [info] = client.topic_info("audit").subscriptions
    assert (info.name, info.lag, info.pending) == ("auditors", 0, 0)


def test_ack_timeout_redelivers(client):
    client.publish("slow", "work")
    sub = client.subscribe("slow", "w", start=tern.Start.EARLIEST,
                           ack_timeout=0.3)
    first = sub.next(5)
    assert first.attempt == 1
    second = sub.next(5)  # not acked in time
    assert (second.offset, second.attempt) == (first.offset, 2)
    second.ack()


def test_nack_with_delay(client):
    client.publish("retry", "once more")
    sub = client.subscribe("retry", "w", start=tern.Start.EARLIEST)
    m = sub.next(5)
    start = time.monotonic()
    m.nack(delay=0.5)
    again = sub.next(5)
    assert time.monotonic() - start >= 0.45
    assert again.attempt == 2
    again.nack()  # no delay: at once
    third = sub.next(2)
    assert third.attempt == 3
    third.ack()


def test_reject_goes_to_the_dead_letter_topic(client):
    client.publish("orders", "good")
    client.publish("orders", "bad")
    sub = client.subscribe("orders", "billing", start=tern.Start.EARLIEST)
    good, bad = receive(sub, 2, ack=False)
    good.ack()
    bad.reject()
    dlq = client.subscribe("orders.dlq", "drain", start=tern.Start.EARLIEST)
    [dead] = receive(dlq, 1)
    assert dead.payload == b"bad"
    assert dead.header("tern-dlq-reason") == b"rejected"
    assert dead.header("tern-dlq-topic") == b"orders"
    assert dead.header("tern-dlq-subscription") == b"billing"
    assert dead.header("tern-dlq-offset") == b"1"
    assert dead.header("tern-dlq-attempts") == b"1"


def test_max_deliveries_dead_letters(client):
    client.publish("poison", "boom")
    sub = client.subscribe("poison", "w", start=tern.Start.EARLIEST,
                           max_deliveries=2, dead_letter_topic="graveyard")
    for attempt in (1, 2):
        m = sub.next(5)
        assert m.attempt == attempt
        m.nack()
    assert sub.next(0.3) is None
    dead = client.subscribe("graveyard", start=tern.Start.EARLIEST).next(5)
    assert dead.header("tern-dlq-reason") == b"max deliveries reached"
    assert dead.header("tern-dlq-attempts") == b"2"


def test_start_positions(client):
    for i in range(5):
        client.publish("history", f"h{i}")
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    for i in range(5, 8):
        client.publish("history", f"h{i}")

    def first(**options):
        sub = client.subscribe("history", **options)
        m = sub.next(2)
        sub.close()
        return m.offset if m else None

    assert first(start=tern.Start.EARLIEST) == 0
    assert first(start=tern.Start.OFFSET, start_offset=3) == 3
    assert first(start_time=middle) == 5
    latest = client.subscribe("history")  # only what comes from now on
    assert latest.next(0.3) is None
    client.publish("history", "h8")
    assert latest.next(5).payload == b"h8"


def test_wildcards_and_reset(client):
    sub = client.subscribe("shop.*.paid")
    client.publish("shop.eu.paid", "1")
    client.publish("shop.eu.created", "no")
    client.publish("shop.us.paid", "2")
    got = receive(sub, 2)
    assert sorted((m.topic, m.payload) for m in got) == [
        ("shop.eu.paid", b"1"), ("shop.us.paid", b"2")]
    assert sub.next(0.3) is None

    durable = client.subscribe("shop.eu.paid", "again",
                               start=tern.Start.EARLIEST)
    receive(durable, 1)
    client.ping()
    assert client.reset_subscription("shop.eu.paid", "again") == 0
    assert durable.next(5).attempt >= 1


def test_closed_subscription_stops_iterating(client):
    sub = client.subscribe("x")
    sub.close()
    assert list(sub) == []


def test_deleted_topic_ends_its_consumer(client):
    client.publish("doomed", "x")
    sub = client.subscribe("doomed", "w", start=tern.Start.EARLIEST)
    receive(sub, 1)
    client.delete_topic("doomed")
    with pytest.raises(tern.TernError) as e:
        sub.next(5)
    assert e.value.code == tern.ErrorCode.Deleted


def test_retry_delays(client):
    client.publish("flaky", "x")
    sub = client.subscribe("flaky", "w", start=tern.Start.EARLIEST,
                           retry_delays=[0.3, 0.6])
    [info] = client.topic_info("flaky").subscriptions
    assert info.retry_delays_ms == [300, 600]
    m = sub.next(5)
    start = time.monotonic()
    m.nack()  # no delay of its own: the subscription's backoff
    again = sub.next(5)
    assert time.monotonic() - start >= 0.28
    assert again.attempt == 2
    again.ack()
