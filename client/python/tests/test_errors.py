"""Bad situations raise clear TernErrors: no broker, a broker that goes
away, a closed client, a broker that refuses the login."""
import signal
import socket
import subprocess

import pytest

import tern
from conftest import BROKER, Broker, free_port


def test_no_broker_is_connect_failed():
    with pytest.raises(tern.TernError) as e:
        tern.Client.connect(f"127.0.0.1:{free_port()}", timeout=2)
    assert e.value.code == tern.ErrorCode.ConnectFailed
    with pytest.raises(tern.TernError) as e:
        tern.Client.connect("127.0.0.1:notaport")
    assert e.value.code == tern.ErrorCode.InvalidArgument


def test_broker_gone_fails_calls_and_subscriptions(broker):
    client = tern.Client.connect(broker.address)
    sub = client.subscribe("t", "s")
    broker.stop(signal.SIGKILL)
    with pytest.raises(tern.TernError) as e:
        sub.next(10)
    assert e.value.code == tern.ErrorCode.ConnectionLost
    with pytest.raises(tern.TernError) as e:
        client.publish("t", "x")
    assert e.value.code == tern.ErrorCode.ConnectionLost
    client.close()


def test_closed_client_raises(broker):
    client = tern.Client.connect(broker.address)
    client.close()
    with pytest.raises(tern.TernError) as e:
        client.publish("t", "x")
    assert e.value.code == tern.ErrorCode.ConnectionLost


def test_not_a_broker_is_a_clear_error():
    # Something that accepts and closes at once.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = "127.0.0.1:%d" % server.getsockname()[1]
        import threading
        threading.Thread(target=lambda: server.accept()[0].close(),
                         daemon=True).start()
        with pytest.raises(tern.TernError) as e:
            tern.Client.connect(address, timeout=5)
    assert e.value.code in (tern.ErrorCode.ConnectionLost,
                            tern.ErrorCode.ConnectFailed)


def test_logins(tmp_path):
    hashed = subprocess.run([BROKER, "hash-password"], input="s3cret\n",
                            capture_output=True, text=True, check=True)
    config = tmp_path / "tern.toml"
    config.write_text('[users.alice]\npassword = "%s"\n'
                      'publish.allow = ["orders.>"]\n'
                      % hashed.stdout.strip())
    b = Broker(tmp_path / "data", ["--config", str(config)])
    try:
        # A wrong password is refused at connect().
        with pytest.raises(tern.TernError) as e:
            tern.Client.connect(b.address, user="alice", password="wrong")
        assert e.value.code == tern.ErrorCode.NotAuthorized
        with tern.Client.connect(b.address, user="alice",
                                 password="s3cret") as alice:
            assert alice.publish("orders.eu", "x") == 0
            with pytest.raises(tern.TernError) as e:
                alice.publish("payments", "x")
            assert e.value.code == tern.ErrorCode.NotAuthorized
            assert "alice" in str(e.value)
    finally:
        b.stop()
