"""The connection itself: TLS, and heartbeats noticing a frozen broker."""
import asyncio
import signal
import subprocess
import time

import pytest

import tern
import tern.aio
from conftest import Broker


def openssl(*args):
    subprocess.run(["/usr/bin/openssl", *args], check=True,
                   capture_output=True, timeout=30)


@pytest.fixture
def tls_broker(tmp_path):
    """A broker speaking only TLS, its certificate for 127.0.0.1 signed by
    a CA of the test's own (ca.crt)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(tmp_path / "ca.key"),
            "-out", str(tmp_path / "ca.crt"), "-days", "2", "-subj", "/CN=ca")
    openssl("req", *ec, "-keyout", str(tmp_path / "broker.key"), "-out",
            str(tmp_path / "broker.csr"), "-subj", "/CN=broker")
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(tmp_path / "broker.csr"), "-CA",
            str(tmp_path / "ca.crt"), "-CAkey", str(tmp_path / "ca.key"),
            "-CAcreateserial", "-out", str(tmp_path / "broker.crt"), "-days",
            "2", "-extfile", str(tmp_path / "ext"))
    b = Broker(tmp_path / "data", ["--tls-cert", str(tmp_path / "broker.crt"),
                                   "--tls-key", str(tmp_path / "broker.key")])
    b.ca_file = str(tmp_path / "ca.crt")
    yield b
    b.stop()


def test_tls(tls_broker):
    with tern.Client.connect(tls_broker.address,
                             ca_file=tls_broker.ca_file) as c:
        c.publish("secure", "over tls")
        m = c.subscribe("secure", start=tern.Start.EARLIEST).next(5)
        assert m.payload == b"over tls"

    async def aio():
        async with await tern.aio.Client.connect(
                tls_broker.address, ca_file=tls_broker.ca_file) as c:
            return await c.publish("secure", "again")

    assert asyncio.run(aio()) == 1
    # A certificate the client does not trust is refused at connect().
    with pytest.raises(tern.TernError) as e:
        tern.Client.connect(tls_broker.address, tls=True, timeout=5)
    assert e.value.code == tern.ErrorCode.ConnectFailed
    assert "certificate" in str(e.value)
    # Plain TCP to a TLS broker: closed without an answer.
    with pytest.raises(tern.TernError) as e:
        tern.Client.connect(tls_broker.address, timeout=5)
    assert e.value.code in (tern.ErrorCode.ConnectFailed,
                            tern.ErrorCode.ConnectionLost)


def test_heartbeats_keep_a_quiet_connection_and_notice_a_frozen_broker(
        broker):
    c = tern.Client.connect(broker.address, heartbeat=0.2)
    sub = c.subscribe("quiet")
    time.sleep(1.0)  # five intervals with nothing to say: pings kept it
    assert c.publish("quiet", "still here") == 0
    assert sub.next(5).payload == b"still here"
    broker.process.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(tern.TernError) as e:
            sub.next(10)
        assert e.value.code == tern.ErrorCode.ConnectionLost
        assert time.monotonic() - start < 2
    finally:
        broker.process.send_signal(signal.SIGCONT)
        c.close()
