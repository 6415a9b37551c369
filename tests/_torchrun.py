"""Launch a test script as several real CPU processes (torchrun, gloo): the one launcher of the multi-process tests.

The script learns its rank from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, or
through accelerate) and usually writes ``rank<k>.json`` for the test to read back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the rendezvous port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_torchrun(script: Path, *, nproc: int = 2, timeout: float = 300, stderr_tail: int = 3000) -> subprocess.CompletedProcess:
    """Run ``script`` under ``python -m torch.distributed.run`` with ``nproc`` processes on this host.

    Each process gets ``OMP_NUM_THREADS=1``; the rendezvous is on 127.0.0.1 at a free port.  A
    non-zero exit fails the test with the last ``stderr_tail`` characters of stderr; the finished
    process (output captured as text) is returned for further checks.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-stderr_tail:]
    return proc
