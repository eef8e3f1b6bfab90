"""Experiments: the readout per arm, what the controller would decide now, the decisions with their evidence,
and promote / rollback / stop by hand (through the feedback service's controller path, which records them)."""

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from llmops_gateway.console.deps import AdminFormDep, ConsoleDep, PlatformSessionDep
from llmops_gateway.console.render import page

router = APIRouter(prefix="/console/experiments", include_in_schema=False)


@router.get("")
async def list_experiments(request: Request, _: PlatformSessionDep, console: ConsoleDep) -> Response:
    body = await console.feedback.request("GET", "/v1/experiments")
    return page(request, "experiments.html", title="Experiments", experiments=body["data"])


@router.get("/{experiment_id}")
async def show(experiment_id: str, request: Request, _: PlatformSessionDep, console: ConsoleDep) -> Response:
    detail = await console.feedback.request("GET", f"/v1/experiments/{experiment_id}")
    return page(request, "experiment.html", title=f"Experiment on {detail['route']}", x=detail)


@router.post("/{experiment_id}/{what}")
async def decide(
    experiment_id: str, what: Literal["promote", "rollback", "stop"], _: AdminFormDep, console: ConsoleDep
) -> Response:
    await console.feedback.request("POST", f"/v1/experiments/{experiment_id}/{what}")
    return RedirectResponse(f"/console/experiments/{experiment_id}", status_code=303)
