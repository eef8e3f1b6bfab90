"""Ratings sent to the gateway with a client's key, forwarded to the feedback service with the gateway's token."""

import aiohttp

from llmops_gateway.feedback.delivery import RatingDelivery, RatingSpool, post_rating


class RatingsForwarder:
    """Sends ratings now; ``spool`` (None: no request log goes to the feedback service) keeps them while it is
    down."""

    def __init__(
        self, http: aiohttp.ClientSession, *, url: str, token: str, timeout_s: float, spool: RatingSpool | None
    ) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.spool = spool

    async def send(self, delivery: RatingDelivery, *, request_id: str) -> tuple[int, bytes]:
        """The feedback service's status and body (it scopes the rating to the key's requests); raises
        ``FeedbackUnreachable``."""
        return await post_rating(
            self._http, delivery, url=self._url, token=self._token, timeout=self._timeout, request_id=request_id
        )
