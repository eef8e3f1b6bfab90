"""Training: the trainer's jobs with their progress (the page refreshes itself while one is queued or running) and
a cancel button; the MLflow registry's models with their versions and aliases (what inference serves)."""

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import AdminFormDep, ConsoleDep, PlatformSessionDep
from llmops_gateway.console.render import page

router = APIRouter(prefix="/console/training", include_in_schema=False)

ACTIVE = ("queued", "running")


async def _or_error(call):
    try:
        return await call, None
    except BackendError as exc:
        return None, exc.message


@router.get("")
async def training(request: Request, _: PlatformSessionDep, console: ConsoleDep) -> Response:
    (jobs, jobs_error), (models, registry_error) = await asyncio.gather(
        _or_error(console.trainer.request("GET", "/jobs", params={"limit": 50})),
        _or_error(
            console.registry.request("GET", "/api/2.0/mlflow/registered-models/search", params={"max_results": 100})
        ),
    )
    jobs = (jobs or {}).get("data", [])
    models = sorted((models or {}).get("registered_models", []), key=lambda m: m.get("name", ""))
    for model in models:
        model["alias_map"] = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    refresh = any(job["state"] in ACTIVE for job in jobs)
    return page(
        request,
        "training.html",
        title="Training",
        jobs=jobs,
        jobs_error=jobs_error,
        models=models,
        registry_error=registry_error,
        refresh=refresh,
        active=ACTIVE,
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, _: AdminFormDep, console: ConsoleDep) -> Response:
    await console.trainer.request("DELETE", f"/jobs/{job_id}")
    return RedirectResponse("/console/training", status_code=303)
