"""The whole order saga in one command, against a running broker:

    make run &                                   # the broker, 127.0.0.1:7411
    /usr/bin/python3 examples/saga/run.py --server 127.0.0.1:7411

Starts the three services as processes, places one order of each kind
(driver.MIX), waits until every order is settled (at most --timeout
seconds), prints a table and whether the end state is consistent, stops the
services and exits 0 only if it is. Every run uses topics of its own
(--namespace, fresh by default) and a data directory of its own.
"""
import argparse
import os
import sys
import tempfile

import consistency
import driver
import saga  # puts the tern package on the path
import tern


def main():
    parser = argparse.ArgumentParser(description="run the order saga")
    parser.add_argument("--server", default=saga.DEFAULT_SERVER,
                        help="broker address (default: $TERN_SERVER, else "
                             "127.0.0.1:7411)")
    parser.add_argument("--namespace", default="saga-" + os.urandom(3).hex(),
                        help="prefix of the topics (default: saga-<random>, "
                             "so that runs do not mix)")
    parser.add_argument("--data-dir",
                        help="the services' databases and logs (default: a "
                             "new temporary directory, kept)")
    parser.add_argument("--payment-timeout", type=float, default=3.0,
                        help="seconds an order waits for its payment")
    parser.add_argument("--late-delay", type=float, default=5.0,
                        help="seconds a 'late' payment's confirmation takes")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the orders to settle")
    args = parser.parse_args()
    try:
        tern.Client.connect(args.server, timeout=3).close()
    except tern.TernError as e:
        return f"no broker at {args.server} ({e}); start one: make run"
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tern-saga-")
    print(f"namespace {args.namespace}, data and logs in {data_dir}")

    flags = {"order_service": ["--payment-timeout",
                               str(args.payment_timeout)],
             "payment_service": ["--late-delay", str(args.late_delay)],
             "inventory_service": []}
    services = [driver.start_service(name, args.server, args.namespace,
                                     data_dir, *flags[name])
                for name in driver.SERVICES]
    print("started " + ", ".join(f"{p.name} (pid {p.pid})"
                                 for p in services))

    def alive():
        for p in services:
            if p.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.returncode}; "
                                   f"see {p.log_path}")

    try:
        driver.wait_ready(args.server, args.namespace, alive=alive)
        orders = [body for body, _ in driver.MIX]
        traces = driver.place(args.server, args.namespace, orders)
        print(f"placed {len(orders)} orders; waiting for them to settle")
        report = consistency.wait_settled(
            data_dir, list(traces), args.timeout, args.server,
            args.namespace, alive)
        counts, duplicates = consistency.audit_topics(
            args.server, args.namespace, traces)
    finally:
        # By PID (Popen), never by name: other runs may be going on.
        print("stopped " + ", ".join(
            f"{p.name} (exit {driver.stop_service(p)})" for p in services))

    expected = {body["order"]: state for body, state in driver.MIX}
    print()
    print(report.table())
    print()
    print("messages per topic: " + ", ".join(
        f"{name} {n}" for name, n in sorted(counts.items())))
    print("totals: " + ", ".join(f"{k} {v}"
                                 for k, v in report.totals.items()))
    surprises = [f"{r.order} ended {r.state}, expected {expected[r.order]}"
                 for r in report.rows if r.state != expected[r.order]]
    for line in surprises:
        print("note: " + line)  # possible (e.g. a slow machine), not wrong
    problems = report.problems + duplicates
    if problems:
        print("INCONSISTENT:")
        print("\n".join("  " + p for p in problems))
        return 1
    print("consistent: every order settled, money and stock add up, one "
          "message per order per topic, each order one trace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
