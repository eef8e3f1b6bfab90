"""A second fake OpenAI upstream for the gateway benchmark, built the way vLLM's own API server is (FastAPI and
pydantic on uvicorn with uvloop and httptools), answering at once with a canned completion.

The test kit's fake (plain asyncio, ~25 us a request) is the strict reference: its throughput is what a client
gets from an upstream that costs almost nothing. Real upstreams parse and validate requests with a framework
before any model runs; this one gives the gateway's throughput ratio against such a server.

    .venv/bin/python -m uvicorn fastapi_upstream:app --app-dir bench --loop uvloop --http httptools --no-access-log
"""

import time

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

app = FastAPI()


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message]
    max_tokens: int | None = None


@app.post("/v1/chat/completions")
async def chat(request: ChatRequest) -> dict:
    tokens = request.max_tokens or 16
    return {
        "id": "cmpl-fastapi",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "tok " * tokens}}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": tokens, "total_tokens": 11 + tokens},
    }


@app.get("/v1/models")
async def models() -> dict:
    return {"object": "list", "data": [{"id": "m", "object": "model"}]}
