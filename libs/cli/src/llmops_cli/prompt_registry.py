"""MLflow's prompt registry as the CLI uses it: push with validation (no new version for an unchanged text), the
built-in RAG templates seeded by ``llmops up``, and a reference resolved to the text a route would be served with.

Validation is the shared contract's (``llmops_common.contracts.prompts``), the same the gateway applies when a route
names the prompt: a template with a variable the gateway cannot fill never reaches the registry through here.
"""

import os

from llmops_cli.services import service_url
from llmops_common.contracts import prompts as contract


def tracking_uri(url: str | None = None) -> str:
    return (url or os.environ.get("LLMOPS_MLFLOW_URL") or service_url("mlflow")).rstrip("/")


def client(url: str | None = None):
    # A registry that is down fails in seconds (MLflow's default retries last minutes); a slow upload of a packaged
    # model keeps MLflow's own timeout and a couple of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    from mlflow import MlflowClient

    uri = tracking_uri(url)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(mlflow, name: str, *, aliases: bool = False) -> list:
    """Every version of a prompt, newest first (none if the prompt does not exist). ``aliases``: each read again
    with its aliases (MLflow's version search leaves them out)."""
    if mlflow.get_prompt(name) is None:
        return []
    found, token = [], None
    while True:
        page = mlflow.search_prompt_versions(name, max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    found.sort(key=lambda v: int(v.version), reverse=True)
    return [mlflow.get_prompt_version(name, v.version) for v in found] if aliases else found


def push(mlflow, name: str, template: str | list, *, message: str | None = None, tags: dict | None = None):
    """Checks the template, then registers it as a new version, unless it equals the latest one. Returns
    ``(version, created)``; ``ValueError``/``TypeError`` say what is wrong with the template."""
    contract.parts(template)
    existing = versions(mlflow, name)
    if existing and existing[0].template == template:
        return existing[0], False
    return mlflow.register_prompt(name, template, commit_message=message, tags=tags), True


def seed_builtins(url: str | None = None) -> list[str]:
    """The gateway's built-in RAG templates as registered prompts, alias ``production`` on their first version.
    Idempotent: a text already registered makes no new version, and an alias someone moved is left where it is."""
    mlflow, lines = client(url), []
    for builtin, texts in contract.BUILTIN.items():
        name = contract.seeded_name(builtin)
        template = contract.to_registry(texts["system"], texts["user"])
        # Any version with the text counts (someone may have pushed their own versions on top of it).
        found = next((v for v in versions(mlflow, name) if v.template == template), None)
        tags = {"llmops.builtin": builtin}
        version, created = (found, False) if found else push(mlflow, name, template, message=builtin, tags=tags)
        if created and int(version.version) == 1:
            mlflow.set_prompt_alias(name, contract.SEEDED_ALIAS, 1)
        lines.append(f"prompts:/{name}/{version.version} ({'registered' if created else 'unchanged'})")
    return lines


def resolve(mlflow, ref: str, *, rag: bool | None = None) -> tuple[str, str, contract.Parts]:
    """``(name, version, parts)`` of a ``prompts:/`` reference; ``ValueError`` when it does not resolve or cannot
    be filled."""
    if not contract.is_ref(ref):
        raise ValueError(f"{ref}: not a prompts:/<name>@<alias> or prompts:/<name>/<version> reference")
    body = ref.removeprefix("prompts:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        found = mlflow.get_prompt_version_by_alias(name, alias)
    else:
        name, number = body.rsplit("/", 1)
        found = mlflow.get_prompt_version(name, number)
    if found is None:
        raise ValueError(f"{ref}: no such prompt or version")
    return name, str(found.version), contract.parts(found.template, rag=rag)
