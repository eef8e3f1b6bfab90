"""An offline gate logged to MLflow through its REST API (the feedback service does not carry the MLflow client):
a run with the comparison's parameters, metrics and verdict, the per-row table as an artifact the UI shows as a
table, and tags linking run and registered model version both ways."""

import json
import time

import httpx

EXPERIMENT = "llmops-offline-gate"
TABLE = "offline_gate_rows.json"


class TrackingError(Exception):
    pass


async def _call(http: httpx.AsyncClient, method: str, path: str, **kwargs) -> dict:
    try:
        response = await http.request(method, f"/api/2.0/mlflow{path}", **kwargs)
    except httpx.HTTPError as exc:
        raise TrackingError(f"MLflow unreachable: {exc!r}") from None
    if response.status_code >= 400:
        raise TrackingError(f"MLflow answered {response.status_code} to {path}: {response.text[:300]}")
    return response.json() if response.content else {}


async def _experiment_id(http: httpx.AsyncClient) -> str:
    response = await http.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT})
    if response.status_code == 200:
        return response.json()["experiment"]["experiment_id"]
    try:
        return (await _call(http, "POST", "/experiments/create", json={"name": EXPERIMENT}))["experiment_id"]
    except TrackingError:  # created meanwhile by another worker
        return (await _call(http, "GET", "/experiments/get-by-name", params={"experiment_name": EXPERIMENT}))[
            "experiment"
        ]["experiment_id"]


def table(rows: list[dict]) -> dict:
    """MLflow's table artifact format (what ``mlflow.log_table`` writes): columns and rows."""
    columns = ["question", "reference", "champion_answer", "challenger_answer", "outcome", "detail", "tokens"]
    return {"columns": columns, "data": [[r.get(c) for c in columns] for r in rows]}


async def log_comparison(
    http: httpx.AsyncClient,
    *,
    comparison_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    verdict: str,
    rows: list[dict],
    model: str | None,
    version: str | None,
) -> str:
    """Returns the run id."""
    now = int(time.time() * 1000)
    tags = [{"key": "llmops.comparison", "value": comparison_id}, {"key": "llmops.verdict", "value": verdict},
            {"key": "mlflow.loggedArtifacts", "value": json.dumps([{"path": TABLE, "type": "table"}])}]  # fmt: skip
    if model and version:
        tags.append({"key": "llmops.model_version", "value": f"{model}/{version}"})
    body = {"experiment_id": await _experiment_id(http), "run_name": f"offline-gate-{comparison_id}",
            "start_time": now, "tags": tags}  # fmt: skip
    run = (await _call(http, "POST", "/runs/create", json=body))["run"]["info"]
    run_id, artifact_uri = run["run_id"], run["artifact_uri"]
    batch = {
        "run_id": run_id,
        "params": [{"key": k, "value": str(v)[:6000]} for k, v in params.items()],
        "metrics": [{"key": k, "value": float(v), "timestamp": now, "step": 0} for k, v in metrics.items()],
    }
    await _call(http, "POST", "/runs/log-batch", json=batch)
    # Artifacts go through the tracking server's artifact proxy (mlflow-artifacts:/...): no storage credentials here.
    if artifact_uri.startswith("mlflow-artifacts:"):
        path = artifact_uri.split(":", 1)[1].lstrip("/")
        response = await http.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{path}/{TABLE}", content=json.dumps(table(rows))
        )
        if response.status_code >= 400:
            raise TrackingError(f"MLflow refused the table artifact: {response.status_code} {response.text[:200]}")
    if model and version:
        for key, value in (("llmops.offline_gate", verdict), ("llmops.offline_gate_run", run_id)):
            await _call(http, "POST", "/model-versions/set-tag",
                        json={"name": model, "version": version, "key": key, "value": value})  # fmt: skip
    await _call(
        http, "POST", "/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    )
    return run_id
