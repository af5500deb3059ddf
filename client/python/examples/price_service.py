"""The price service: answers price requests (request/reply).

    python3 client/python/examples/price_service.py &
    python3 client/python/examples/price_service.py --ask sku-1
    build/tern request prices sku-2          # the C++ CLI asks too
"""
from _common import arguments

import tern

PRICES = {"sku-0": "9.90", "sku-1": "24.50", "sku-2": "3.20"}


def price(message):
    sku = message.text
    if sku not in PRICES:
        raise KeyError("no price for " + sku)  # the requester gets this
    return PRICES[sku]


def main():
    parser = arguments("answer requests on the prices topic")
    parser.add_argument("--ask", metavar="SKU",
                        help="send one request instead and print the reply")
    args = parser.parse_args()
    with tern.Client.connect(args.server, client_name="prices") as c:
        if args.ask:
            print(c.request("prices", args.ask, timeout=5).text)
            return
        responder = c.respond("prices", price)
        answered = 0
        while args.count is None or answered < args.count:
            if responder.serve_one(timeout=1):
                answered += 1
        responder.close()


if __name__ == "__main__":
    main()
