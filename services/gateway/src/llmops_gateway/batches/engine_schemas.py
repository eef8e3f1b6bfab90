"""The contract between the gateway and a batch worker that runs chat lines on its own engine (vLLM's offline
engine): the worker asks the gateway to admit lines (``POST /internal/batches/{id}/admit``), runs the admitted ones
in one batched generation, and hands their outcomes back to be accounted (``POST /internal/batches/{id}/settle``).

The gateway keeps nothing between the two calls: the ticket carries what settling needs, so any replica can settle
a line another admitted. Only the batch workers' token may call either (it may act for any key already).
"""

from pydantic import BaseModel, ConfigDict, Field

from llmops_gateway.quotas.plan import HeldReservation

MAX_LINES = 1024  # lines in one admit or settle call


class EngineLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)  # the line's index in the batch's input file
    body: dict  # the chat completion request, as in the input file


class AdmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(min_length=1, max_length=64)  # the key that made the batch
    models: list[str] = Field(min_length=1, max_length=64)  # the upstream model names the worker's engine serves
    lines: list[EngineLine] = Field(max_length=MAX_LINES)


class HeldQuota(BaseModel):
    """A reservation as the worker holds it (``quotas.plan.HeldReservation``)."""

    tokens: int
    cost: int
    token_counters: list[str]
    cost_counters: list[str]

    @classmethod
    def of(cls, held: HeldReservation) -> "HeldQuota":
        return cls(
            tokens=held.tokens,
            cost=held.cost,
            token_counters=held.token_counters(),
            cost_counters=held.cost_counters(),
        )

    def held(self) -> HeldReservation:
        return HeldReservation(self.tokens, self.cost, tuple(self.token_counters), tuple(self.cost_counters))


class Ticket(BaseModel):
    """What the gateway decided for an admitted line, returned with its outcome."""

    request_id: str
    key_id: str
    team: str | None
    route: str
    variant: str
    model: str
    started_at: float  # unix time of the admission: the record's start
    reservation: HeldQuota | None
    rule: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    retrieved_ids: list[str] = []


class AdmittedLine(BaseModel):
    index: int
    ticket: Ticket
    payload: dict  # the request as the engine must run it (prompt template and retrieved context applied)
    sources: list[dict] | None = None  # retrieved sources, added to the answer as online (RAG routes)


class RefusedLine(BaseModel):
    index: int
    status: int
    error: dict  # OpenAI's error object (message, type, code, param)
    retry_after_s: float | None = None  # a quota refusal that waiting cures


class AdmitResponse(BaseModel):
    admitted: list[AdmittedLine] = []
    serve: list[int] = []  # lines whose chosen variant the engine does not serve: send them to the gateway
    refused: list[RefusedLine] = []


class EngineOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: Ticket
    payload: dict  # as admitted
    status: int = Field(ge=200, le=599)  # 200, or the status the line failed with
    usage: dict | None = None  # OpenAI's usage object
    answer: str | None = None  # the first choice's text
    error: str | None = None
    engine_s: float = Field(default=0.0, ge=0)  # the generation's time (its share of the batched call)


class SettleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[EngineOutcome] = Field(max_length=MAX_LINES)
