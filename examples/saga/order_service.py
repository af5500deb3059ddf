"""The order service: the saga's coordinator. It owns the orders (state
in data_dir/order.db) and reacts to every other service's answer.

    orders.placed          -> PENDING; payments.requested, and
                              orders.payment_timeout scheduled in
                              --payment-timeout seconds
    payments.completed     -> PAID; inventory.reserve
                              (already CANCELLED by the timeout:
                              payments.refund, the payment came too late)
    payments.failed        -> CANCELLED
    orders.payment_timeout -> still PENDING: CANCELLED; else ignored
    inventory.reserved     -> COMPLETED
    inventory.failed       -> CANCELLED; payments.refund (compensation)

    python3 examples/saga/order_service.py --server 127.0.0.1:7411
"""
import time

import saga  # first: it puts the tern package on the path
import tern
from saga import out

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id  TEXT PRIMARY KEY,
    sku       TEXT NOT NULL,
    qty       INTEGER NOT NULL,
    amount    INTEGER NOT NULL,
    simulate  TEXT,             -- what the payment service is to pretend
    state     TEXT NOT NULL,    -- PENDING, PAID, COMPLETED or CANCELLED
    reason    TEXT,             -- why it was cancelled
    refund_requested INTEGER NOT NULL DEFAULT 0,
    trace_id  TEXT,             -- the trace of the whole saga
    updated   REAL NOT NULL
);
"""


def main():
    parser = saga.arguments("the order service: runs the order saga")
    parser.add_argument("--payment-timeout", type=float, default=3.0,
                        help="seconds an order waits for its payment "
                             "before it is cancelled (default 3)")
    args = parser.parse_args()
    store = saga.Store(args.data_dir, "order", SCHEMA)

    def state_of(db, order):
        row = db.execute("SELECT state FROM orders WHERE order_id = ?",
                         (order,)).fetchone()
        return row[0] if row else None

    def set_state(db, order, state, reason=None, refund=False):
        db.execute("UPDATE orders SET state = ?, reason = ?, updated = ?,"
                   " refund_requested = refund_requested OR ?"
                   " WHERE order_id = ?",
                   (state, reason, time.time(), refund, order))
        saga.log("order-service", f"{order}: {state}"
                 + (f" ({reason})" if reason else ""))

    def placed(body, message):
        order = body["order"]

        def decide(db):
            db.execute(
                "INSERT OR IGNORE INTO orders (order_id, sku, qty, amount,"
                " simulate, state, trace_id, updated)"
                " VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?)",
                (order, body["sku"], body["qty"], body["amount"],
                 body.get("simulate"),
                 tern.trace.trace_id(message.traceparent), time.time()))
            # Both in one commit with the ack of orders.placed: an order
            # never waits for a payment nobody asked for, nor goes without
            # its timeout. The timeout is a scheduled message: the broker
            # keeps it (across restarts) and delivers it when due, so this
            # service keeps no timers.
            return [out("payments.requested",
                        {"order": order, "amount": body["amount"],
                         "simulate": body.get("simulate")}),
                    out("orders.payment_timeout", {"order": order},
                        delay=args.payment_timeout, id=f"timeout-{order}")]
        return store.once(order, "orders.placed", decide)

    def payment_completed(body, message):
        order = body["order"]

        def decide(db):
            state = state_of(db, order)
            if state == "PENDING":
                set_state(db, order, "PAID")
                row = db.execute("SELECT sku, qty FROM orders"
                                 " WHERE order_id = ?", (order,)).fetchone()
                return [out("inventory.reserve",
                            {"order": order, "sku": row[0], "qty": row[1]})]
            if state == "CANCELLED":
                # The timeout gave up on this payment, yet it went through:
                # give the money back.
                set_state(db, order, "CANCELLED",
                          "payment timed out; late payment refunded",
                          refund=True)
                return [out("payments.refund",
                            {"order": order, "reason": "order cancelled"})]
            return []
        return store.once(order, "payments.completed", decide)

    def transition(step, was, to, reason=lambda body: None):
        """The handler of `step` that moves its order from `was` to `to`
        (why: reason(body)) and publishes nothing. An order in another
        state is left as it is: the step came too late to matter."""
        def handle(body, message):
            order = body["order"]

            def decide(db):
                if state_of(db, order) == was:
                    set_state(db, order, to, reason(body))
                return []
            return store.once(order, step, decide)
        return handle

    payment_failed = transition(
        "payments.failed", "PENDING", "CANCELLED",
        lambda body: "payment declined: " + body.get("reason", "?"))
    # Past PENDING the payment has come: the timeout is moot.
    payment_timeout = transition("orders.payment_timeout", "PENDING",
                                 "CANCELLED", lambda body: "payment timed out")
    reserved = transition("inventory.reserved", "PAID", "COMPLETED")

    def out_of_stock(body, message):
        order = body["order"]

        def decide(db):
            if state_of(db, order) != "PAID":
                return []
            # Compensation: the payment succeeded, the saga cannot finish,
            # so the payment is undone.
            set_state(db, order, "CANCELLED", "out of stock; refunded",
                      refund=True)
            return [out("payments.refund",
                        {"order": order, "reason": "out of stock"})]
        return store.once(order, "inventory.failed", decide)

    # A handler fails only on a bug or a full disk: try again soon, then
    # less often, and after the default max_deliveries (16) dead-letter.
    retry = {"retry_delays": [0.2, 1, 5]}
    saga.serve(args, "order-service", [
        saga.Handler("orders.placed", placed, **retry),
        saga.Handler("payments.completed", payment_completed, **retry),
        saga.Handler("payments.failed", payment_failed, **retry),
        saga.Handler("orders.payment_timeout", payment_timeout, **retry),
        saga.Handler("inventory.reserved", reserved, **retry),
        saga.Handler("inventory.failed", out_of_stock, **retry),
    ])


if __name__ == "__main__":
    main()
