"""The quota limiter's pipelined Redis connection (quotas.pipe) against the real Redis and a silent server."""

import asyncio

import pytest

from llmops_gateway.quotas.pipe import PipelinedRedis, ReplyError, _Incomplete, pack, parse


def test_parse_every_reply_kind_and_incomplete_input():
    buf = bytearray(b"*4\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*2\r\n+OK\r\n-ERR no\r\n:7\r\n")
    value, pos = parse(buf, 0)
    assert value[:3] == [1, b"abc", None] and value[3][0] == "OK" and str(value[3][1]) == "ERR no"
    assert parse(buf, pos) == (7, len(buf))
    for cut in range(1, len(buf) - 5):  # every prefix of the array is incomplete, never wrong
        with pytest.raises(_Incomplete):
            parse(bytearray(buf[:cut]), 0)


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(redis_url):
    pipe = PipelinedRedis(redis_url)
    keys = [f"pipe-test:{i}" for i in range(50)]
    await asyncio.gather(*(pipe.call(pack(b"SET", key, i)) for i, key in enumerate(keys)))
    values = await asyncio.gather(*(pipe.call(pack(b"GET", key)) for key in keys))
    assert values == [str(i).encode() for i in range(50)]
    with pytest.raises(ReplyError):
        await pipe.call(pack(b"NOSUCHCOMMAND"))
    assert await pipe.call(pack(b"GET", keys[7])) == b"7"  # an error reply leaves the connection in step
    await pipe.call(pack(b"DEL", *keys))
    pipe.close()


async def test_a_cancelled_caller_does_not_shift_the_replies(redis_url):
    pipe = PipelinedRedis(redis_url)
    await pipe.call(pack(b"SET", "pipe-test:a", "a"))
    await pipe.call(pack(b"SET", "pipe-test:b", "b"))
    first = asyncio.ensure_future(pipe.call(pack(b"GET", "pipe-test:a")))
    second = asyncio.ensure_future(pipe.call(pack(b"GET", "pipe-test:b")))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == b"b"
    await pipe.call(pack(b"DEL", "pipe-test:a", "pipe-test:b"))
    pipe.close()


async def test_silent_server_times_out_then_the_next_call_reconnects():
    connections = []

    async def silent(reader, writer):
        connections.append(writer)
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
    with pytest.raises(TimeoutError):
        await pipe.call(pack(b"PING"))
    with pytest.raises(TimeoutError):
        await pipe.call(pack(b"PING"))
    assert len(connections) == 2  # the timed-out connection was dropped, not reused out of step
    server.close()


async def test_unreachable_redis_is_an_os_error():
    pipe = PipelinedRedis("redis://127.0.0.1:9/0", connect_timeout_s=1)
    with pytest.raises(OSError):
        await pipe.call(pack(b"PING"))
