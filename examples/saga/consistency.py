"""Is the saga's end state consistent? Reads the three services' databases
(and, with audit_topics, the broker's topics); run.py and the tests use it.

Per order:
  COMPLETED <=> charged, not refunded, and stock reserved
  CANCELLED  => not charged or refunded, and no stock reserved
  nothing left PENDING or PAID
Per SKU: stock never negative, initial = available + reserved.
Totals: the money kept is what the COMPLETED orders cost.

    python3 examples/saga/consistency.py --data-dir DIR
"""
import argparse
import collections
import dataclasses
import json
import pathlib
import sqlite3
import time

import saga  # first: it puts the tern package on the path
import tern


@dataclasses.dataclass
class Row:
    order: str
    simulate: str
    state: str
    reason: str
    amount: int
    charged: bool
    refunded: bool
    reserved: str  # "2 widget", or "" if nothing is reserved
    deliveries: list  # times the payment request came, in order
    trace_id: str


@dataclasses.dataclass
class Report:
    rows: list
    problems: list
    totals: dict

    @property
    def ok(self):
        return not self.problems

    @property
    def terminal(self):
        return all(r.state in saga.TERMINAL for r in self.rows)

    def row(self, order):
        return next(r for r in self.rows if r.order == order)

    def table(self):
        lines = [f"{'order':<6} {'simulate':<8} {'state':<9} {'charged':>7}"
                 f" {'refunded':<8} {'reserved':<9} {'tries':>5}  reason"]
        for r in self.rows:
            lines.append(
                f"{r.order:<6} {r.simulate or '-':<8} {r.state:<9} "
                f"{r.amount if r.charged else '-':>7} "
                f"{'yes' if r.refunded else '-':<8} {r.reserved or '-':<9} "
                f"{len(r.deliveries):>5}  {r.reason or ''}".rstrip())
        return "\n".join(lines)


def read(data_dir, name, query):
    """The rows of `query` in a service's database; none if the service
    has not made it (yet)."""
    path = pathlib.Path(data_dir) / f"{name}.db"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path), timeout=10)
    try:
        return db.execute(query).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):  # the service is just starting
            return []
        raise
    finally:
        db.close()


def check(data_dir, placed=()):
    """The Report of what the databases in `data_dir` hold now. `placed`:
    the ids of the orders placed, so that one never recorded counts too."""
    orders = {o: (sku, qty, amount, simulate, state, reason, trace)
              for o, sku, qty, amount, simulate, state, reason, trace
              in read(data_dir, "order",
                      "SELECT order_id, sku, qty, amount, simulate, state,"
                      " reason, trace_id FROM orders")}
    charges = {o: (amount, bool(refunded)) for o, amount, refunded in
               read(data_dir, "payment", "SELECT order_id, amount, refunded"
                    " FROM charges")}
    deliveries = collections.defaultdict(list)
    for o, at in read(data_dir, "payment", "SELECT order_id, at FROM"
                      " deliveries ORDER BY rowid"):
        deliveries[o].append(at)
    reservations = {o: (sku, qty) for o, sku, qty in read(
        data_dir, "inventory", "SELECT order_id, sku, qty FROM reservations")}
    stock = read(data_dir, "inventory",
                 "SELECT sku, initial, available FROM stock")

    problems = [f"{o}: placed, never recorded by the order service"
                for o in placed if o not in orders]
    rows = []
    for o, (sku, qty, amount, simulate, state, reason, trace) in sorted(
            orders.items(), key=lambda item: order_key(item[0])):
        charged = o in charges
        refunded = charged and charges[o][1]
        reserved = o in reservations
        if charged and charges[o][0] != amount:
            problems.append(f"{o}: charged {charges[o][0]}, costs {amount}")
        if state == "COMPLETED":
            if not charged or refunded:
                problems.append(f"{o}: COMPLETED but not paid for")
            if not reserved:
                problems.append(f"{o}: COMPLETED without stock reserved")
        elif state == "CANCELLED":
            if charged and not refunded:
                problems.append(f"{o}: CANCELLED but charged, no refund")
            if reserved:
                problems.append(f"{o}: CANCELLED but stock reserved")
        else:
            problems.append(f"{o}: still {state}")
        rows.append(Row(o, simulate, state, reason, amount, charged,
                        refunded,
                        "%d %s" % reservations[o][::-1] if reserved else "",
                        deliveries.get(o, []), trace))
    problems += [f"{o}: charged, but there is no such order"
                 for o in charges if o not in orders]
    problems += [f"{o}: stock reserved, but there is no such order"
                 for o in reservations if o not in orders]

    # Totals: every unit of stock and every unit of money accounted for.
    reserved_by_sku = collections.Counter()
    for sku, qty in reservations.values():
        reserved_by_sku[sku] += qty
    for sku, initial, available in stock:
        if available < 0:
            problems.append(f"stock of {sku} is negative: {available}")
        if initial != available + reserved_by_sku[sku]:
            problems.append(f"stock of {sku}: {initial} at first, now "
                            f"{available} + {reserved_by_sku[sku]} reserved")
    kept = sum(a for a, refunded in charges.values() if not refunded)
    sold = sum(v[2] for v in orders.values() if v[4] == "COMPLETED")
    if kept != sold:
        problems.append(f"money kept {kept} != completed orders' {sold}")
    states = collections.Counter(v[4] for v in orders.values())
    totals = {"orders": len(orders), **states, "charged": len(charges),
              "refunded": sum(r for _, r in charges.values()),
              "money kept": kept,
              "units reserved": sum(reserved_by_sku.values())}
    return Report(rows, problems, totals)


