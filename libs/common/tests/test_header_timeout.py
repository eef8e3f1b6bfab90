"""The request-head deadline subclasses uvicorn's httptools protocol (not a public API): only the pinned uvicorn.

Its behaviour is tested on the gateway's production server (services/gateway/tests/test_slow_clients.py).
"""

import inspect

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmops_common.header_timeout import PINNED_UVICORN, HeaderTimeoutProtocol


def test_uvicorn_is_the_version_the_protocol_was_written_for():
    assert uvicorn.__version__ == PINNED_UVICORN, (
        f"uvicorn {uvicorn.__version__}: re-read HttpToolsProtocol (connection_made, on_message_begin, "
        "on_headers_complete, connection_lost, cycle, loop, transport) and update llmops_common.header_timeout"
    )


def test_the_hooks_it_overrides_exist_with_the_same_parameters():
    for name in ("connection_made", "on_message_begin", "on_headers_complete", "connection_lost"):
        ours, theirs = getattr(HeaderTimeoutProtocol, name), getattr(HttpToolsProtocol, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name
