"""The org's daily allowances: they count down with use, stay spent, and at zero refuse work.

As on an org (``GET /limits``): ``DailyApiRequests`` counts every API request; at zero every call
answers ``403 REQUEST_LIMIT_EXCEEDED`` until the allowance is raised (``PUT /__sandbox/limits``) or
the org is reset. ``DailyBulkApiBatches`` counts Bulk batches: a Bulk 2.0 job spends one per
10,000 records it processes (its internal batches), a Bulk 1.0 batch one; at zero a new Bulk job is
refused with ``403 REQUEST_LIMIT_EXCEEDED``. ``DataStorageMB`` is what the org's records take, 2 KB
each, of its maximum. A real org refills both daily allowances over a rolling 24 hours; here
nothing refills by itself (the stricter reading). What is left is saved in ``limits.json`` on every
change, so a restart of the sandbox does not hand out a fresh day.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

DEFAULTS: dict[str, int] = {
    "DailyApiRequests": 5_000_000,  # far above what a test spends, until a test sets less
    "DailyBulkApiBatches": 15_000,  # shared by Bulk 1.0 and 2.0, as on every org
    "DailyBulkV2QueryJobs": 10_000,
    "DataStorageMB": 10_240,  # an Enterprise org's base; what remains follows the records stored
}
# Not a daily allowance: its Remaining is the maximum less the records stored, at the size an org
# counts most records at (2 KB), whatever PUT sets it to.
STORAGE = "DataStorageMB"
RECORD_KB = 2


class LimitExceeded(Exception):  # noqa: N818 - named as the org names it
    """The allowance is spent."""


class DailyLimits:
    """``{name: [max, remaining]}``, thread-safe, saved to ``path`` after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.values = {name: [top, top] for name, top in DEFAULTS.items()}
        if path.exists():
            saved = json.loads(path.read_text())
            self.values.update({k: [int(v[0]), int(v[1])] for k, v in saved.items() if k in self.values})

    def spend(self, name: str, amount: int = 1, *, refuse: bool = True) -> int:
        """Take ``amount`` from ``name``; what remains. With ``refuse``, :class:`LimitExceeded` when
        none is left (the call is refused and spends nothing); work already done takes what is left."""
        with self.lock:
            entry = self.values[name]
            if refuse and entry[1] <= 0:
                raise LimitExceeded(name)
            entry[1] = max(0, entry[1] - amount)
            self._save()
            return entry[1]

    def remaining(self, name: str) -> int:
        with self.lock:
            return self.values[name][1]

    def used(self, name: str) -> int:
        with self.lock:
            top, left = self.values[name]
            return top - left

    def set(self, body: dict) -> dict[str, dict[str, int]]:
        """Set limits from a body shaped like ``/limits``' answer (``Max``, ``Remaining`` or both)."""
        with self.lock:
            for name, given in body.items():
                if name not in self.values or not isinstance(given, dict):
                    raise ValueError(f"unknown limit {name!r}: use one of {sorted(self.values)}")
                top = int(given.get("Max", self.values[name][0]))
                self.values[name] = [top, min(top, int(given.get("Remaining", top)))]
            self._save()
        return self.answer()

    def reset(self) -> None:
        with self.lock:
            self.values = {name: [top, top] for name, top in DEFAULTS.items()}
            self._save()

    def answer(self, records: int = 0) -> dict[str, dict[str, int]]:
        """The ``GET /limits`` body; ``records``: how many the org stores (its data storage used)."""
        with self.lock:
            body = {name: {"Max": top, "Remaining": left} for name, (top, left) in sorted(self.values.items())}
        top = body[STORAGE]["Max"]
        body[STORAGE]["Remaining"] = max(0, top - math.ceil(records * RECORD_KB / 1024))
        return body

    def _save(self) -> None:
        part = self.path.with_suffix(".part")
        part.write_text(json.dumps(self.values))
        os.replace(part, self.path)
