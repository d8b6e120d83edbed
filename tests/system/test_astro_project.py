"""The Astro project: what `astro dev start` builds from this folder is all here, agrees with itself, and parses.

No Docker engine runs on the development machines, so the image is not built. What is checked without one:

- every file the Dockerfile and the Astro CLI read exists;
- the Runtime tag of the Dockerfile ships the Airflow that requirements.txt pins, on a Python the tag offers;
- the Dockerfile's one change to Astro's install step (leaving out the apache-airflow pin) gets past the guard of
  Astro's default image, which refuses that pin, and drops nothing else;
- the project as the image holds it (this folder less .dockerignore, in /usr/local/airflow's place) has what the
  package reads and none of the local state; and in a fresh virtualenv holding requirements.txt alone, with the
  image's AIRFLOW_HOME and PYTHONPATH, its DAGs import cleanly and its plugin loads: `astro dev parse`, through the
  very file that command runs (.astro/test_dag_integrity_default.py, called by astro_parse_probe.py).

The virtualenv's packages come from a wheelhouse in the user's cache folder (~/.cache/thrive-tracking-sync), one
per requirements.txt: pip's own cache stays empty on these machines (pip wrote nothing to it, download after
download), so without it every run would fetch some 100 MB again. The time it takes is printed in the measurements
section; an old requirements.txt's wheelhouse is not removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MEASUREMENTS, PROJECT_ROOT

VENV_PYTHON = "python3.11"  # the suite's Python; the image runs the Dockerfile's (3.12), see the Dockerfile
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
PROBE = Path(__file__).with_name("astro_parse_probe.py")
FROM_RUNTIME = re.compile(
    r"^FROM astrocrpublic\.azurecr\.io/runtime:"
    r"(?P<runtime>\d+\.\d+-\d+)(?:-python-(?P<python>\d+\.\d+))?(?P<base>-base)?$",
    re.MULTILINE,
)
# Astro Runtime 3 tags are <Airflow major.minor>-<Astronomer's build number>: the build number says nothing of
# Airflow's patch release, so which Airflow (and which Pythons) a tag ships is looked up and kept here. Source:
# Astronomer's runtime catalog (updates.astronomer.io/astronomer-runtime: airflowVersion, pythonVersions) as cut
# on 2026-09-25 into the Astro CLI's pkg/runtimeversions/testdata/catalog.json; 3.3-7 as its image's label
# io.astronomer.docker.airflow.version reads (3.3.1+astro.4). A new tag in the Dockerfile needs its row here.
RUNTIME_AIRFLOW: dict[str, tuple[str, tuple[str, ...]]] = {
    "3.3-1": ("3.3.0", ("3.12", "3.13", "3.14")),
    "3.3-2": ("3.3.0", ("3.12", "3.13", "3.14")),
    "3.3-7": ("3.3.1", ("3.12", "3.13", "3.14")),
    "3.3-8": ("3.3.2", ("3.12", "3.13", "3.14")),
}
# The default Astro image's install step refuses a requirements.txt with a line matching this (grep -Eqx): the
# image's Airflow is Astronomer's build, and a pin would let pip replace it.
ASTRO_AIRFLOW_GUARD = r"apache-airflow\s*[=~>]{1,2}.*"
# What the image must hold for the package to run, and what local state it must not.
IMAGE_NEEDS = [
    "dags/thrive_tracking_sync.py",
    "plugins/thrive_sync_plugin.py",
    "plugins/.airflowignore",
    "plugins/thrive_sync/settings.py",
    "include/sql/extract/stage.sql",
    "include/mapping/thrive_activity.yaml",
    "requirements.txt",
    ".astro/test_dag_integrity_default.py",
]
IMAGE_LEAVES_OUT = [".venv", ".local", "test-output", ".git", ".pytest_cache", ".ruff_cache", "airflow_settings.yaml"]


def _base_image() -> re.Match[str]:
    match = FROM_RUNTIME.search((PROJECT_ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile's FROM is not an Astro Runtime 3 image (astrocrpublic.azurecr.io/runtime:X.Y-N)"
    return match


def _airflow_pin() -> str:
    match = re.search(r"^apache-airflow==(\S+)\s*$", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, "requirements.txt pins no apache-airflow"
    return match.group(1)


def test_the_runtime_tag_ships_the_airflow_of_requirements_txt() -> None:
    base = _base_image()
    runtime = base["runtime"]
    assert runtime in RUNTIME_AIRFLOW, f"Runtime {runtime}: add its Airflow and Pythons to RUNTIME_AIRFLOW"
    airflow, pythons = RUNTIME_AIRFLOW[runtime]
    pin = _airflow_pin()
    assert airflow == pin, f"Runtime {runtime} ships Airflow {airflow}, requirements.txt pins {pin}"
    assert base["python"] in pythons, f"Runtime {runtime} comes with Python {', '.join(pythons)}"
    assert base["base"], "the Dockerfile writes out the ONBUILD steps: its image must be the -base flavour"


def test_every_file_the_dockerfile_and_the_astro_cli_read_exists() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    copied = {m for m in re.findall(r"^COPY (?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE) if m != "."}
    assert copied == {"packages.txt", "requirements.txt"}, copied
    astro_cli_reads = {"Dockerfile", ".dockerignore", "airflow_settings.yaml", ".astro/config.yaml"}
    parse_reads = {".astro/test_dag_integrity_default.py", ".astro/dag_integrity_exceptions.txt"}
    mounted = {"dags", "plugins", "include", "tests"}  # bind-mounted into the containers by `astro dev start`
    missing = sorted(p for p in copied | astro_cli_reads | parse_reads | mounted if not (PROJECT_ROOT / p).exists())
    assert missing == []
    assert re.search(r"^project:\n  name: [a-z0-9-]+$", (PROJECT_ROOT / ".astro/config.yaml").read_text(), re.MULTILINE)


def test_the_dockerfile_installs_requirements_txt_past_astros_guard(tmp_path: Path) -> None:
    """The Dockerfile's own sed, run on a copy: the guard that refuses requirements.txt passes what it leaves."""
    expression = re.search(r"sed -i -E '([^']+)' requirements\.txt", (PROJECT_ROOT / "Dockerfile").read_text())
    assert expression, "the Dockerfile no longer filters requirements.txt with sed -i -E '...'"
    copy = tmp_path / "requirements.txt"
    shutil.copy(REQUIREMENTS, copy)

    def guard_refuses() -> bool:
        return subprocess.run(["grep", "-Eqx", ASTRO_AIRFLOW_GUARD, str(copy)], check=False).returncode == 0

    assert guard_refuses(), "requirements.txt no longer pins apache-airflow: the Dockerfile's filter has no use"
    subprocess.run(["sed", "-i", "-E", expression.group(1), str(copy)], check=True)
    assert not guard_refuses()
    dropped = set(REQUIREMENTS.read_text().splitlines()) - set(copy.read_text().splitlines())
    assert dropped == {f"apache-airflow=={_airflow_pin()}"}


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore's patterns, in order, as (is an exception "!", regex over a path from the project root)."""
    patterns = []
    for raw in (PROJECT_ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, re.compile(_glob_regex(line.lstrip("!").strip("/")))))
    return patterns


