"""A consumer that rejects what it cannot handle: a payment without an
amount goes to the dead-letter topic payments.dlq (with the tern-dlq-*
headers saying where it came from and why), the rest is acked.

    build/tern pub payments '{"amount": 5}' '{"oops": 1}'
    python3 client/python/examples/reject_bad.py --count 2
"""
import json

from _common import arguments

import tern


def main():
    args = arguments("consume payments, rejecting bad ones").parse_args()
    with tern.Client.connect(args.server, client_name="payments") as c:
        payments = c.subscribe("payments", "charger",
                               start=tern.Start.EARLIEST)
        for seen, message in enumerate(payments, 1):
            try:
                amount = json.loads(message.payload)["amount"]
                print("charged %s (offset %d)" % (amount, message.offset),
                      flush=True)
                message.ack()
            except (ValueError, KeyError):
                print("rejected offset %d" % message.offset, flush=True)
                message.reject()
            if seen == args.count:
                break
        c.ping()


if __name__ == "__main__":
    main()
