"""The parts a category's run is split into: one per Salesforce org, a large day of one org in shards.

The extract lists them (``extract/stage.sql``: one org per connection its accounts name, and
``ceil(events / shard_rows)`` shards, at most ``max_shards``); each becomes one mapped instance of the
category's validate-and-map task. A row's shard is a hash of its Custom Member ID
(``thrive_sync.shard_of``): a Contact's or Lead's rows stay in one shard, so shards writing side by
side never wait for each other's parent locks. An org's trouble then fails only its own instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Part:
    """One instance's share of a category's run: the rows of the accounts whose connection is
    ``conn_id``, and of those the ones in shard ``shard`` of ``shards``."""

    conn_id: str
    shard: int = 0
    shards: int = 1

    def __post_init__(self) -> None:
        if not self.conn_id:
            raise ValueError("a part names its Salesforce connection")
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} is not one of 0..{self.shards - 1}")

    @property
    def label(self) -> str:
        """How the UI names the instance: the connection, and the shard when the org's day is split."""
        return self.conn_id if self.shards == 1 else f"{self.conn_id} {self.shard + 1}/{self.shards}"


def part_kwargs(row: Sequence[Any]) -> dict[str, Any]:
    """One row the extract returns, ``(conn_id, shard, shards)``, as the mapped instance's arguments."""
    conn_id, shard, shards = row
    return {"salesforce_conn_id": conn_id, "shard": int(shard), "shards": int(shards)}


def part_labels(rows: Sequence[Sequence[Any]] | None) -> list[str]:
    """The instances' names, by map index, from the rows the extract returned."""
    return [Part(*part_kwargs(row).values()).label for row in rows or ()]
