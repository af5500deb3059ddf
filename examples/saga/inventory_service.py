"""The inventory service: reserves stock for paid orders (stock and
reservations in data_dir/inventory.db).

    inventory.reserve -> enough stock: reserved; inventory.reserved
                         else: inventory.failed

    python3 examples/saga/inventory_service.py --server 127.0.0.1:7411 \\
        --stock widget=10,gadget=10,gizmo=1
"""
import argparse

import saga  # first: it puts the tern package on the path
from saga import out

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku       TEXT PRIMARY KEY,
    initial   INTEGER NOT NULL,
    available INTEGER NOT NULL CHECK (available >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id  TEXT PRIMARY KEY, -- one reservation per order, ever
    sku       TEXT NOT NULL,
    qty       INTEGER NOT NULL
);
"""

DEFAULT_STOCK = "widget=10,gadget=10,gizmo=1"


def stock_levels(text):
    """'widget=10,gizmo=1' as {'widget': 10, 'gizmo': 1}."""
    try:
        return {sku.strip(): int(n) for sku, n in
                (item.split("=") for item in text.split(",") if item)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"want SKU=N,SKU=N, not {text!r}")


def main():
    parser = saga.arguments("the inventory service: reserves stock")
    parser.add_argument("--stock", type=stock_levels,
                        default=stock_levels(DEFAULT_STOCK),
                        help="initial stock, SKU=N,... (default "
                             f"{DEFAULT_STOCK}); a restart keeps what is "
                             "left")
    args = parser.parse_args()
    store = saga.Store(args.data_dir, "inventory", SCHEMA)
    with store.transaction() as db:
        db.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?, ?)",
                       [(sku, n, n) for sku, n in args.stock.items()])

    def reserve(body, message):
        order, sku, qty = body["order"], body["sku"], body["qty"]

        def decide(db):
            row = db.execute("SELECT available FROM stock WHERE sku = ?",
                             (sku,)).fetchone()
            available = row[0] if row else 0
            if available < qty:
                return [out("inventory.failed",
                            {"order": order, "sku": sku, "qty": qty,
                             "available": available})]
            db.execute("UPDATE stock SET available = available - ?"
                       " WHERE sku = ?", (qty, sku))
            db.execute("INSERT INTO reservations VALUES (?, ?, ?)",
                       (order, sku, qty))
            return [out("inventory.reserved",
                        {"order": order, "sku": sku, "qty": qty})]
        return store.once(order, "inventory.reserve", decide)

    saga.serve(args, "inventory-service", [
        saga.Handler("inventory.reserve", reserve, retry_delays=[0.2, 1, 5]),
    ])


if __name__ == "__main__":
    main()
