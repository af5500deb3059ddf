"""Drains payments.dlq: shows each dead letter with where it came from and
why, then acks it.

    python3 client/python/examples/drain_dead_letters.py --count 1
"""
from _common import arguments

import tern


def main():
    args = arguments("show and clear the dead letters of payments").parse_args()
    with tern.Client.connect(args.server, client_name="dlq-drain") as c:
        dead = c.subscribe("payments.dlq", "drain", start=tern.Start.EARLIEST)
        for seen, message in enumerate(dead, 1):
            origin = {name: value.decode() for name, value in message.headers
                      if name.startswith("tern-dlq-")}
            print("dead letter %r from %s offset %s: %s after %s deliveries"
                  % (message.payload, origin["tern-dlq-topic"],
                     origin["tern-dlq-offset"], origin["tern-dlq-reason"],
                     origin["tern-dlq-attempts"]), flush=True)
            message.ack()
            if seen == args.count:
                break
        c.ping()


if __name__ == "__main__":
    main()
