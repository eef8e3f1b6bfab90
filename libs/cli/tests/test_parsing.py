import pytest
import typer

from llmops_cli.keys import parse_duration
from llmops_cli.routes import parse_variant
from llmops_cli.services import resolve_ports, service_url


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("45m", 2700), ("3600s", 3600), ("120", 120), ("2w", 1209600), ("1H", 3600)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "-5m", "3x", "1.5h", "d"])
def test_bad_durations(text):
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


def test_variant_parsing():
    assert parse_variant("name=a, upstream=http://h:1/v1 ,model=m,weight=90") == {
        "name": "a",
        "upstream": "http://h:1/v1",
        "model": "m",
        "weight": 90,
    }
    assert parse_variant("name=b,upstream=u,model=m,weight=2.5,api_key_env=UPSTREAM_KEY") == {
        "name": "b",
        "upstream": "u",
        "model": "m",
        "weight": 2.5,
        "api_key_env": "UPSTREAM_KEY",
    }


@pytest.mark.parametrize("text", ["name=a,upstream=u", "name=a,upstream=u,model=m,weight=x", "name=a,oops"])
def test_bad_variants(text):
    with pytest.raises(typer.BadParameter):
        parse_variant(text)


def test_ports_from_env_then_options(monkeypatch):
    monkeypatch.delenv("LLMOPS_GATEWAY_PORT", raising=False)
    assert resolve_ports()["gateway"] == 8000
    monkeypatch.setenv("LLMOPS_GATEWAY_PORT", "8100")
    assert resolve_ports()["gateway"] == 8100
    assert resolve_ports(["gateway=8200"])["gateway"] == 8200
    assert resolve_ports(["inference=8102"])["inference"] == 8102
    with pytest.raises(ValueError):
        resolve_ports(["nosuch=1"])


def test_service_url(monkeypatch):
    monkeypatch.delenv("LLMOPS_GATEWAY_URL", raising=False)
    monkeypatch.setenv("LLMOPS_GATEWAY_PORT", "8100")
    assert service_url("gateway") == "http://127.0.0.1:8100"
    monkeypatch.setenv("LLMOPS_GATEWAY_URL", "http://gw.example:9000/")
    assert service_url("gateway") == "http://gw.example:9000"
