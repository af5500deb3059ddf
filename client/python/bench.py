"""Throughput of the Python client against a running broker.

    python3 client/python/bench.py --server 127.0.0.1:7411 --messages 200000

Three runs, each on a topic of its own: publishing in frames of --batch
messages (pipelined, confirms awaited at the end), publishing one message
per frame (pipelined too: one publish_async call per message), and
consuming what the first run stored with a durable subscription, acking
each message. Prints one line per run and, with --json, a JSON object.
"""
import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import tern  # noqa: E402


def publish(client, topic, messages, batch, payload):
    frame = [payload] * batch
    start = time.perf_counter()
    for _ in range(messages // batch):
        client.publish_async(topic, frame)
    client.flush(timeout=600)
    return time.perf_counter() - start


def consume(client, topic, messages):
    sub = client.subscribe(topic, "bench", start=tern.Start.EARLIEST,
                           prefetch=10000)
    start = time.perf_counter()
    for _ in range(messages):
        message = sub.next(timeout=30)
        if message is None:
            raise SystemExit("consume: a message did not come within 30 s")
        message.ack()
    client.ping()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="127.0.0.1:7411")
    parser.add_argument("--messages", type=int, default=200000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    payload = os.urandom(args.size)
    run = os.urandom(4).hex()
    results = {}
    with tern.Client.connect(args.server, client_name="tern-python-bench",
                             max_unconfirmed=50000) as client:
        n = args.messages - args.messages % args.batch
        results["publish_batched"] = n / publish(
            client, f"pybench.{run}.batched", n, args.batch, payload)
        ones = max(1, args.messages // 5)  # one per frame is slower
        results["publish_one_per_frame"] = ones / publish(
            client, f"pybench.{run}.single", ones, 1, payload)
        results["consume_ack"] = n / consume(
            client, f"pybench.{run}.batched", n)
    for name, rate in results.items():
        print(f"{name:24} {rate:12,.0f} msgs/s  ({args.size} B)")
    if args.json:
        print(json.dumps({"size": args.size, "batch": args.batch,
                          "msgs_per_s": results}))


if __name__ == "__main__":
    main()
