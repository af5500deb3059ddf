"""The examples run as the README says, against a real broker."""
import pathlib
import subprocess
import sys

import tern
from conftest import cli

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def example(broker, name, *args, timeout=30):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--server", broker.address,
         *args], capture_output=True, text=True, timeout=timeout)


def test_orders_reach_inventory(broker):
    run = example(broker, "order_service.py", "--count", "5")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("stored at offset") == 5
    run = example(broker, "inventory_service.py", "--count", "5")
    assert run.returncode == 0, run.stderr
    assert "order 5: 2 x sku-2 reserved, 95 left" in run.stdout
    # Everything was acked before the service stopped.
    with tern.Client.connect(broker.address) as c:
        [inventory] = c.topic_info("orders.created").subscriptions
        assert (inventory.name, inventory.lag) == ("inventory", 0)


def test_price_service_answers(broker):
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "price_service.py"), "--server",
         broker.address, "--count", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = example(broker, "price_service.py", "--ask", "sku-1")
        assert (run.returncode, run.stdout) == (0, "24.50\n"), run.stderr
        run = cli(broker, "request", "prices", "sku-9", "--timeout", "10s")
        assert run.returncode == 1
        assert "no price for sku-9" in run.stderr
        assert service.wait(20) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def test_bad_payments_are_dead_lettered_and_drained(broker):
    run = cli(broker, "pub", "payments", '{"amount": 5}', '{"oops": 1}')
    assert run.returncode == 0, run.stderr
    run = example(broker, "reject_bad.py", "--count", "2")
    assert run.returncode == 0, run.stderr
    assert "charged 5 (offset 0)" in run.stdout
    assert "rejected offset 1" in run.stdout
    run = example(broker, "drain_dead_letters.py", "--count", "1")
    assert run.returncode == 0, run.stderr
    assert ("dead letter b'{\"oops\": 1}' from payments offset 1: rejected "
            "after 1 deliveries") in run.stdout
