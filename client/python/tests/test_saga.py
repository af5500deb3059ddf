"""The order saga of examples/saga against a real broker: its three
services run as processes, orders go through them, and every test ends
with consistency.check() (and consistency.audit_topics(): at most one
message per order per topic, every message in its order's trace)."""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import tern

SAGA = pathlib.Path(__file__).resolve().parents[3] / "examples" / "saga"
sys.path.insert(0, str(SAGA))

import consistency  # noqa: E402
import driver  # noqa: E402
from driver import order  # noqa: E402


class Saga:
    """The three services against `broker`, in a namespace of their own,
    with their databases and logs in `data_dir`."""

    def __init__(self, broker, data_dir, payment_timeout=2.0,
                 late_delay=3.0):
        self.broker = broker
        self.data_dir = data_dir
        self.namespace = "t" + os.urandom(3).hex()
        self.flags = {
            "order_service": ["--payment-timeout", str(payment_timeout)],
            "payment_service": ["--late-delay", str(late_delay)],
            "inventory_service": [],
        }
        self.services = {}
        self.traces = {}  # order -> trace id

    def start(self, name, *extra):
        self.services[name] = driver.start_service(
            name, self.broker.address, self.namespace, self.data_dir,
            *self.flags[name], *extra)

    def start_all(self):
        for name in driver.SERVICES:
            self.start(name)
        driver.wait_ready(self.broker.address, self.namespace,
                          alive=self.alive)

    def restart(self, name, *extra):
        driver.stop_service(self.services[name])
        self.start(name, *extra)

    def stop_all(self):
        for process in self.services.values():
            driver.stop_service(process)

    def alive(self):
        for p in self.services.values():
            if p.poll() is not None:
                raise AssertionError(f"{p.name} exited with "
                                     f"{p.returncode}\n{self.logs()}")

    def logs(self):
        return "\n".join(p.log_path.read_text()[-3000:]
                         for p in self.services.values())

    def place(self, *orders, pause=0):
        self.traces.update(driver.place(self.broker.address, self.namespace,
                                        orders, pause=pause))

    def settle(self, timeout=20):
        """Waits (bounded) until every order is settled; fails unless the
        end state is consistent."""
        report = consistency.wait_settled(
            self.data_dir, list(self.traces), timeout, self.broker.address,
            self.namespace, self.alive)
        assert report.ok, (report.table(), report.problems, self.logs())
        return report

    def audit(self):
        """{topic: messages}; fails on a second message for one order in a
        topic, or a message outside its order's trace."""
        counts, problems = consistency.audit_topics(
            self.broker.address, self.namespace, self.traces)
        assert not problems, problems
        return counts

    def topic(self, name):
        return f"{self.namespace}.{name}"

    def read(self, client, name, count):
        return consistency.read_topic(client, self.topic(name), count, 10)

    def db(self, name, query):
        return consistency.read(self.data_dir, name, query)


@pytest.fixture
def saga(broker, tmp_path):
    s = Saga(broker, tmp_path / "saga")
    s.start_all()
    yield s
    s.stop_all()


def states(report):
    return {r.order: (r.state, r.reason) for r in report.rows}


def test_good_orders_complete(saga, client):
    saga.place(order(1, "widget", 2, 40), order(2, "gadget", 1, 25),
               order(3, "widget", 3, 60))
    report = saga.settle()
    assert {r.order: r.state for r in report.rows} == {
        "o-1": "COMPLETED", "o-2": "COMPLETED", "o-3": "COMPLETED"}
    assert report.totals["money kept"] == 125
    assert saga.db("inventory", "SELECT sku, available FROM stock"
                   " ORDER BY sku") == [("gadget", 9), ("gizmo", 1),
                                        ("widget", 5)]
    counts = saga.audit()
    for name in ("orders.placed", "payments.requested", "payments.completed",
                 "inventory.reserve", "inventory.reserved"):
        assert counts[name] == 3, name
    assert counts.get("payments.failed", 0) == 0
    assert counts.get("payments.refund", 0) == 0
    # Each step is a child span: the trace of the order, a parent id of
    # its own.
    [placed] = [m for m in saga.read(client, "orders.placed", 3)
                if json.loads(m.payload)["order"] == "o-1"]
    [asked] = [m for m in saga.read(client, "payments.requested", 3)
               if json.loads(m.payload)["order"] == "o-1"]
    trace, parent, _ = tern.trace.parse(placed.traceparent)
    assert tern.trace.parse(asked.traceparent)[0] == trace
    assert tern.trace.parse(asked.traceparent)[1] != parent
    assert report.row("o-1").trace_id == trace


