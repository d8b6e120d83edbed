"""What the system tests measured: figures, not assertions, printed at the end of the run.

A plain module, so that ``tests/conftest.py`` (which prints them, and under pytest-xdist gathers
them from the workers) and the tests (``from conftest import MEASUREMENTS``) share one dict.
"""

from __future__ import annotations

MEASUREMENTS: dict[str, str] = {}
