"""Request/reply between Python and the C++ client (the tern CLI)."""
import subprocess
import threading

import pytest

import tern
from conftest import CLI, cli


def test_python_requests_cpp_replies(broker, client):
    # tern reply answers with its command's output.
    responder = subprocess.Popen(
        [CLI, "reply", "upper", "--exec", "tr a-z A-Z", "--count", "2",
         "--server", broker.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert client.request("upper", "hello", timeout=10).payload == \
            b"HELLO"
        assert client.request("upper", b"again", timeout=10).payload == \
            b"AGAIN"
        assert responder.wait(10) == 0
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()


def test_cpp_requests_python_replies(broker, client):
    responder = client.respond("prices", lambda m: b"price of " + m.payload)
    stop = threading.Event()
    thread = threading.Thread(target=responder.serve, args=(stop,))
    thread.start()
    try:
        run = cli(broker, "request", "prices", "AAPL", "--timeout", "10s")
        assert run.returncode == 0, run.stderr
        assert run.stdout == "price of AAPL\n"
    finally:
        stop.set()
        thread.join()


def test_responder_failure_reaches_the_requester(broker, client):
    def fail(message):
        raise ValueError("no such product: " + message.text)

    responder = client.respond("catalog", fail)
    with tern.Client.connect(broker.address) as requester:
        result = {}
        thread = threading.Thread(target=lambda: result.update(
            served=responder.serve_one(timeout=10)))
        thread.start()
        with pytest.raises(tern.TernError) as e:
            requester.request("catalog", "x42", timeout=10)
        thread.join()
    assert result["served"]
    assert e.value.code == tern.ErrorCode.RemoteError
    assert "no such product: x42" in str(e.value)
    # The same failure seen by the C++ client.
    thread = threading.Thread(target=responder.serve_one, args=(10,))
    thread.start()
    run = cli(broker, "request", "catalog", "y7", "--timeout", "10s")
    thread.join()
    assert run.returncode == 1
    assert "no such product: y7" in run.stderr


def test_request_without_responder_times_out(client):
    with pytest.raises(tern.TernError) as e:
        client.request("nobody.home", "hi", timeout=0.3)
    assert e.value.code == tern.ErrorCode.Timeout
    with pytest.raises(tern.TernError) as e:
        client.request("x", "hi", headers=[("tern-reply-to", b"mine")])
    assert e.value.code == tern.ErrorCode.InvalidArgument


def test_cpp_and_python_share_a_topic(broker, client):
    # Published by C++, consumed and acked by Python.
    run = cli(broker, "pub", "mixed", "from-cpp-1", "from-cpp-2")
    assert run.returncode == 0, run.stderr
    sub = client.subscribe("mixed", "py", start=tern.Start.EARLIEST)
    got = [sub.next(5), sub.next(5)]
    assert [m.payload for m in got] == [b"from-cpp-1", b"from-cpp-2"]
    for m in got:
        m.ack()
    sub.close()
    assert client.topic_info("mixed").subscriptions[0].lag == 0
    # Published by Python, consumed (and acked) by C++.
    client.publish("mixed", "from-python", headers=[("trace", "t1")])
    run = cli(broker, "sub", "mixed", "--subscription", "py", "--count", "1",
              "--timeout", "10", "--json")
    assert run.returncode == 0, run.stderr
    assert '"payload":"from-python"' in run.stdout.replace(" ", "")
    assert client.topic_info("mixed").subscriptions[0].lag == 0


def test_trace_context_travels(broker, client):
    traceparent = tern.trace.start()
    client.publish("traced", "x", trace=(traceparent, "vendor=1"))
    m = client.subscribe("traced", start=tern.Start.EARLIEST).next(5)
    assert m.traceparent == traceparent
    assert m.tracestate == "vendor=1"
    assert tern.trace.parse("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    # Passing along the trace of a message that came without one: none.
    untraced = client.subscribe("traced", start=tern.Start.EARLIEST)
    client.publish("traced", "y")
    untraced.next(5)
    plain = untraced.next(5)
    assert plain.traceparent is None
    client.publish("traced", "z", trace=(tern.trace.child(plain.traceparent),
                                         plain.tracestate))

    # The C++ responder answers in the same trace, as a new span.
    responder = subprocess.Popen(
        [CLI, "reply", "echo", "--exec", "cat", "--count", "1",
         "--server", broker.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        reply = client.request("echo", "hi", timeout=10, trace=traceparent)
        assert responder.wait(10) == 0
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
    assert tern.trace.trace_id(reply.traceparent) == \
        tern.trace.trace_id(traceparent)
    assert reply.traceparent != traceparent
    # And so does the Python one.
    py = client.respond("echo2", lambda m: m.payload)
    thread = threading.Thread(target=py.serve_one, args=(10,))
    thread.start()
    reply = client.request("echo2", "hi", timeout=10, trace=traceparent)
    thread.join()
    assert tern.trace.trace_id(reply.traceparent) == \
        tern.trace.trace_id(traceparent)
