"""The sandbox's own Id code and the package's agree, so neither can hide the other's checksum bug.

The sandbox (tools/sf_sandbox/ids.py) was written apart from the package (thrive_sync.core.sfid) on
purpose; this checks the two against each other and against Salesforce's published vector. Fast: no
services, no psycopg or airflow.
"""

from __future__ import annotations

import ast
import random
import string
from pathlib import Path

import pytest

from sf_sandbox.ids import case_safe_suffix, is_valid_id, mint_ids, to_18_or_same
from thrive_dev.ids import compose_id15
from thrive_sync.core.sfid import checksum, id_problem, to_18

ID_CHARS = string.ascii_letters + string.digits


def random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ID_CHARS) for _ in range(15)) for _ in range(count)]


def every_case_pattern() -> list[str]:
    """One Id per upper/lower pattern of each chunk: all 32 values of every suffix position."""
    ids = []
    for bits in range(32):
        chunk = "".join("Q" if bits >> i & 1 else "q" for i in range(5))
        ids += [chunk + "00000" * 2, "00000" + chunk + "00000", "00000" * 2 + chunk]
    return ids


def test_published_vector():
    """Salesforce's documented example: 001A0000006Vm9r is 001A0000006Vm9rIAC."""
    assert case_safe_suffix("001A0000006Vm9r") == "IAC" == checksum("001A0000006Vm9r")
    assert to_18_or_same("001A0000006Vm9r") == "001A0000006Vm9rIAC" == to_18("001A0000006Vm9r")
    assert is_valid_id("001A0000006Vm9rIAC") and id_problem("001A0000006Vm9rIAC") is None


def test_every_suffix_value_at_every_position():
    patterns = every_case_pattern()
    assert {case_safe_suffix(i)[p] for i in patterns for p in range(3)} == set(string.ascii_uppercase + "012345")
    for id15 in patterns:
        assert case_safe_suffix(id15) == checksum(id15), id15


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agree_on_random_ids(seed):
    for id15 in random_ids(5_000, seed):
        suffix = checksum(id15)
        assert case_safe_suffix(id15) == suffix, id15
        assert to_18_or_same(id15) == to_18(id15) == id15 + suffix
        assert is_valid_id(id15 + suffix) and id_problem(id15 + suffix) is None


def test_agree_on_sample_and_minted_ids():
    sample = [compose_id15(p, pod, n) for p in ("003", "00Q", "001") for pod in ("5g", "9z", "7h") for n in range(500)]
    sample += [compose_id15("003", "Zz", 62**6 - 1), compose_id15("00Q", "AB", 62**5 + 7)]
    for id15 in sample:
        assert case_safe_suffix(id15) == checksum(id15), id15
    for prefix in ("003", "00Q", "a0B", "001"):
        for minted in mint_ids(prefix, "5T", 1, 300) + mint_ids(prefix, "5T", 10**10 - 3, 3):
            assert len(minted) == 18 and minted.startswith(prefix + "5T")
            assert id_problem(minted) is None and to_18(minted) == minted, minted


def test_agree_on_what_is_malformed():
    rng = random.Random(4)
    good = [i + checksum(i) for i in random_ids(2_000, 5)]
    wrong_suffix = []
    for id18 in good:
        other = id18[:15] + "".join(rng.choice(string.ascii_uppercase + "012345") for _ in range(3))
        if other != id18:
            wrong_suffix.append(other)
    odd = ["", "003", "00300000003T2P", "00300000003T2PGAA", "0030000-003T2PG", "00300000003T2PGAAA"]
    odd += ["00300000003T2Pé", "00300000003T2P ", "00300000003T2PGAA0X", "００300000003T2PG"]
    for value in good + wrong_suffix + odd:
        assert is_valid_id(value) is (id_problem(value) is None), value
    assert not any(is_valid_id(v) for v in wrong_suffix + odd)
    assert all(to_18_or_same(v) == v for v in odd)  # the sandbox leaves a malformed Id alone


def test_the_sandbox_imports_nothing_of_the_package():
    """No module of tools/sf_sandbox imports thrive_sync: its Id code is its own."""
    import sf_sandbox

    folder = Path(sf_sandbox.__file__).parent
    offenders = [
        f"{path.name}:{node.lineno}"
        for path in sorted(folder.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            name.split(".")[0] == "thrive_sync"
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        )
    ]
    assert len(list(folder.glob("*.py"))) >= 5 and offenders == []
