"""``llmops routes package``: a route's chain, as it is served now, logged to MLflow as a pyfunc model.

The chain is what decides an answer besides the weights: the prompt versions (resolved now, so an alias becomes the
version it points to), the retrieval settings and the model, with the registry version behind an adapter alias.
Adapters are served by alias only, so the chain calls the alias and its ``predict`` refuses an answer from another
version than the recorded one (``chain_model.py``).
The model's code is ``chain_model.py`` (models from code), which replays the call against any OpenAI-compatible
endpoint; the registered prompt versions are linked to the logged model.
"""

from pathlib import Path

from llmops_cli import prompt_registry
from llmops_common.contracts import prompts as contract
from llmops_common.contracts.adapters import split_served_name

CHAIN_CODE = Path(__file__).with_name("chain_model.py")


def _prompt(name: str, version: str | None, system: str, user: str | None, no_context: str | None = None) -> dict:
    user = None if user == "{question}" else user  # the user's turn untouched, as the gateway reads it
    prompt = {"name": name, "version": version, "system": system, "user": user}
    if no_context is not None:
        prompt["no_context_system"] = no_context
    return prompt


def _registered(mlflow, ref: str, *, rag: bool | None) -> dict:
    name, version, parts = prompt_registry.resolve(mlflow, ref, rag=rag)
    return _prompt(name, version, parts.system, parts.user)


def chain_of(mlflow, route: dict, *, variant: str | None = None, retriever_url: str | None = None) -> dict:
    """The chain of one variant of ``route`` (as ``GET /admin/routes/NAME`` returns it); by default the variant
    with the largest share. ``ValueError`` when a prompt does not resolve or the variant does not exist."""
    variants = {v["name"]: v for v in route["variants"]}
    chosen = variants.get(variant) if variant else max(route["variants"], key=lambda v: v.get("weight", 1))
    if chosen is None:
        raise ValueError(f"route {route['name']!r} has no variant {variant!r}; it has {', '.join(variants)}")
    prompt_rag = prompt_plain = None
    if chosen.get("prompt"):  # the variant's prompt fits requests that retrieve, or those that do not
        prompt = _registered(mlflow, chosen["prompt"], rag=None)
        prompt_rag, prompt_plain = (
            (prompt, None)
            if "{sources}" in prompt["system"] + (prompt["user"] or "")
            else (
                None,
                prompt,
            )
        )
    rag = route.get("rag") or {}
    if prompt_rag is None:
        template = rag.get("template", contract.DEFAULT_BUILTIN)
        if isinstance(template, dict):  # an inline template
            prompt_rag = _prompt(template["version"], None, template["system"], template.get("user"))
            if "no_context_system" in template:
                prompt_rag["no_context_system"] = template["no_context_system"]
        elif contract.is_ref(template):
            prompt_rag = _registered(mlflow, template, rag=True)
        else:
            prompt_rag = _prompt(template, None, **contract.BUILTIN[template])
    served = split_served_name(chosen["model"])
    model_version = None
    if served is not None:  # an adapter alias: the version it points to now
        model_version = str(mlflow.get_model_version_by_alias(*served).version)
    retrieval = {k: rag.get(k) for k in ("collection", "filter", "score_threshold")}
    retrieval |= {"top_k": rag.get("top_k", 1), "max_context_chars": rag.get("max_context_chars", 6000)}
    if retriever_url:
        retrieval["retriever_url"] = retriever_url
    return {
        "route": route["name"],
        "variant": chosen["name"],
        "model": chosen["model"],
        "model_version": model_version,
        "base_url": chosen["upstream"],
        "prompt_rag": prompt_rag,
        "prompt_plain": prompt_plain,
        "rag": retrieval,
        "on_version_mismatch": "refuse",  # or "warn", given at load time: the alias moved since it was packaged
        # Set at load time (MLflow lets load_model override only keys the logged config has); never logged.
        "api_key": None,
        "retriever_token": None,
    }


def log_chain(chain: dict, *, experiment: str, registered_model: str | None = None) -> dict:
    """Logs the chain in a run of ``experiment``; returns where it is (``model_uri``, ``run_id``, and the
    registered version when ``registered_model`` is given)."""
    import mlflow

    mlflow.set_experiment(experiment)
    prompts = [
        f"prompts:/{p['name']}/{p['version']}"
        for p in (chain["prompt_rag"], chain["prompt_plain"])
        if p is not None and p["version"] is not None
    ]
    with mlflow.start_run(run_name=f"route-{chain['route']}-{chain['variant']}") as run:
        mlflow.log_params(
            {
                "route": chain["route"],
                "variant": chain["variant"],
                "model": chain["model"],
                "model_version": chain["model_version"] or "-",
                "prompt_rag": _label(chain["prompt_rag"]),
                "prompt_plain": _label(chain["prompt_plain"]),
                "rag.collection": chain["rag"].get("collection") or "-",
                "rag.top_k": chain["rag"]["top_k"],
            }
        )
        info = mlflow.pyfunc.log_model(
            name="chain",
            python_model=str(CHAIN_CODE),
            model_config=chain,
            pip_requirements=[f"mlflow-skinny=={mlflow.__version__}"],  # the code needs MLflow and nothing else
            registered_model_name=registered_model,
            prompts=prompts or None,
        )
    return {
        "model_uri": info.model_uri,
        "run_id": run.info.run_id,
        "registered_version": str(info.registered_model_version) if registered_model else None,
        "prompts": prompts,
    }


def _label(prompt: dict | None) -> str:
    if prompt is None:
        return "-"
    return f"prompts:/{prompt['name']}/{prompt['version']}" if prompt["version"] else f"built-in {prompt['name']}"
