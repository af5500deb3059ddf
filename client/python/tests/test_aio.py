"""The asyncio client: the same calls, awaited."""
import asyncio

import pytest

import tern
import tern.aio


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_publish_subscribe_ack(broker):
    async def main():
        async with await tern.aio.Client.connect(broker.address) as c:
            assert await c.publish("a", "first") == 0
            future = await c.publish_async("a", [f"m{i}" for i in range(99)])
            await c.flush()
            assert [r.offset for r in await future] == list(range(1, 100))
            sub = await c.subscribe("a", "s", start=tern.Start.EARLIEST)
            offsets = []
            async for m in sub:
                m.ack()
                offsets.append(m.offset)
                if len(offsets) == 100:
                    break
            assert offsets == list(range(100))
            await c.ping()
            info = await c.topic_info("a")
            assert info.subscriptions[0].lag == 0
            m = None
            await sub.close()
            with pytest.raises(StopAsyncIteration):
                await sub.next(1)
            return m

    run(main())


def test_request_reply_and_errors(broker):
    async def main():
        async with await tern.aio.Client.connect(broker.address) as c:
            async def handle(m):
                if m.payload == b"bad":
                    raise RuntimeError("cannot")
                return b"ok:" + m.payload

            responder = await c.respond("svc", handle)
            serving = asyncio.create_task(responder.serve())
            assert (await c.request("svc", "x", timeout=10)).payload == b"ok:x"
            with pytest.raises(tern.TernError) as e:
                await c.request("svc", "bad", timeout=10)
            assert e.value.code == tern.ErrorCode.RemoteError
            serving.cancel()
            with pytest.raises(tern.TernError) as e:
                await c.publish("bad topic", "x")
            assert e.value.code == tern.ErrorCode.InvalidTopic

    run(main())


def test_redelivery_between_aio_and_blocking_clients(broker):
    async def main():
        c = await tern.aio.Client.connect(broker.address)
        await c.publish("jobs", "j")
        sub = await c.subscribe("jobs", "w", start=tern.Start.EARLIEST)
        m = await sub.next(5)
        assert m.attempt == 1
        await c.close()  # without acking

    run(main())
    with tern.Client.connect(broker.address) as c:
        m = c.subscribe("jobs", "w").next(5)
        assert m.attempt == 2


def test_broker_gone(broker):
    async def main():
        c = await tern.aio.Client.connect(broker.address)
        sub = await c.subscribe("t")
        broker.stop()
        with pytest.raises(tern.TernError) as e:
            await sub.next(10)
        assert e.value.code == tern.ErrorCode.ConnectionLost
        await c.close()

    run(main())
