"""The payment service: charges orders and refunds them (its ledger is
data_dir/payment.db).

    payments.requested -> charge; payments.completed
                          (amount over --limit: payments.failed)
    payments.refund    -> the charge is marked refunded (compensation)

A request's "simulate" field makes the bank misbehave, to show what the
broker does about it:

    flaky   fails its first 2 deliveries (a nack: the subscription's
            backoff spaces the redeliveries), then is charged
    poison  always fails: after --max-deliveries the broker moves it to
            payments.requested.dlq, and the order's timeout cancels it
    slow    the bank never answers: nothing is charged or published, and
            the order's timeout cancels it
    late    charged, but the bank's confirmation comes --late-delay seconds
            later (a scheduled payments.completed): after the order's
            timeout, so the order service asks for a refund

    python3 examples/saga/payment_service.py --server 127.0.0.1:7411
"""
import time

import saga  # first: it puts the tern package on the path
from saga import out

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    order_id  TEXT PRIMARY KEY, -- one charge per order, ever
    amount    INTEGER NOT NULL,
    refunded  INTEGER NOT NULL DEFAULT 0,
    charged   REAL NOT NULL,
    refunded_at REAL
);
-- Every delivery of a payment request, failed ones too: when it came.
CREATE TABLE IF NOT EXISTS deliveries (
    order_id  TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    at        REAL NOT NULL
);
"""


class BankUnavailable(Exception):
    pass


def main():
    parser = saga.arguments("the payment service: charges and refunds")
    parser.add_argument("--limit", type=int, default=1000,
                        help="largest amount charged; above, the payment "
                             "fails (default 1000)")
    parser.add_argument("--max-deliveries", type=int, default=4,
                        help="deliveries of a payment request before it is "
                             "dead-lettered (default 4)")
    parser.add_argument("--late-delay", type=float, default=5.0,
                        help="seconds a 'late' payment's confirmation takes "
                             "(default 5)")
    args = parser.parse_args()
    store = saga.Store(args.data_dir, "payment", SCHEMA)

    def requested(body, message):
        order, simulate = body["order"], body.get("simulate")
        with store.transaction() as db:
            db.execute("INSERT INTO deliveries VALUES (?, ?, ?)",
                       (order, message.attempt, time.time()))
        # These fail before anything is decided: the delivery counts as
        # failed, and the broker delivers it again after the backoff.
        if simulate == "poison":
            raise ValueError("the bank cannot read this request")
        if simulate == "flaky" and message.attempt <= 2:
            raise BankUnavailable("bank unavailable, try again")

        def decide(db):
            if simulate == "slow":
                return []  # handed to a bank that never answers
            if body["amount"] > args.limit:
                return [out("payments.failed",
                            {"order": order,
                             "reason": f"amount over {args.limit}"})]
            # A plain INSERT: a second charge of an order would fail loudly
            # (primary key), not go unnoticed. Store.once never tries one.
            db.execute("INSERT INTO charges (order_id, amount, charged)"
                       " VALUES (?, ?, ?)",
                       (order, body["amount"], time.time()))
            done = out("payments.completed",
                       {"order": order, "amount": body["amount"]})
            if simulate == "late":
                # A scheduled message, published (and this request acked)
                # now, delivered late: as a slow bank would confirm.
                done["delay"] = args.late_delay
            return [done]
        return store.once(order, "payments.requested", decide)

    def refund(body, message):
        order = body["order"]

        def decide(db):
            db.execute("UPDATE charges SET refunded = 1, refunded_at = ?"
                       " WHERE order_id = ? AND refunded = 0",
                       (time.time(), order))
            return []
        return store.once(order, "payments.refund", decide)

    saga.serve(args, "payment-service", [
        # The backoff: after failed delivery n, wait entry n-1 seconds (the
        # last repeating). After max_deliveries the broker dead-letters the
        # request to payments.requested.dlq (the default dead-letter topic
        # of the subscription, <topic>.dlq).
        saga.Handler("payments.requested", requested,
                     retry_delays=[0.2, 0.5, 1],
                     max_deliveries=args.max_deliveries),
        saga.Handler("payments.refund", refund, retry_delays=[0.2, 1, 5]),
    ])


if __name__ == "__main__":
    main()
