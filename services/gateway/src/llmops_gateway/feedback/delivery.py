"""A client's rating on its way to the feedback service: what is sent (and spooled), and the one way it is sent."""

from typing import Protocol

import aiohttp
from pydantic import BaseModel

from llmops_common.contracts.ratings import KEY_ID_HEADER, RATED_AT_HEADER, RatingIn
from llmops_common.http import describe_error


class FeedbackUnreachable(Exception):
    """No answer, or a 5xx: the feedback service cannot take the rating now; it may later."""


class RatingDelivery(BaseModel):
    """A validated rating for one key, with its idempotency key filled in and the time the gateway took it: the same
    bytes go out now or, after an outage, from the spool, so the feedback service stores it once."""

    key_id: str
    rated_at: float  # epoch seconds
    rating: RatingIn

    def headers(self, *, token: str) -> dict[str, str]:
        return {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            KEY_ID_HEADER: self.key_id,
            RATED_AT_HEADER: repr(self.rated_at),
        }

    def body(self) -> bytes:
        return self.rating.model_dump_json(exclude_none=True).encode()


class RatingSpool(Protocol):
    """Where ratings wait while the feedback service is down (the request log's feedback sink)."""

    @property
    def reachable(self) -> bool: ...

    async def spool_rating(self, delivery: RatingDelivery) -> None: ...


async def post_rating(
    http: aiohttp.ClientSession,
    delivery: RatingDelivery,
    *,
    url: str,
    token: str,
    timeout: aiohttp.ClientTimeout | None = None,
    request_id: str | None = None,
) -> tuple[int, bytes]:
    """``POST {url}/v1/feedback``: the feedback service's status and body when it answers below 500."""
    headers = delivery.headers(token=token) | ({"x-request-id": request_id} if request_id else {})
    try:
        async with http.post(f"{url}/v1/feedback", data=delivery.body(), headers=headers, timeout=timeout) as reply:
            content = await reply.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise FeedbackUnreachable(describe_error(exc)) from exc
    if reply.status >= 500:
        raise FeedbackUnreachable(f"{reply.status}: {content[:200]!r}")
    return reply.status, content
