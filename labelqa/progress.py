"""One log line per stage of a run: what it did, how many rows, how long it took."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("labelqa")

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """`s3a://KEY:SECRET@bucket/x` -> `s3a://*****@bucket/x`: paths never leak credentials."""
    return _USERINFO.sub("*****@", text)


class StageLog:
    """`with stages.stage("join") as info: ...; info["rows"] = n` logs
    `stage join: 1,000 rows, 2.3 s`."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[dict]:
        info: dict = {}
        start = self._clock()
        try:
            yield info
        finally:
            elapsed = self._clock() - start
            self.timings[name] = round(elapsed, 3)
            rows = f"{info['rows']:,} rows, " if "rows" in info else ""
            extra = f" ({info['note']})" if "note" in info else ""
            log.info("stage %s: %s%.1f s%s", name, rows, elapsed, extra)
