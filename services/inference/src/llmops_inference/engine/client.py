"""The parts of vLLM's HTTP API the service drives itself: health and run-time LoRA loading."""

import aiohttp
import orjson

from llmops_common.http import describe_error


class VllmUnavailable(Exception):
    """vLLM did not answer (down, restarting, or the connection broke)."""


class AdapterLoadError(Exception):
    """vLLM answered but refused the adapter (bad files, rank too large, ...)."""


def error_message(body: bytes) -> str:
    """The message of an OpenAI-style error body, else the body's start."""
    try:
        error = orjson.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return body[:300].decode(errors="replace")


class VllmClient:
    def __init__(self, http: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self.http = http
        self.base_url = base_url
        self.headers = {"authorization": f"Bearer {api_key}"}

    async def healthy(self, *, timeout_s: float = 5.0) -> bool:
        try:
            async with self.http.get(
                f"{self.base_url}/health", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _post(self, path: str, body: dict, *, timeout_s: float) -> tuple[int, bytes]:
        try:
            async with self.http.post(
                self.base_url + path,
                data=orjson.dumps(body),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                headers={**self.headers, "content-type": "application/json"},
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise VllmUnavailable(f"vLLM did not answer {path}: {describe_error(exc)}") from None

    async def load_adapter(self, name: str, path: str, *, replace: bool, timeout_s: float = 300.0) -> None:
        """Loads (or, with ``replace``, reloads in place) the PEFT adapter at ``path`` as model ``name``."""
        body = {"lora_name": name, "lora_path": path, "load_inplace": replace}
        status, body = await self._post("/v1/load_lora_adapter", body, timeout_s=timeout_s)
        if status != 200:
            raise AdapterLoadError(error_message(body))

    async def unload_adapter(self, name: str, *, timeout_s: float = 30.0) -> None:
        """Unloads ``name``; an adapter vLLM does not know is already unloaded."""
        status, body = await self._post("/v1/unload_lora_adapter", {"lora_name": name}, timeout_s=timeout_s)
        if status not in (200, 404):
            raise AdapterLoadError(error_message(body))
