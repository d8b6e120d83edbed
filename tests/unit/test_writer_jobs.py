"""How the writer cuts a stream of records into Bulk jobs (``SalesforceWriter._csv_jobs``): sizes, a
parent's records kept together, nothing read ahead but what the caller is told of. No service: the
cutting sends nothing."""

from __future__ import annotations

import csv
import io

from thrive_sync.sf_writer import NULL_MARKER, SalesforceWriter

HEADER = ["Thrive_Event_Id__c", "Contact__c", "Detail__c"]


def writer(job_rows: int, grouped: bool) -> SalesforceWriter:
    parents = ("Contact__c", "Lead__c") if grouped else ()
    return SalesforceWriter(None, "Thrive_Activity__c", "Thrive_Event_Id__c", bulk_job_rows=job_rows,  # type: ignore[arg-type]
                            parent_fields=parents)  # fmt: skip


def rows(parents: list[int]) -> list[tuple]:
    return [(f"e:{i}", f"003{p:012d}AAA", "x") for i, p in enumerate(parents)]


def cut(w: SalesforceWriter, stream: list[tuple]) -> tuple[list[list[str]], list, list]:
    marked: list = []
    ahead: list = []
    jobs = []
    for data, keys in w._csv_jobs(iter(stream), HEADER, marked, ahead):
        lines = list(csv.reader(io.StringIO(data.decode())))
        assert lines[0] == HEADER and [line[0] for line in lines[1:]] == keys
        jobs.append(keys)
    return jobs, marked, ahead


def test_ungrouped_jobs_have_their_sizes_and_read_nothing_ahead():
    stream = rows([0] * 23)
    consumed = iter(stream)
    jobs = []
    for _, keys in writer(10, grouped=False)._csv_jobs(consumed, HEADER, [], []):
        jobs.append(keys)
        if len(jobs) == 1:
            assert next(consumed) == stream[2]  # the first job (a fifth: 2 rows) read only its own rows
            break
    assert [len(k) for k in cut(writer(10, grouped=False), stream)[0]] == [2, 10, 10, 1]
    assert [len(k) for k in cut(writer(10, grouped=False), rows([0] * 12))[0]] == [2, 10]  # ends exactly at size


def test_a_parents_records_stay_in_one_job_and_the_row_read_ahead_is_told():
    parents = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4]
    w = writer(5, grouped=True)  # first job 1 row, then 5
    jobs, marked, ahead = cut(w, rows(parents))
    by_job = [{parents[int(k.split(":")[1])] for k in keys} for keys in jobs]
    assert all(not (a & b) for i, a in enumerate(by_job) for b in by_job[i + 1 :])  # no parent in two jobs
    assert sum(len(k) for k in jobs) == len(parents) and marked == [] and ahead == []
    # A caller that stops after the first job holds one row read ahead, and is told which.
    generator = w._csv_jobs(iter(rows(parents)), HEADER, [], told := [])
    first = next(generator)[1]
    assert first == ["e:0", "e:1", "e:2"] and told == [rows(parents)[3]]


def test_a_job_goes_past_its_size_only_to_the_end_of_the_orgs_internal_batch():
    w = writer(25_000, grouped=True)
    assert (w._room_past_size(5_000), w._room_past_size(25_000), w._room_past_size(20_000)) == (5_000, 5_000, 0)
    jobs, _, _ = cut(w, rows([7] * 40_000))  # one parent's 40,000 records
    assert [len(k) for k in jobs] == [10_000, 30_000]


def test_rows_with_the_null_marker_as_text_go_aside_wherever_they_fall():
    stream = rows([0, 0, 1, 1, 1])
    stream[2] = ("e:2", stream[2][1], NULL_MARKER)
    jobs, marked, ahead = cut(writer(5, grouped=True), stream)
    assert jobs == [["e:0", "e:1"], ["e:3", "e:4"]] and marked == [stream[2]] and ahead == []
