"""Ratings sent to the gateway with a client's key, forwarded to the feedback service with the gateway's token."""

import aiohttp

from llmops_common.errors import APIError


class RatingsForwarder:
    def __init__(self, http: aiohttp.ClientSession, *, url: str, token: str) -> None:
        self._http = http
        self._url = url.rstrip("/") + "/v1/feedback"
        self._token = token

    async def forward(self, body: bytes, *, key_id: str, request_id: str) -> tuple[int, bytes]:
        """The feedback service's status and body (it validates the rating and scopes it to ``key_id``'s requests);
        503 ``feedback_unavailable`` when it cannot answer."""
        headers = {
            "authorization": f"Bearer {self._token}",
            "x-llmops-key-id": key_id,
            "content-type": "application/json",
            "x-request-id": request_id,
        }
        try:
            async with self._http.post(self._url, data=body, headers=headers) as reply:
                content = await reply.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise APIError(503, "feedback service unavailable", code="feedback_unavailable") from exc
        if reply.status >= 500:
            raise APIError(503, "feedback service unavailable", code="feedback_unavailable")
        return reply.status, content
