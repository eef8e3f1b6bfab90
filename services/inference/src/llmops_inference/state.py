"""Everything one inference process holds, built in the lifespan and reached through ``request.app.state.inference``."""

from dataclasses import dataclass

import aiohttp

from llmops_inference.adapters.service import AdapterManager
from llmops_inference.engine.client import VllmClient
from llmops_inference.engine.supervisor import VllmSupervisor
from llmops_inference.metrics import InferenceMetrics
from llmops_inference.settings import InferenceSettings


@dataclass
class InferenceState:
    settings: InferenceSettings
    admin_token: str
    base_model: str  # the served name of the base model
    http: aiohttp.ClientSession
    vllm: VllmClient
    engine: VllmSupervisor
    adapters: AdapterManager
    metrics: InferenceMetrics
    serving_tokens: tuple[str, ...] = ()  # what /v1/* accepts besides the admin token; empty: open
