"""A route's chain as an MLflow pyfunc model: prompt version + retrieval settings + model, replayed against any
OpenAI-compatible endpoint. Logged as "models from code": MLflow stores this file with the model, so it imports
nothing of the platform (the standard library and MLflow only) and loads wherever MLflow does.

The chain (``model_config``, written by ``llmops routes package``): ``model``, ``base_url``, ``prompt_rag`` and
``prompt_plain`` (``{"name", "version", "system", "user", "no_context_system"}``, single-brace ``{sources}`` and
``{question}`` as the gateway fills them), ``rag`` (``collection``, ``top_k``, ``filter``, ``score_threshold``,
``max_context_chars``, ``retriever_url``). Secrets never go into the model: ``api_key`` and ``retriever_token`` are
given at load time (``mlflow.pyfunc.load_model(uri, model_config={...})``) or read from ``OPENAI_API_KEY`` and
``LLMOPS_RETRIEVER_TOKEN``; ``base_url`` may be overridden the same way (or ``OPENAI_BASE_URL``).

Input rows: ``messages`` (a chat), optionally ``documents`` (texts used as the retrieved chunks instead of a search)
and ``temperature``/``max_tokens``. Output: one answer per row. The rendering repeats the gateway's exactly (its
context block, template filling and message merging); a test holds the two together.

An adapter is served by alias only (``support-bot@champion``: the platform's inference service serves no
version-pinned name), so the chain calls the alias and records ``model_version``, the registry version the alias
pointed to when it was packaged. The inference service names the version that answered in a header; where it
differs (the alias moved since), ``predict`` refuses, or only warns when loaded with
``model_config={"on_version_mismatch": "warn"}``. An endpoint that does not send the header (any other
OpenAI-compatible server) is not checked.
"""

import json
import os
import urllib.request
import warnings

import mlflow
from mlflow.pyfunc import PythonModel

NO_SOURCES = "(no relevant sources were found)"
# llmops_common.contracts.adapters.MODEL_VERSION_HEADER (this file imports nothing of the platform; a test holds the
# two equal): the registry version of the adapter that answered.
MODEL_VERSION_HEADER = "x-llmops-model-version"


def _post(url: str, body: dict, token: str | None, timeout_s: float = 120.0) -> tuple[dict, dict]:
    """The answer's JSON body and its headers."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read()), response.headers


def context_block(texts: list[str], max_chars: int) -> str:
    """``[n] text`` per chunk within ``max_chars``, as the gateway writes it (a first chunk too long is cut)."""
    lines, total = [], 0
    for raw in texts:
        text = " ".join(raw.split())
        room = max_chars - total
        if room <= 0:
            break
        line = f"[{len(lines) + 1}] {text}"
        if len(line) > room:
            if lines:
                break
            line = line[: max(0, room - 1)] + "…"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) if lines else NO_SOURCES


def fill(text: str, *, sources: str, question: str) -> str:
    return text.replace("{sources}", sources).replace("{question}", question)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content or () if isinstance(p, dict) and p.get("type") == "text")


def apply(messages: list[dict], *, system: str, user: str | None) -> list[dict]:
    """``system`` merged into a leading system message (or put first), ``user`` in place of the last user turn."""
    messages = [dict(m) for m in messages]
    if user is not None:
        last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        content = messages[last].get("content")
        if isinstance(content, str):
            messages[last]["content"] = user
        else:
            others = [p for p in content if not (isinstance(p, dict) and p.get("type") == "text")]
            messages[last]["content"] = [{"type": "text", "text": user}, *others]
    if not system:
        return messages
    first = messages[0] if messages else {}
    if first.get("role") in ("system", "developer") and isinstance(first.get("content"), str):
        messages[0] = {**first, "content": f"{system}\n\n{first['content']}"}
    else:
        messages.insert(0, {"role": "system", "content": system})
    return messages


class RouteChain(PythonModel):
    def load_context(self, context) -> None:
        self.chain = dict(context.model_config or {})

    def render(self, row: dict) -> list[dict]:
        """The messages the model is sent for one input row."""
        chain, messages = self.chain, list(row["messages"])
        rag = chain.get("rag") or {}
        documents = row.get("documents")
        if hasattr(documents, "tolist"):  # a DataFrame cell
            documents = documents.tolist()
        elif not isinstance(documents, list | tuple):  # absent (None, or NaN in a DataFrame)
            documents = None
        retrieves = documents is not None or bool(rag.get("collection"))
        prompt = chain.get("prompt_rag") if retrieves else chain.get("prompt_plain")
        users = [m for m in messages if m.get("role") == "user"]
        question = _text(users[-1].get("content")) if users else ""
        if prompt is None:
            return messages
        if not retrieves:
            user = None if prompt.get("user") is None else fill(prompt["user"], sources="", question=question)
            return apply(messages, system=prompt["system"], user=user)
        if documents is None:
            documents = self._search(rag, question)
        block = context_block([str(d) for d in documents], int(rag.get("max_context_chars", 6000)))
        user = None if prompt.get("user") is None else fill(prompt["user"], sources=block, question=question)
        return apply(messages, system=fill(prompt["system"], sources=block, question=question), user=user)

    def _search(self, rag: dict, question: str) -> list[str]:
        body = {"query": question, "top_k": rag.get("top_k", 1)}
        for field in ("filter", "score_threshold"):
            if rag.get(field) is not None:
                body[field] = rag[field]
        url = f"{rag['retriever_url'].rstrip('/')}/v1/collections/{rag['collection']}/search"
        token = self.chain.get("retriever_token") or os.environ.get("LLMOPS_RETRIEVER_TOKEN")
        return [hit["text"] for hit in _post(url, body, token)[0]["data"]]

    def _check_version(self, served: str | None) -> None:
        recorded = self.chain.get("model_version")
        if recorded is None or served is None or served == recorded:
            return
        message = (
            f"{self.chain['model']} answered with registry version {served}, but this chain was packaged with version "
            f"{recorded} (the alias has moved since)"
        )
        if self.chain.get("on_version_mismatch") == "warn":
            warnings.warn(message, stacklevel=3)
            return
        raise RuntimeError(f"{message}; load it with model_config={{'on_version_mismatch': 'warn'}} to accept that")

    def predict(self, context, model_input, params=None) -> list[str]:
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        base_url = (self.chain.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")).rstrip("/")
        api_key = self.chain.get("api_key") or os.environ.get("OPENAI_API_KEY")
        answers = []
        for row in rows:
            body = {"model": self.chain["model"], "messages": self.render(row)}
            for field in ("temperature", "max_tokens"):
                if row.get(field) is not None:
                    body[field] = row[field]
            answer, headers = _post(f"{base_url}/chat/completions", body, api_key)
            self._check_version(headers.get(MODEL_VERSION_HEADER))
            answers.append(answer["choices"][0]["message"]["content"])
        return answers


mlflow.models.set_model(RouteChain())
