"""Whether an upstream serves a model yet (a new adapter, before its canary or its promotion) is asked at the
upstream's /models with the key the route's variant names in ``api_key_env``, where the feedback service holds that
key: the inference service's serving token (``FEEDBACK_INFERENCE_SERVING_TOKEN``). It goes to no other upstream."""

import httpx

from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_feedback.platform import GatewayRoutes
from llmops_testkit.fake_upstream import FakeUpstream

TOKEN = "serving-token-0123456789abcdef"


async def test_serves_asks_a_closed_upstream_with_the_key_its_variant_names():
    inference = FakeUpstream("support-bot@challenger").start()  # stands for a closed inference service
    inference.behaviour.api_key = TOKEN
    try:
        async with httpx.AsyncClient() as http:
            routes = GatewayRoutes(None, upstreams=http, upstream_keys={INFERENCE_TOKEN_ENV: TOKEN, "UNSET_KEY": None})
            url, model = inference.base_url, "support-bot@challenger"
            assert await routes.serves(url, model, api_key_env=INFERENCE_TOKEN_ENV)
            assert not await routes.serves(url, "support-bot@champion", api_key_env=INFERENCE_TOKEN_ENV)
            refused = inference.stats.refused
            for other in (None, "OPENAI_API_KEY", "UNSET_KEY"):  # no key held for it: none sent, so refused
                assert not await routes.serves(url, model, api_key_env=other)
            assert inference.stats.refused == refused + 3
            without = GatewayRoutes(None, upstreams=http)  # FEEDBACK_INFERENCE_SERVING_TOKEN unset
            assert not await without.serves(url, model, api_key_env=INFERENCE_TOKEN_ENV)
    finally:
        inference.stop()
