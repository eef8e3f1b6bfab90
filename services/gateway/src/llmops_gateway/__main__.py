"""``python -m llmops_gateway [--host H] [--port P] [--workers N]``: the gateway as production runs it."""

from llmops_common.serve import serve
from llmops_gateway.settings import GatewaySettings


def main() -> None:
    serve("llmops_gateway.app:create_app", GatewaySettings(), description=__doc__)


if __name__ == "__main__":
    main()
