"""Teams, prices and spend reports through the gateway's admin API, for the spend and budget tests."""

import time
import uuid
from decimal import Decimal

import httpx

NANOS = Decimal(10**9)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def set_price(gateway, variant: str, *, input: str, output: str, cached: str | None = None) -> dict:
    body = {"input_per_mtok": input, "output_per_mtok": output, "cached_input_per_mtok": cached}
    with gateway.admin() as admin:
        response = admin.put(f"/admin/prices/{variant}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def create_team(gateway, name: str | None = None, **fields) -> str:
    name = name or unique("team")
    with gateway.admin() as admin:
        response = admin.post("/admin/teams", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return name


def spend(gateway, **params) -> dict:
    with gateway.admin() as admin:
        response = admin.get("/admin/spend", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_spend(gateway, requests: int, timeout_s: float = 10.0, **params) -> dict:
    """The report once it counts ``requests`` requests (spend reaches SQL in batches)."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = spend(gateway, **params)
        if report["total"]["requests"] >= requests or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def cost_nanos(report_group: dict) -> int:
    return int(Decimal(report_group["cost"]) * NANOS)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code
    return error
