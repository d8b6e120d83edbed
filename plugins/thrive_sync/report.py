"""The run report: what a run found, per category and account, as a table a person can read.

At this stage a run counts the events in its window; the validate-and-map issue adds written,
failed and skipped columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def format_counts(
    window: tuple[str, str],
    counts: Mapping[str, Sequence[tuple[str, int]]],
    gates: Mapping[str, Mapping[str, str | None]],
) -> str:
    """A fixed-width table: one line per category and account, then a total per category.

    ``counts`` maps each category to ``[(account_id, events), ...]`` as the extract queries return
    them; ``gates`` is :func:`thrive_sync.gates.gate_summary`'s output.
    """
    lines = [
        f"Thrive tracking in window {window[0]} -> {window[1]}",
        f"{'category':<22}{'account':<14}{'events':>10}  gate",
    ]
    for category, rows in counts.items():
        total = 0
        for account_id, events in rows:
            gate = gates.get(account_id, {}).get(category) or "open"
            lines.append(f"{category:<22}{account_id:<14}{events:>10,}  {gate}")
            total += events
        lines.append(f"{category:<22}{'(all)':<14}{total:>10,}")
    return "\n".join(lines)
