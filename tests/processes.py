"""Servers the slow tests start (a standalone cluster, a Spark Connect server): a free port on
127.0.0.1, and stopping each server's whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill(processes: Iterable[subprocess.Popen]) -> None:
    """SIGKILL to each process's group (the server and every child it started)."""
    for process in processes:
        os.killpg(process.pid, signal.SIGKILL)


def stop(processes: Iterable[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM to each process's group, then SIGKILL to a group still there after `timeout`."""
    processes = list(processes)
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
