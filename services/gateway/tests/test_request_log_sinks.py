"""Request log sinks: every record emitted is written, in order, also while a write is under way and at close;
ratings spooled after the records emitted before them."""

import asyncio

import orjson
from prometheus_client import CollectorRegistry

from llmops_common.contracts.ratings import RatingIn
from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_gateway.feedback.delivery import RatingDelivery
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.requestlog.feedback_sink import FeedbackSink
from llmops_gateway.requestlog.sinks import BatchingSink, JsonlFileSink
from llmops_gateway.requestlog.spool import Spool


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


async def test_a_spooled_rating_comes_after_the_records_still_in_memory(tmp_path):
    """The rated request's record, not yet handed to the writer, goes to disk before the rating: replay (oldest
    first) delivers the record, then the rating."""
    sink = FeedbackSink(
        url="http://127.0.0.1:9", token="t", spool_dir=str(tmp_path), metrics=GatewayMetrics(CollectorRegistry())
    )
    sink._spool.prepare()  # not started: no writer or replayer takes the files away
    sink.emit(record("answered"))
    rating = RatingIn(request_id="answered", rating="up", idempotency_key="k1")
    await sink.spool_rating(RatingDelivery(key_id="key_1", rated_at=3.0, rating=rating))
    assert not sink.reachable  # later ratings go straight to the spool, behind this one
    files = Spool(tmp_path).files()
    assert [path.name.rsplit("-", 1)[1].split(".", 1)[1] for path in files] == ["jsonl", "rating.json"]
    assert orjson.loads(files[0].read_bytes())["request_id"] == "answered"
    assert RatingDelivery.model_validate_json(files[1].read_bytes()).rating == rating