def _glob_regex(glob: str) -> str:
    """Docker's matching: `**/` any folders (or none), `**` anything, `*` and `?` within one path segment."""
    tokens = re.split(r"(\*\*/|\*\*|\*|\?)", glob)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(table.get(token, re.escape(token)) for token in tokens)


def _ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """The last pattern matching the path, or a folder it is in, decides (an excluded folder takes its content)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def image_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context as `COPY . .` puts it in /usr/local/airflow: this folder less .dockerignore."""
    home = tmp_path_factory.mktemp("usr-local") / "airflow"
    patterns = _dockerignore()
    prune = not any(negated for negated, _ in patterns)  # an "!" exception may reach into an excluded folder
    for folder, subfolders, files in os.walk(PROJECT_ROOT):
        relative = Path(folder).relative_to(PROJECT_ROOT)
        if prune:
            subfolders[:] = [d for d in subfolders if not _ignored((relative / d).as_posix(), patterns)]
        for name in files:
            if not _ignored((relative / name).as_posix(), patterns):
                (home / relative).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, home / relative / name)
    return home


def test_the_image_holds_the_package_and_no_local_state(image_home: Path) -> None:
    assert [p for p in IMAGE_NEEDS if not (image_home / p).is_file()] == []
    assert [p for p in IMAGE_LEAVES_OUT if (image_home / p).exists()] == []
    assert list(image_home.rglob("__pycache__")) == []


