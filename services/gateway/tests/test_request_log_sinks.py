"""Request log sinks: every record emitted is written, in order, also while a write is under way and at close."""

import asyncio

import orjson

from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_gateway.requestlog.sinks import BatchingSink, JsonlFileSink


def record(request_id: str) -> RequestLogRecord:
    return RequestLogRecord(
        request_id=request_id,
        route="r",
        variant="a",
        status=200,
        prompt=[{"role": "user", "content": "hi"}],
        started_at=1.0,
        finished_at=2.0,
    )


class SlowSink(BatchingSink):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[dict]] = []

    async def write_batch(self, batch: list[dict]) -> None:
        await asyncio.sleep(0.02)
        self.batches.append(batch)


async def test_records_emitted_during_a_write_and_before_close_are_all_written():
    sink = SlowSink(queue_size=1000, batch_size=10, linger_s=0.005)
    await sink.start()
    for i in range(25):
        assert sink.emit({"i": i})
        if i % 5 == 0:
            await asyncio.sleep(0.01)  # some arrive while a batch is being written
    await sink.aclose()
    written = [r["i"] for batch in sink.batches for r in batch]
    assert written == list(range(25))
    assert all(len(batch) <= 10 for batch in sink.batches)


async def test_a_full_sink_refuses_instead_of_growing():
    sink = SlowSink(queue_size=3, batch_size=10)  # not started: nothing drains it
    assert [sink.emit({"i": i}) for i in range(5)] == [True, True, True, False, False]


async def test_jsonl_file_gets_one_line_per_record(tmp_path):
    sink = JsonlFileSink(tmp_path / "log" / "requests.jsonl")
    await sink.start()
    for i in range(1500):  # more than one batch
        sink.emit(record(f"r{i}"))
    await sink.aclose()
    lines = (tmp_path / "log" / "requests.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(1500)]
