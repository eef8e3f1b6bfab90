"""The outbox: writes made during one loop iteration go out together at its end, in order, and then complete."""

import asyncio

from llmops_gateway.proxy.outbox import Outbox


class Transport:
    def __init__(self, log: list) -> None:
        self.log, self.closing = log, False

    def write(self, data: bytes) -> None:
        self.log.append(data)

    def is_closing(self) -> bool:
        return self.closing


async def test_writes_of_one_iteration_go_out_together_in_order_then_complete():
    log: list = []
    outbox, first, second = Outbox(), Transport(log), Transport(log)
    outbox.send(first, b"a", lambda: log.append("a done"))
    outbox.send(second, b"b")
    outbox.send(first, b"c", lambda: log.append("c done"))
    assert log == []  # nothing before the end of this iteration
    await asyncio.sleep(0)
    assert log == [b"a", "a done", b"b", b"c", "c done"]
    outbox.send(second, b"d")  # the next iteration's burst
    await asyncio.sleep(0)
    assert log[-1] == b"d"


async def test_a_transport_closed_meanwhile_gets_nothing_but_the_exchange_still_completes():
    log: list = []
    outbox, transport = Outbox(), Transport(log)
    outbox.send(transport, b"late", lambda: log.append("done"))
    transport.closing = True
    await asyncio.sleep(0)
    assert log == ["done"]
