"""Builds a Qdrant Edge shard's index in a process of its own: ``python -m llmops_retriever.store.edge_build DIR PPID``.

``EdgeShard.optimize()`` holds the GIL until it is done (a minute for 100k points on 2 cores); run in the service's
own process it would stall every request. Here it works on a copy of the shard, at a lower CPU priority than
the service, and the service swaps the copy in when this exits 0.
"""

import ctypes
import os
import signal
import sys

from qdrant_edge import EdgeShard

_PR_SET_PDEATHSIG = 1


def main(path: str, parent_pid: int) -> int:
    if os.uname().sysname == "Linux":
        # If the service dies, so does this build: nobody would swap its result in.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        return 1  # the parent died before the line above took effect
    os.nice(10)  # searches and ingests in the service come first
    shard = EdgeShard.load(path)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
