"""What the console holds for the life of the gateway process (made in the gateway's lifespan)."""

from dataclasses import dataclass

from llmops_gateway.console.backends import ServiceClient
from llmops_gateway.console.sessions import SessionStore
from llmops_gateway.keys.lockout import FailedAuthLimiter


@dataclass
class ConsoleState:
    sessions: SessionStore
    feedback: ServiceClient  # the feedback service's admin API: request log, quality, experiments
    retriever: ServiceClient  # the retriever's read API: collections for the playground
    retriever_admin: (
        ServiceClient  # the retriever's admin API: uploads (optional: without it, collections are read-only)
    )
    trainer: ServiceClient  # the trainer's job API: jobs, progress, cancel
    registry: ServiceClient  # MLflow's REST API: registered models, versions and aliases
    secure_cookie: bool
    sign_in_limiter: FailedAuthLimiter  # failed sign-ins per client address (surface "console")
    client_ip_header: str | None  # where the client's address is when a proxy connects (its last entry)
