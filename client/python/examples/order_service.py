"""The order service: publishes an orders.created event per new order.

    python3 client/python/examples/order_service.py --count 10
"""
import json
import time

from _common import arguments

import tern


def main():
    args = arguments("publish orders.created events", count=10).parse_args()
    with tern.Client.connect(args.server, client_name="order-service") as c:
        for n in range(1, args.count + 1):
            order = {"order": n, "sku": "sku-%d" % (n % 3), "quantity": n % 4 + 1}
            # The id makes a retry after a lost connection safe: the broker
            # stores an order id once.
            offset = c.publish_message("orders.created", tern.OutgoingMessage(
                payload=json.dumps(order).encode(), id="order-%d" % n,
                key=order["sku"].encode())).offset
            print("order %d stored at offset %d" % (n, offset), flush=True)
            time.sleep(0.05)


if __name__ == "__main__":
    main()
