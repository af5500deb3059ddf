"""The saga's driver: places orders (each one a message on orders.placed
that starts a trace), and starts and stops the services as processes.
run.py and the tests use it; on its own it places the standard mix
against services already running:

    python3 examples/saga/driver.py --server 127.0.0.1:7411 --namespace saga
"""
import argparse
import collections
import json
import pathlib
import subprocess
import sys
import time

import saga  # first: it puts the tern package on the path
import tern

HERE = pathlib.Path(__file__).resolve().parent
SERVICES = ("order_service", "payment_service", "inventory_service")
# Each service's durable subscription name, and on how many topics.
SUBSCRIPTIONS = {"order-service": 6, "payment-service": 2,
                 "inventory-service": 1}


def order(n, sku, qty, amount, simulate=None):
    body = {"order": f"o-{n}", "sku": sku, "qty": qty, "amount": amount}
    if simulate:
        body["simulate"] = simulate
    return body


# One of each kind, with the state each should end in, for the services'
# defaults (--limit 1000, --stock widget=10,gadget=10,gizmo=1).
MIX = [
    (order(1, "widget", 2, 40), "COMPLETED"),
    (order(2, "gadget", 1, 25), "COMPLETED"),
    (order(3, "widget", 1, 5000), "CANCELLED"),  # over the payment limit
    (order(4, "gizmo", 3, 90), "CANCELLED"),  # out of stock: refunded
    (order(5, "gadget", 1, 25, "flaky"), "COMPLETED"),  # after 2 retries
    (order(6, "widget", 1, 20, "poison"), "CANCELLED"),  # dead-lettered
    (order(7, "widget", 1, 20, "slow"), "CANCELLED"),  # timed out
    (order(8, "gadget", 1, 25, "late"), "CANCELLED"),  # refunded late
    (order(9, "widget", 3, 60), "COMPLETED"),
]


def place(server, namespace, orders, timeout=30, pause=0):
    """Publishes `orders` to orders.placed, each in a trace of its own,
    `pause` seconds apart; returns {order: trace id}. A lost connection (a
    broker restart) is retried for up to `timeout` seconds in all, with the
    same message id: the broker stores an order once even if the first try
    was stored and only its confirmation was lost."""
    deadline = time.monotonic() + timeout
    traces = {}
    client = None
    try:
        for body in orders:
            traceparent = tern.trace.start()
            while True:
                try:
                    if client is None:
                        client = saga.connect(server, "saga-driver",
                                              deadline)
                    client.publish(saga.topic(namespace, "orders.placed"),
                                   json.dumps(body),
                                   id=f"order-{body['order']}",
                                   trace=traceparent)
                    break
                except tern.TernError as e:
                    if (e.code not in saga.CONNECTION_ERRORS
                            or time.monotonic() > deadline):
                        raise
                    if client is not None:
                        client.close()
                        client = None
                    time.sleep(0.2)
            traces[body["order"]] = tern.trace.trace_id(traceparent)
            time.sleep(pause)
    finally:
        if client is not None:
            client.close()
    return traces


def start_service(name, server, namespace, data_dir, *flags):
    """Starts examples/saga/<name>.py as a process with this Python; its
    output goes to data_dir/<name>.log (Popen.log_path)."""
    data_dir = pathlib.Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(HERE / f"{name}.py"), "--server", server,
             "--namespace", namespace, "--data-dir", str(data_dir), *flags],
            stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    process.name = name
    return process


def wait_ready(server, namespace, timeout=20, alive=None):
    """Waits until every service consumes all its subscriptions, so that
    the orders' timeouts do not run while a service is still starting.
    alive(): raises if a service died meanwhile."""
    deadline = time.monotonic() + timeout
    with saga.connect(server, "saga-driver", deadline) as client:
        while True:
            ready = collections.Counter(
                s.name for info in client.list_topics()
                if info.name.startswith(namespace + ".")
                for s in info.subscriptions if s.consumers > 0)
            if all(ready[name] >= n for name, n in SUBSCRIPTIONS.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"services not ready in {timeout} s: "
                                   f"{dict(ready)}")
            if alive is not None:
                alive()
            time.sleep(0.1)


def stop_service(process, timeout=10):
    """Stops one service by its PID: SIGTERM, then SIGKILL if it lingers.
    Returns its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def main():
    parser = argparse.ArgumentParser(
        description="place the standard mix of orders")
    parser.add_argument("--server", default=saga.DEFAULT_SERVER)
    parser.add_argument("--namespace", default="saga")
    args = parser.parse_args()
    for o, trace in place(args.server, args.namespace,
                          [body for body, _ in MIX]).items():
        print(f"placed {o} (trace {trace})")


if __name__ == "__main__":
    main()