def test_declined_payment_cancels(saga):
    saga.place(order(1, "widget", 1, 5000))
    report = saga.settle()
    assert states(report) == {
        "o-1": ("CANCELLED", "payment declined: amount over 1000")}
    assert not report.row("o-1").charged
    counts = saga.audit()
    assert counts["payments.failed"] == 1
    assert counts.get("inventory.reserve", 0) == 0


def test_out_of_stock_is_compensated_by_a_refund(saga):
    saga.place(order(1, "gizmo", 3, 90))  # 1 gizmo in stock
    report = saga.settle()
    assert states(report) == {"o-1": ("CANCELLED", "out of stock; refunded")}
    row = report.row("o-1")
    assert (row.charged, row.refunded, row.reserved) == (True, True, "")
    counts = saga.audit()
    assert (counts["inventory.failed"], counts["payments.refund"]) == (1, 1)
    assert saga.db("inventory", "SELECT available FROM stock"
                   " WHERE sku = 'gizmo'") == [(1,)]


def test_flaky_payment_completes_after_the_backoff(saga, client):
    saga.place(order(1, "gadget", 1, 25, "flaky"))
    report = saga.settle()
    row = report.row("o-1")
    assert row.state == "COMPLETED"
    # Two failed deliveries, each redelivered after the subscription's
    # backoff (0.2 s, then 0.5 s; the broker's default would be 0.1, 1).
    assert len(row.deliveries) == 3
    first, second, third = row.deliveries
    assert 0.18 <= second - first < 3, row.deliveries
    assert 0.45 <= third - second < 3, row.deliveries
    info = client.topic_info(saga.topic("payments.requested"))
    [sub] = info.subscriptions
    assert (sub.name, sub.retry_delays_ms, sub.max_deliveries) == (
        "payment-service", [200, 500, 1000], 4)
    assert saga.audit()["payments.completed"] == 1


def test_poison_payment_is_dead_lettered_and_timed_out(saga, client):
    start = time.monotonic()
    saga.place(order(1, "widget", 1, 20, "poison"))
    report = saga.settle()
    assert states(report) == {"o-1": ("CANCELLED", "payment timed out")}
    assert time.monotonic() - start >= 1.9  # cancelled by the timeout
    row = report.row("o-1")
    assert not row.charged
    assert len(row.deliveries) == 4  # max_deliveries, then dead-lettered
    [dead] = saga.read(client, "payments.requested.dlq", 1)
    assert json.loads(dead.payload)["order"] == "o-1"
    assert dead.header("tern-dlq-reason") == b"max deliveries reached"
    assert dead.header("tern-dlq-attempts") == b"4"
    assert dead.header("tern-dlq-subscription") == b"payment-service"
    assert tern.trace.trace_id(dead.traceparent) == saga.traces["o-1"]
    counts = saga.audit()
    assert counts["payments.requested.dlq"] == 1
    assert counts.get("payments.completed", 0) == 0
    assert counts.get("payments.failed", 0) == 0


def test_slow_payment_is_cancelled_by_the_timeout(saga):
    start = time.monotonic()
    saga.place(order(1, "widget", 1, 20, "slow"))
    report = saga.settle()
    assert states(report) == {"o-1": ("CANCELLED", "payment timed out")}
    assert time.monotonic() - start >= 1.9
    assert not report.row("o-1").charged
    counts = saga.audit()
    assert counts["orders.payment_timeout"] == 1
    assert counts.get("payments.completed", 0) == 0