def _wheelhouse(python: Path) -> tuple[Path, float]:
    """A folder holding every wheel requirements.txt resolves to for this Python, and the seconds spent filling it.

    Keyed by requirements.txt, so a changed pin gets a new folder. Filled in a folder of its own, then renamed:
    no run ever installs from a half-filled wheelhouse.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "thrive-tracking-sync" / "wheelhouse"
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + f"{VENV_PYTHON} {platform.machine()}".encode()).hexdigest()
    wheelhouse = cache / key[:16]
    if wheelhouse.is_dir():
        return wheelhouse, 0.0
    filling = cache / f"{key[:16]}.filling-{os.getpid()}"
    started = time.perf_counter()
    try:
        _pip(python, "download", "-r", str(REQUIREMENTS), "-d", str(filling))
        filling.replace(wheelhouse)
    finally:
        shutil.rmtree(filling, ignore_errors=True)  # gone after the rename; a failed download's leftovers
    return wheelhouse, time.perf_counter() - started


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", *args, "--disable-pip-version-check", "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"pip {args[0]}:\n{(result.stdout + result.stderr)[-3000:]}"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with requirements.txt and nothing else: no test tool, not this repository on its path."""
    interpreter = shutil.which(VENV_PYTHON)
    assert interpreter, f"{VENV_PYTHON} not found: the project's Python"
    venv = tmp_path_factory.mktemp("astro-venv") / "venv"
    started = time.perf_counter()
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    wheelhouse, download = _wheelhouse(python)
    installing = time.perf_counter()
    _pip(python, "install", "--no-compile", "--no-index", "--find-links", str(wheelhouse), "-r", str(REQUIREMENTS))
    done = time.perf_counter()
    MEASUREMENTS["Astro parse: fresh venv from requirements.txt"] = (
        f"{done - started:.0f} s (install {done - installing:.0f} s, "
        + (f"download {download:.0f} s" if download else "wheelhouse reused")
        + ")"
    )
    return python


@pytest.fixture(scope="module")
def parse_report(venv_python: Path, image_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What astro_parse_probe.py saw, run in the fresh virtualenv from the image's folder with the image's paths."""
    out = tmp_path_factory.mktemp("astro-parse") / "report.json"
    env = {
        "PATH": f"{venv_python.parent}:/usr/bin:/bin",
        "HOME": str(out.parent),
        "LANG": "C.UTF-8",
        "AIRFLOW_HOME": str(image_home),
        "PYTHONPATH": str(image_home),  # the Runtime image's ENV PYTHONPATH=$AIRFLOW_HOME; plugins/ Airflow adds
        "AIRFLOW__CORE__DAGS_FOLDER": str(image_home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(image_home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",  # as `astro dev start` sets it
    }
    started = time.perf_counter()
    result = subprocess.run(
        # -P: the probe's own folder (this repository's tests/system) stays off sys.path
        [str(venv_python), "-P", str(PROBE), str(out)],
        cwd=image_home,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    MEASUREMENTS["Astro parse: DAGs and plugin in the fresh venv"] = f"{time.perf_counter() - started:.1f} s"
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return json.loads(out.read_text())


def test_astro_parse_the_dags_import_cleanly_in_a_fresh_venv(parse_report: dict) -> None:
    assert parse_report["airflow"] == _airflow_pin()
    assert parse_report["import_errors"] == {}
    assert {"thrive_tracking_sync", "thrive_tracking_sync_setup", "thrive_tracking_retention"} <= set(
        parse_report["dag_ids"]
    )
    assert parse_report["integrity_tests"] == {
        "test_no_dag_file_has_an_import_error": "passed",
        "test_every_dag_of_the_package_is_found": "passed",
    }


def test_astro_parse_the_package_reads_the_images_copy(parse_report: dict, image_home: Path) -> None:
    """The plugin loads, and thrive_sync, its SQL and mapping come from /usr/local/airflow, never this repository."""
    assert parse_report["plugin_errors"] == {} and parse_report["plugin_loaded"]
    home = image_home.resolve()
    assert parse_report["thrive_sync"] == str(home / "plugins" / "thrive_sync" / "__init__.py")
    assert parse_report["sql_dir"] == str(home / "include" / "sql") and parse_report["sql_files"] > 0
    assert parse_report["mapping"] == str(home / "include" / "mapping" / "thrive_activity.yaml")
    assert str(image_home / "plugins") in parse_report["sys_path"]
    assert [p for p in parse_report["sys_path"] if p.startswith(str(PROJECT_ROOT))] == []
