"""The gateway with aiohttp as its upstream client (bench/aiohttp_upstream.py), for the gateway benchmark.

    python bench/gateway_aiohttp.py --port 8100

The app factory builds its upstream client by the name ``llmops_gateway.app.UpstreamClient``; this sets that
name, then runs the gateway exactly as ``python -m llmops_gateway`` does. One worker only: uvicorn's worker
processes would import the app afresh, without the swap.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from aiohttp_upstream import AiohttpUpstreamClient

import llmops_gateway.app
from llmops_gateway.__main__ import main

if __name__ == "__main__":
    if "--workers" in sys.argv and sys.argv[sys.argv.index("--workers") + 1] != "1":
        raise SystemExit("gateway_aiohttp runs one worker")
    llmops_gateway.app.UpstreamClient = AiohttpUpstreamClient
    main()