def test_late_payment_is_refunded(saga):
    # Charged at once, confirmed after 3 s: the order timed out at 2 s.
    saga.place(order(1, "gadget", 1, 25, "late"))
    report = saga.settle()
    assert states(report) == {
        "o-1": ("CANCELLED", "payment timed out; late payment refunded")}
    row = report.row("o-1")
    assert (row.charged, row.refunded) == (True, True)
    counts = saga.audit()
    assert (counts["payments.completed"], counts["payments.refund"]) == (1, 1)
    assert counts.get("inventory.reserve", 0) == 0


@pytest.mark.parametrize("service, step, db, query, output", [
    ("order_service", "orders.placed", "order",
     "SELECT state FROM orders", "payments.requested"),
    ("payment_service", "payments.requested", "payment",
     "SELECT amount FROM charges", "payments.completed"),
    ("inventory_service", "inventory.reserve", "inventory",
     "SELECT qty FROM reservations", "inventory.reserved"),
])
def test_service_killed_between_commit_and_publish(
        broker, tmp_path, client, service, step, db, query, output):
    # A long payment timeout: the order must not time out meanwhile.
    saga = Saga(broker, tmp_path / "saga", payment_timeout=30)
    try:
        saga.start_all()
        saga.restart(service, "--crash-after-commit", step)
        saga.place(order(1, "widget", 2, 40))
        process = saga.services[service]
        process.wait(20)
        assert process.returncode == -signal.SIGKILL, saga.logs()
        # Its database change is committed, its output not published.
        assert len(saga.db(db, query)) == 1
        info = client.topic_info(saga.topic(output))
        assert info is None or info.next_offset == 0
        saga.start(service)  # the input comes again
        report = saga.settle()
        assert report.row("o-1").state == "COMPLETED"
        assert saga.audit()[output] == 1  # published once, not twice
    finally:
        saga.stop_all()


def test_broker_killed_mid_saga(broker, tmp_path):
    saga = Saga(broker, tmp_path / "saga", payment_timeout=3)
    kinds = [None, None, "flaky", None, "big", None, "gizmo"]
    orders = []
    for n in range(1, 31):
        kind = kinds[n % len(kinds)]
        if kind == "big":
            orders.append(order(n, "widget", 1, 2000))  # declined
        elif kind == "gizmo":
            orders.append(order(n, "gizmo", 1, 30))  # 1 in stock
        else:
            orders.append(order(n, ("widget", "gadget")[n % 2], 1, 10 + n,
                                kind))
    try:
        saga.start_all()
        placing = threading.Thread(
            target=lambda: saga.place(*orders, pause=0.03), daemon=True)
        placing.start()
        time.sleep(0.4)
        assert placing.is_alive()  # orders still coming, others in flight
        broker.stop(signal.SIGKILL)
        time.sleep(0.5)
        broker.start()  # same port and data directory
        placing.join(30)
        assert not placing.is_alive()
        assert len(saga.traces) == 30
        report = saga.settle(timeout=30)
        assert {r.state for r in report.rows} <= {"COMPLETED", "CANCELLED"}
        assert len(report.rows) == 30
        counts = saga.audit()  # exactly-once: no order twice in a topic
        assert counts["orders.placed"] == 30
        assert counts["payments.requested"] == 30
        # One charge per charged order, and one confirmation per charge.
        charges = saga.db("payment", "SELECT order_id FROM charges")
        assert len(charges) == counts["payments.completed"]
        assert len(charges) == report.totals["charged"] > 0
        assert report.totals["COMPLETED"] > 0
    finally:
        saga.stop_all()


def test_run_py_is_one_command(broker, tmp_path):
    run = subprocess.run(
        [sys.executable, str(SAGA / "run.py"), "--server", broker.address,
         "--data-dir", str(tmp_path / "run"), "--payment-timeout", "2",
         "--late-delay", "3"],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "consistent: every order settled" in run.stdout
    assert "note:" not in run.stdout  # every order ended as expected
    # The services were stopped, cleanly.
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", run.stdout)]
    assert len(pids) == 3
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert run.stdout.count("(exit 0)") == 3
    for name in driver.SERVICES:
        log = (tmp_path / "run" / f"{name}.log").read_text()
        assert "Traceback" not in log
