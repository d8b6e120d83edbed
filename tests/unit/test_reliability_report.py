"""docs/reliability.md from a session's results: failing cases show as failed, missing ones as not run.

No services: ``reliability_report`` is the standard library only, and these tests feed it results by
hand (never its module-level dicts, which a whole-suite run fills from the system tests).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import reliability_report as rr
from reliability_report import CaseResult, ConfigResult, Outcome, Results

ROOT = Path(__file__).resolve().parents[2]
S = "tests/system/"


def fault(case: str, **changes) -> CaseResult:
    values = dict(
        case=case,
        fault=f"the {case} fault",
        first_run="succeeded, fully written",
        airflow_retries=0,
        retries_exhausted=0,
        rerun="converged",
        same_state=True,
        conservation=True,
        spurious_log_rows=0,
    )
    return CaseResult(**{**values, **changes})


def config(case: str, **changes) -> ConfigResult:
    values = dict(
        case=case,
        failed_task="check_accounts",
        tries=1,
        seconds=9.71,
        records_sent=0,
        message="AirflowFailException: the connection | is not defined",
    )
    return ConfigResult(**{**values, **changes})


def all_green() -> Results:
    results = Results()
    for case, test in rr.EXPECTED_FAULTS.items():
        results.faults[case] = fault(case)
        results.outcomes[test] = Outcome("passed")
    for case, test in rr.EXPECTED_CONFIG.items():
        results.config[case] = config(case)
        results.outcomes[test] = Outcome("passed")
    for title, module in rr.EXPECTED_OTHER.items():
        results.other[title] = [f"{title} measured."]
        results.outcomes[f"{module}::test_one"] = Outcome("passed")
        results.outcomes[f"{module}::test_two"] = Outcome("passed")
    return results


def row(text: str, case: str) -> str:
    """The table row of ``case`` (its first cell starts with the case name)."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {case} |") or line.startswith(f"| {case} (")]
    assert len(rows) == 1, (case, rows)
    return rows[0]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_importing_the_module_starts_nothing():
    code = (
        "import sys; import reliability_report; "
        "loaded = sorted(m for m in ('psycopg', 'airflow', 'pytest', 'conftest', 'dag_runs', 'thrive_dev') "
        "if m in sys.modules); print(loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "tests" / "system", capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_an_all_green_run_keeps_the_document_shape():
    text = rr.render(all_green())
    assert "Not a complete passing run" not in text and "test failed" not in text and "not run" not in text
    assert (
        "| case | fault | first run | Airflow task retries | `RETRIES_EXHAUSTED` rows | rerun "
        "| final state = fault-free | conservation | spurious log rows |\n|---|---|---|---:|---:|---|---|---|---:|\n"
        "| 503 | the 503 fault | succeeded, fully written | 0 | 0 | converged | yes | holds | 0 |\n"
    ) in text
    assert (
        "| case | failed | tries | seconds | records sent | message |\n|---|---|---:|---:|---:|---|\n"
        "| no Salesforce connection | check_accounts | 1 | 9.7 | 0 | "
        "AirflowFailException: the connection \\| is not defined |\n"
    ) in text
    assert "\n## Hostile input\n\nHostile input measured.\n\n## Secrets\n\nSecrets measured.\n" in text
    # the rows keep the document's order, whatever order the tests recorded them in
    order = [line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ") and " | " in line]
    assert order[1 : 1 + len(rr.EXPECTED_FAULTS)] == list(rr.EXPECTED_FAULTS)
    assert rr.summary(all_green()) == f"{len(rr.EXPECTED_FAULTS) + len(rr.EXPECTED_CONFIG) + 2} passed"


def test_failing_and_missing_cases_show_as_failed_and_not_run():
    results = all_green()
    # 503 measured, then its asserts failed: its verdicts say what was measured
    results.faults["503"] = fault(
        "503", rerun="DIFFERENT", same_state=False, conservation=False, spurious_log_rows=7, notes=["first run: `x`"]
    )
    results.outcomes[rr.EXPECTED_FAULTS["503"]] = Outcome("failed", "AssertionError: 503: Salesforce differs")
    # 403 bursts failed before it measured anything (e.g. the reference run failed)
    del results.faults["403 bursts"]
    results.outcomes[rr.EXPECTED_FAULTS["403 bursts"]] = Outcome("failed", "in setup: RuntimeError: no sandbox")
    # kill never ran (-k, -x, an interrupted session)
    del results.faults["kill"]
    del results.outcomes[rr.EXPECTED_FAULTS["kill"]]
    # a configuration case that sent records
    results.config["wrong Salesforce password"] = config(
        "wrong Salesforce password", tries=4, records_sent=120, notes=["3 tracking-log row(s) written"]
    )
    results.outcomes[rr.EXPECTED_CONFIG["wrong Salesforce password"]] = Outcome("failed", "assert 120 == 0")
    del results.config["bad param value"]
    del results.outcomes[rr.EXPECTED_CONFIG["bad param value"]]
    # one test of the secrets module failed; hostile input never ran
    results.outcomes[S + "test_secrets.py::test_two"] = Outcome("failed", "assert [('x', 'y')] == []")
    del results.other["Hostile input"]
    results.outcomes = {k: v for k, v in results.outcomes.items() if "test_hostile_input" not in k}

    text = rr.render(results)

    assert cells(row(text, "503")) == [
        "503 (**test failed**)", "the 503 fault", "succeeded, fully written", "0", "0", "DIFFERENT", "NO", "BROKEN", "7"
    ]  # fmt: skip
    assert "- **503**: first run: `x`\n- **503**: test failed: `AssertionError: 503: Salesforce differs`" in text
    assert cells(row(text, "403 bursts")) == [
        "403 bursts (**test failed**)", "—", "failed before it measured anything", "—", "—", "—", "—", "—", "—"
    ]  # fmt: skip
    assert "- **403 bursts**: test failed: `in setup: RuntimeError: no sandbox`" in text
    assert cells(row(text, "kill")) == ["kill", "—", "not run", "—", "—", "—", "—", "—", "—"]
    assert cells(row(text, "row locks"))[0] == "row locks"  # the passing rows stay as they were

    assert cells(row(text, "wrong Salesforce password"))[:5] == [
        "wrong Salesforce password (**test failed**)", "check_accounts", "4", "9.7", "120"
    ]  # fmt: skip
    assert "- **wrong Salesforce password**: 3 tracking-log row(s) written" in text
    assert "- **wrong Salesforce password**: test failed: `assert 120 == 0`" in text
    assert cells(row(text, "bad param value")) == ["bad param value", "not run", "—", "—", "—", "—"]

    assert "## Hostile input\n\nNot run.\n" in text
    assert (
        "## Secrets\n\n- **test failed**: `test_secrets.py::test_two: assert [('x', 'y')] == []`\n\nSecrets measured."
    ) in text
    assert (
        "**Not a complete passing run.** failed: 503, 403 bursts, wrong Salesforce password, Secrets; "
        "not run: kill, bad param value, Hostile input." in text
    )
    assert (
        rr.summary(results)
        == f"{len(rr.EXPECTED_FAULTS) + len(rr.EXPECTED_CONFIG) + 2 - 7} passed, 4 failed, 3 not run"
    )


def test_a_section_whose_measuring_test_did_not_run_is_not_run():
    """Only test_sql_is_parameterised ran: the secrets search never reported, so the section is not run."""
    results = Results(outcomes={S + "test_secrets.py::test_sql_is_parameterised": Outcome("passed")})
    assert "## Secrets\n\nNot run.\n" in rr.render(results)


def test_a_case_no_test_claims_is_not_shown_as_passed():
    results = Results(faults={"new case": fault("new case")})
    text = rr.render(results)
    assert cells(row(text, "new case"))[0] == "new case (**test outcome unknown**)"
    assert cells(row(text, "503")) == ["503", "—", "not run", "—", "—", "—", "—", "—", "—"]


def test_outcomes_from_pytest_reports():
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message="AssertionError: boom\nmore"))

    def report(nodeid, when, outcome, longrepr=None):
        return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, longrepr=longrepr)

    reports = [
        report("m.py::a", "setup", "passed"),
        report("m.py::a", "call", "passed"),
        report("m.py::a", "teardown", "failed", crash),  # a failed teardown fails the test
        report("m.py::b", "setup", "passed"),
        report("m.py::b", "call", "failed", crash),
        report("m.py::b", "teardown", "passed"),
        report("m.py::c", "setup", "skipped", ("m.py", 1, "Skipped: no")),
        report("m.py::d", "setup", "passed"),
        report("m.py::d", "call", "passed"),
        report("m.py::d", "teardown", "passed"),
        report("broken.py", None, "failed", "ImportError: no module named x"),  # a collection error
        SimpleNamespace(message="a warning record"),
    ]
    outcomes = rr.outcomes_from_reports(reports)
    assert outcomes == {
        "m.py::a": Outcome("failed", "in teardown: AssertionError: boom"),
        "m.py::b": Outcome("failed", "AssertionError: boom"),
        "m.py::c": Outcome("skipped"),
        "m.py::d": Outcome("passed"),
        "broken.py": Outcome("failed", "ImportError: no module named x"),
    }
    # a collection error fails every test of its module; a module-wide section fails with any of its tests
    assert rr.status_of("broken.py::test_x[1]", outcomes) == ("failed", ["broken.py: ImportError: no module named x"])
    assert rr.status_of("m.py", outcomes)[0] == "failed"
    assert rr.status_of("m.py::d", outcomes) == ("passed", [])
    assert rr.status_of("m.py::c", outcomes) == ("skipped", [])
    assert rr.status_of("m.py::d[1]", outcomes) == ("not run", [])  # no prefix match across a parameter


