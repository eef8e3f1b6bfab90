"""A dataset from the feedback service's SFT export (thumbs-up answers and corrections, as chat JSONL)."""

from datetime import datetime

import aiohttp

from llmops_common.errors import APIError


async def fetch_sft(
    http: aiohttp.ClientSession,
    *,
    base_url: str,
    token: str | None,
    route: str | None,
    variant: str | None,
    since: datetime | None,
    until: datetime | None,
    max_bytes: int,
    timeout_s: float,
) -> bytes:
    """The export's JSONL, read whole (bounded by ``max_bytes``). Failures are the client's to see, as 4xx/5xx."""
    if not token:
        raise APIError(
            400,
            "the feedback dataset source is not configured: set TRAINER_FEEDBACK_TOKEN (the feedback admin token)",
            code="feedback_not_configured",
        )
    params = {k: v for k, v in {"route": route, "variant": variant}.items() if v is not None}
    params.update({k: v.isoformat() for k, v in {"since": since, "until": until}.items() if v is not None})
    url = f"{base_url.rstrip('/')}/v1/datasets/sft"
    try:
        async with http.get(
            url,
            params=params,
            headers={"authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=5),
        ) as response:
            if response.status in (401, 403):
                raise APIError(502, "the feedback service refused the trainer's token", code="feedback_unauthorized")
            if response.status >= 400:
                detail = (await response.text())[:300]
                raise APIError(502, f"the feedback export failed ({response.status}): {detail}", code="feedback_error")
            body = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > max_bytes:
                    raise APIError(
                        413, f"the feedback export is larger than {max_bytes} bytes", code="dataset_too_large"
                    )
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIError(
            503, f"the feedback service at {base_url} is unreachable ({exc.__class__.__name__})", code="feedback_down"
        ) from None
