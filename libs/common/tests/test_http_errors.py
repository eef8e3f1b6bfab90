"""How an HTTP client error is told in a log line: never with the headers of the request it answered."""

import secrets

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from llmops_common.http import describe_error


def test_an_answer_error_is_told_without_the_request_headers_it_holds():
    token = secrets.token_urlsafe(24)
    url = URL("http://feedback:8004/v1/requests")
    headers = CIMultiDictProxy(CIMultiDict({"authorization": f"Bearer {token}"}))
    request = aiohttp.RequestInfo(url, "POST", headers, url)
    raised = aiohttp.ClientResponseError(request, (), status=401, message="Unauthorized")
    assert token in repr(raised)  # what a log line of repr(exc) would have held
    assert describe_error(raised) == "ClientResponseError(status=401, message='Unauthorized')"
    refused = aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey(
        "feedback", 8004, False, True, None, None, None), ConnectionRefusedError(111, "refused"))  # fmt: skip
    assert describe_error(refused) == repr(refused)  # the others carry no request: told as they are