def order_key(order):
    """o-2 before o-10."""
    head, _, number = order.rpartition("-")
    return (head, int(number)) if number.isdigit() else (order, 0)


def wait_settled(data_dir, placed, timeout, server=None, namespace=None,
                 alive=None):
    """Polls check() until every order is terminal and the state is
    consistent, or `timeout` seconds passed; returns the last Report.
    With `server` and `namespace` it also waits until the broker has no
    work left for the services (pending_work): a late payment's refund may
    still be on its way after its order was cancelled, and a retried
    payment may still come after a timeout cancelled its order. alive():
    raises if a service died meanwhile."""
    deadline = time.monotonic() + timeout
    client = None
    try:
        while True:
            report = check(data_dir, placed)
            if report.ok and server is not None:
                if client is None:
                    client = tern.Client.connect(server,
                                                 client_name="saga-check")
                settled = pending_work(client, namespace) == 0
            else:
                settled = report.ok
            if settled or time.monotonic() > deadline:
                return report
            if alive is not None:
                alive()
            time.sleep(0.2)
    finally:
        if client is not None:
            client.close()


def pending_work(client, namespace):
    """Messages of the namespace that a service has still to handle: not
    acked by its durable subscription yet, or scheduled. A scheduled
    payment timeout does not count: one is due for every order, also long
    after the order completed, and it then changes nothing."""
    work = 0
    for info in client.list_topics():
        if info.name.startswith(namespace + "."):
            work += sum(s.lag for s in info.subscriptions if s.name)
            if not info.name.endswith(".orders.payment_timeout"):
                work += info.scheduled
    return work


def audit_topics(server, namespace, trace_ids, timeout=10):
    """Reads back every message of the namespace's topics. Returns
    ({topic: messages}, problems): a problem is a topic with more than one
    message for one order (an input's output stored twice), or a message
    outside its order's trace. `trace_ids`: {order: trace id}."""
    counts, problems = {}, []
    prefix = namespace + "."
    with tern.Client.connect(server, client_name="saga-audit") as client:
        for info in client.list_topics():
            if not info.name.startswith(prefix):
                continue
            name = info.name[len(prefix):]
            count = info.next_offset - info.first_offset
            counts[name] = count
            per_order = collections.Counter()
            for m in read_topic(client, info.name, count, timeout):
                order = json.loads(m.payload).get("order")
                per_order[order] += 1
                trace = tern.trace.trace_id(m.traceparent)
                if trace != trace_ids.get(order):
                    problems.append(f"{name}: message for {order} in trace "
                                    f"{trace}, not its order's")
            problems += [f"{name}: {n} messages for {order}"
                         for order, n in per_order.items() if n > 1]
    return counts, problems


def read_topic(client, name, count, timeout):
    """The first `count` messages of topic `name`, with an ephemeral
    subscription (it leaves no trace); at most `timeout` seconds."""
    got = []
    deadline = time.monotonic() + timeout
    with client.subscribe(name, start=tern.Start.EARLIEST) as sub:
        while len(got) < count:
            m = sub.next(timeout=max(0.0, deadline - time.monotonic()))
            if m is None:
                raise TimeoutError(f"{name}: {len(got)} of {count} "
                                   "messages read")
            got.append(m)
    return got


def main():
    parser = argparse.ArgumentParser(
        description="check the end state of a saga run")
    parser.add_argument("--data-dir", default="saga-data")
    args = parser.parse_args()
    report = check(args.data_dir)
    print(report.table())
    print("\n".join(report.problems) or "consistent")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
