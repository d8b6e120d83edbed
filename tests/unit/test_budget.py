"""The org's daily allowance: what a task may spend, what writing costs, how many rows fit."""

from __future__ import annotations

import pytest

from thrive_sync.core.budget import CALLS_PER_BULK_JOB, CALLS_SET_ASIDE, Budget, cost, read_budget

LIMITS = {"DailyApiRequests": {"Max": 15_000, "Remaining": 10_000},
          "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 14_000}}  # fmt: skip


def test_the_reserve_is_kept_for_the_other_integrations():
    budget = read_budget(LIMITS, 0.2)
    assert budget.calls == 10_000 - 3_000 - CALLS_SET_ASIDE
    assert budget.batches == 14_000 - 3_000
    assert budget.notes == ()


def test_an_allowance_at_or_below_the_reserve_leaves_nothing_and_says_so():
    budget = read_budget({**LIMITS, "DailyApiRequests": {"Max": 15_000, "Remaining": 2_900}}, 0.2)
    assert budget.calls == 0
    assert budget.notes == ("DailyApiRequests at or below the reserve (20% kept for the org's other integrations)",)
    assert budget.rows_that_fit(1_000_000, 2_000, 25_000) == 0


@pytest.mark.parametrize(
    "entry",
    [None, "15000", {"Max": 15_000}, {"Remaining": 5}, {"Max": "15000", "Remaining": 5}, {"Max": 10, "Remaining": -1},
     {"Max": 10, "Remaining": 11}, {"Max": True, "Remaining": 1}],
)  # fmt: skip
def test_a_counter_missing_or_unreadable_is_not_budgeted_and_said(entry):
    limits = {"DailyBulkApiBatches": LIMITS["DailyBulkApiBatches"]}
    if entry is not None:
        limits["DailyApiRequests"] = entry
    budget = read_budget(limits, 0.2)
    assert budget.calls is None and budget.batches == 11_000
    assert budget.notes == ("the org's /limits has no readable DailyApiRequests: not budgeted",)


def test_writing_costs_collections_calls_below_the_threshold_and_bulk_jobs_from_it():
    assert cost(0, 2_000, 25_000) == (0, 0)
    assert cost(1, 2_000, 25_000) == (1, 0)
    assert cost(1_999, 2_000, 25_000) == (10, 0)
    assert cost(2_000, 2_000, 25_000) == (CALLS_PER_BULK_JOB, 1)  # one job, the first: a fifth of 25,000
    assert cost(5_001, 2_000, 25_000) == (2 * CALLS_PER_BULK_JOB, 2)
    assert cost(1_000_000, 2_000, 25_000) == (41 * CALLS_PER_BULK_JOB, 1 + 39 * 3 + 2)  # 5,000 + 39 x 25,000 + 20,000


def test_the_rows_that_fit_are_the_most_whose_cost_is_within_the_budget():
    assert Budget(calls=10, batches=None).rows_that_fit(50_000, 2_000, 25_000) == 1_999
    assert Budget(calls=2 * CALLS_PER_BULK_JOB, batches=None).rows_that_fit(50_000, 2_000, 25_000) == 30_000
    assert Budget(calls=None, batches=3).rows_that_fit(50_000, 2_000, 25_000) == 25_000
    assert Budget(calls=None, batches=None).rows_that_fit(50_000, 2_000, 25_000) == 50_000
    assert Budget(calls=0, batches=0).rows_that_fit(50_000, 2_000, 25_000) == 0


def test_a_high_bulk_threshold_makes_collections_dearer_than_bulk_and_bulk_is_still_found():
    # 24 calls: Collections carry 4,800 records; Bulk from the threshold of 10,000 (two jobs) 30,000
    assert Budget(calls=2 * CALLS_PER_BULK_JOB, batches=None).rows_that_fit(8_000, 10_000, 25_000) == 4_800
    assert Budget(calls=2 * CALLS_PER_BULK_JOB, batches=None).rows_that_fit(50_000, 10_000, 25_000) == 30_000
    assert Budget(calls=CALLS_PER_BULK_JOB, batches=None).rows_that_fit(50_000, 10_000, 25_000) == 2_400