def test_results_survive_the_json_file_and_main_renders_them(tmp_path, capsys):
    results = all_green()
    results.faults["503"].notes = ["a note with `code` and ünïcode"]
    results.outcomes[rr.EXPECTED_FAULTS["kill"]] = Outcome("failed", "boom")
    path = rr.save(results, tmp_path / "out" / "reliability.json")
    assert Results.from_json(path.read_text()) == results
    assert results.ran_any() and not Results().ran_any()
    assert Results(outcomes={S + "test_secrets.py::test_sql_is_parameterised": Outcome("passed")}).ran_any()
    assert not Results(outcomes={S + "test_dag.py::test_x": Outcome("passed")}).ran_any()

    out = tmp_path / "reliability.md"
    assert rr.main(["--results", str(path), "--out", str(out)]) == 0
    assert out.read_text() == rr.render(results)
    assert "1 failed" in capsys.readouterr().out
    assert rr.main(["--results", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.md")]) == 1
    assert not (tmp_path / "x.md").exists()


def _functions_and_keys(module: str) -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse((ROOT / S / module).read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    keys = {
        target.id: {k.value for k in n.value.keys if isinstance(k, ast.Constant)}
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
        for target in n.targets
        if isinstance(target, ast.Name)
    }
    return functions, keys


def test_every_expected_case_names_a_test_that_exists():
    """A renamed test or case would otherwise leave its row "not run" for ever."""
    for case, test in {**rr.EXPECTED_FAULTS, **rr.EXPECTED_CONFIG}.items():
        module, name = test.removeprefix(S).split("::")
        functions, keys = _functions_and_keys(module)
        function, _, param = name.partition("[")
        assert function in functions, test
        if param:
            assert param.rstrip("]") == case and case in keys.get("MATRIX", set()) | keys.get("CASES", set()), test
    for module in rr.EXPECTED_OTHER.values():
        assert (ROOT / module).is_file(), module


def test_a_workers_results_merge_into_the_sessions(monkeypatch):
    """Under pytest-xdist each worker measures its own cases; the controller adds them up (through JSON)."""
    for name in ("FAULTS", "CONFIG", "OTHER", "SETUP"):
        monkeypatch.setattr(rr, name, {})
    rr.FAULTS["503"] = fault("503")
    worker = Results(faults={"kill": fault("kill")}, config={"bad param value": config("bad param value")},
                     other={"Secrets": ["none leaked"]})  # fmt: skip
    rr.merge(Results.from_json(worker.to_json()))
    assert sorted(rr.FAULTS) == ["503", "kill"] and rr.FAULTS["kill"] == fault("kill")
    assert rr.CONFIG == {"bad param value": config("bad param value")}
    assert rr.OTHER == {"Secrets": ["none leaked"]} and "matrix" not in rr.SETUP
