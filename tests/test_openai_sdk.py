"""The official OpenAI Python SDK works against the gateway unchanged, sync and async, streaming included."""

import asyncio

import openai
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import variant

pytestmark = postgres_only  # the SDK's compatibility, not the store


@pytest.fixture
def route(gateway, upstreams):
    return gateway.put_route(variants=[variant("a", upstreams["alpha"])])


@pytest.fixture
def client(gateway):
    _, key = gateway.create_key()
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_chat_completion(client, route):
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "alpha:a-model:0 tok1 tok2 tok3"
    assert completion.usage.completion_tokens == 4
    assert raw.headers["x-llmops-variant"] == "a" and raw.headers["x-request-id"]


def test_streaming_with_usage(client, route):
    stream = client.chat.completions.create(
        model=route,
        messages=[{"role": "user", "content": "Say hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "alpha:a-model:0 tok1 tok2 tok3 tok4 "
    assert chunks[-1].usage.total_tokens == 16


def test_text_completion_and_models(client, route):
    assert client.completions.create(model=route, prompt="Hi", max_tokens=2).choices[0].text == "alpha:a-model:0 tok1"
    assert route in {m.id for m in client.models.list()}


def test_errors_map_to_sdk_exceptions(gateway, client, route):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=route, messages=[{"role": "oracle", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-llmops-wrong", max_retries=0).models.list()
    _, limited = gateway.create_key(limits={"rpm": 1})
    limited_client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=limited, max_retries=0)
    limited_client.chat.completions.create(model=route, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as refused:
        limited_client.chat.completions.create(model=route, messages=[{"role": "user", "content": "x"}])
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_async_client_streams_concurrently(gateway, route):
    _, key = gateway.create_key()

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:

            async def one(i: int) -> str:
                stream = await client.chat.completions.create(
                    model=route, messages=[{"role": "user", "content": f"n{i}"}], stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            return await asyncio.gather(*(one(i) for i in range(10)))

    assert all(text.startswith("alpha:a-model:0") for text in asyncio.run(run()))
