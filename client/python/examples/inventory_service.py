"""The inventory service: reserves stock for each order, with a durable
subscription: orders published while it is down wait for it, and an order
it was handling when it crashed comes again.

    python3 client/python/examples/inventory_service.py --count 10
"""
import json

from _common import arguments

import tern


def main():
    args = arguments("reserve stock for orders.created").parse_args()
    stock = {"sku-0": 100, "sku-1": 100, "sku-2": 100}
    with tern.Client.connect(args.server, client_name="inventory") as c:
        orders = c.subscribe("orders.created", "inventory",
                             start=tern.Start.EARLIEST)
        for handled, message in enumerate(orders, 1):
            order = json.loads(message.payload)
            stock[order["sku"]] -= order["quantity"]
            print("order %d: %d x %s reserved, %d left" % (
                order["order"], order["quantity"], order["sku"],
                stock[order["sku"]]), flush=True)
            message.ack()  # done: never delivered again
            if handled == args.count:
                break
        c.ping()  # the acks are applied before the connection closes


if __name__ == "__main__":
    main()
