"""CORS is closed on the gateway: a browser on another origin gets no ``access-control-allow-origin`` for a
preflight or a request (the console is same-origin; there is no CORS setting). The app is built in-process without
its lifespan: CORS is decided by middleware before any endpoint runs."""

from fastapi.testclient import TestClient

from llmops_gateway.app import create_app
from llmops_gateway.settings import GatewaySettings
from llmops_testkit.cors import cors_problems


def test_cross_origin_requests_are_not_allowed():
    app = create_app(GatewaySettings(admin_token="a" * 32, key_secret="k" * 32, dev_mode=False))
    client = TestClient(app, raise_server_exceptions=False)
    paths = [("GET", "/healthz"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/admin/keys")]
    assert cors_problems(client, paths) == []
