"""Fixtures: a real tern-broker on a free loopback port with a data
directory of its own, and the C++ `tern` CLI for talking to it from the
other side. TERN_BROKER and TERN_CLI name the binaries (make python-test
sets them); else build/ in the checkout is used."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "client" / "python"))

BROKER = os.environ.get("TERN_BROKER", str(ROOT / "build" / "tern-broker"))
CLI = os.environ.get("TERN_CLI", str(ROOT / "build" / "tern"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One broker process, started (and stopped) by its PID only."""

    def __init__(self, data_dir, extra=()):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process = None
        self.start()

    def start(self):
        self.log = open(self.data_dir.parent / f"broker-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [BROKER, "--listen", self.address, "--data", str(self.data_dir),
             "--http", "off", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tern-broker exited with "
                                   f"{self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("tern-broker did not start within 20 s")

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)
        self.log.close()

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "data")
    yield b
    b.stop()


@pytest.fixture
def client(broker):
    import tern
    with tern.Client.connect(broker.address, timeout=10) as c:
        yield c


def cli(broker, *args, input=None, timeout=20):
    """Runs the C++ `tern` CLI against `broker`; returns the finished
    process (stdout as text)."""
    return subprocess.run([CLI, *args, "--server", broker.address],
                          input=input, capture_output=True, text=True,
                          timeout=timeout)


def receive(subscription, count, timeout=10.0, ack=True):
    """Up to `count` messages from `subscription`, waiting at most
    `timeout` seconds in all."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        m = subscription.next(timeout=left)
        if m is None:
            break
        if ack:
            m.ack()
        got.append(m)
    return got
