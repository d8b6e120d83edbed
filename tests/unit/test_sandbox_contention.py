"""The sandbox's parent locks: a write waits for a parent another holds, then its rows fail.

The sandbox stands in for an org, so its contention model is tested like package code: a model
that never blocks would let a writer that ignores parents pass. Fast: threads, no services.
"""

from __future__ import annotations

import threading
import time

from sf_sandbox.contention import ParentLocks, locked_columns, parents_of
from sf_sandbox.orgschema import Field, SObject

CONTACT_A, CONTACT_B = "003000000000001AAA", "003000000000002AAA"


def test_a_parent_held_longer_than_the_wait_is_refused_and_a_free_one_is_taken():
    locks = ParentLocks()
    with locks.holding({CONTACT_A[:15]}, 1.0) as refused:
        assert refused == frozenset()
        started = time.monotonic()
        with locks.holding({CONTACT_A[:15], CONTACT_B[:15]}, 0.2) as second:
            waited = time.monotonic() - started
            assert second == {CONTACT_A[:15]}  # B was free: taken; A stayed held for the whole wait
            assert locks.held[CONTACT_B[:15]] is not locks.held[CONTACT_A[:15]]
        assert 0.2 <= waited < 1.0
    assert locks.held == {}  # both holders let go of what they took, and only that


def test_a_parent_freed_during_the_wait_is_taken():
    locks = ParentLocks()
    first_holds = threading.Event()

    def first() -> None:
        with locks.holding({CONTACT_A[:15]}, 1.0):
            first_holds.set()
            time.sleep(0.1)

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait()
    with locks.holding({CONTACT_A[:15]}, 2.0) as refused:
        assert refused == frozenset()
    thread.join()


def test_no_wait_means_no_contention_modelled():
    locks = ParentLocks()
    with locks.holding({CONTACT_A[:15]}, 0.0) as refused:
        assert refused == frozenset() and locks.held == {}


def test_the_parents_are_the_lookups_values_as_15_character_ids():
    activity = SObject("Thrive_Activity__c", "a00")
    activity.add(Field("Contact__c", "reference", 18, reference_to=("Contact",)))
    activity.add(Field("Lead__c", "reference", 18, reference_to=("Lead",)))
    activity.add(Field("Detail__c", "text", 255))
    activity.add(Field("Id", "id", 18))
    header = ["Detail__c", "contact__c", "Lead__c"]
    columns = locked_columns(activity, header)
    assert columns == [1, 2]  # field names are case-insensitive, as on an org
    assert locked_columns(activity, ["Id", "Detail__c"]) == [0]  # an update locks the record itself
    rows = [["x", CONTACT_A, ""], ["y", CONTACT_A[:15], "#N/A"], ["z", "", CONTACT_B]]
    assert parents_of(rows, columns) == {CONTACT_A[:15], CONTACT_B[:15]}
