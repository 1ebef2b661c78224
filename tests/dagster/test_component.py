"""OrchestratorComponent: listed by ``dg``, configured by a ``defs.yaml``, checked by
``dg check defs`` and materialising through a real ``dg`` project."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

import core
from orchestrator_dagster import OrchestratorComponent, OrchestratorResource, VersionedIOManager

DG = Path(sys.executable).with_name("dg")
TYPE = "orchestrator_dagster.OrchestratorComponent"

ASSETS = '''
import dagster as dg

from orchestrator_dagster import OrchestratorResource


@dg.asset
def orders() -> list[dict]:
    return [{"id": 1, "amount": 12.5}, {"id": 2, "amount": 7.5}]


@dg.asset
def revenue(orders: list[dict], orchestrator: OrchestratorResource) -> float:
    """Reads the catalog through the component's resource: its run is pinned there."""
    assert orchestrator.catalog.tags.get_tag("main").revision == 1
    return sum(order["amount"] for order in orders)
'''


def write_project(root: Path, attributes: dict[str, Any]) -> Path:
    """A ``dg`` project as ``create-dagster project demo`` lays it out, with the component
    in ``defs/catalog/defs.yaml`` and assets beside it in ``defs/assets.py``."""
    package = root / "src" / "demo"
    (package / "defs" / "catalog").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
            [project]
            name = "demo"
            version = "0.1.0"
            dependencies = ["orchestrator-catalog"]

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "demo"
            """)
    )
    (package / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        textwrap.dedent("""
            from pathlib import Path

            import dagster as dg


            @dg.definitions
            def defs() -> dg.Definitions:
                return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
            """)
    )
    (package / "defs" / "__init__.py").write_text("")
    (package / "defs" / "assets.py").write_text(ASSETS)
    defs_yaml = {"type": TYPE, "attributes": attributes}
    (package / "defs" / "catalog" / "defs.yaml").write_text(yaml.safe_dump(defs_yaml))
    return root


def run_dg(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``dg`` of this environment, in ``cwd`` (default: the project), with a Dagster home
    of its own and no catalog settings in the environment (the ``defs.yaml`` is what
    counts). ``src`` is on the path as an installed project's package would be."""
    home = project / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ORCHESTRATOR_DATABASE_URL", "ORCHESTRATOR_BLOB_ROOT")
    }
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(project / "src"), NO_COLOR="1")
    return subprocess.run(
        [str(DG), *args], cwd=cwd or project, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_dg_lists_the_component(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DG), "list", "components", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed = {item["key"]: item["summary"] for item in json.loads(result.stdout)["items"]}
    assert listed[TYPE].startswith("The versioned DAG catalog")


@pytest.fixture(params=["duckdb", "postgres"])
def catalog_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """What the ``defs.yaml`` names: on DuckDB, paths relative to the project's root."""
    if request.param == "duckdb":
        yield {"database_url": "duckdb:///catalog/catalog.duckdb", "blob_root": "catalog/blobs"}
    else:
        yield {
            "database_url": request.getfixturevalue("postgres_schema_url"),
            "blob_root": "catalog/blobs",
        }


@pytest.mark.slow
def test_a_dg_project_checks_and_materialises_through_the_component(
    tmp_path: Path, catalog_settings: dict[str, str]
) -> None:
    project = write_project(
        tmp_path / "demo",
        {**catalog_settings, "tag": "main", "sensors": {"tag_moves": [{"target": "revenue"}]}},
    )

    checked = run_dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully." in checked.stdout
    assert not (project / "catalog").exists()  # checking opens no catalog

    launched = run_dg(  # from elsewhere: relative paths still land in the project
        project, "launch", "--target-path", str(project), "--assets", "orders,revenue", cwd=tmp_path
    )
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "RUN_SUCCESS" in launched.stderr
    assert (project / "catalog" / "blobs").is_dir() and not (tmp_path / "catalog").exists()

    database_url = catalog_settings["database_url"]
    if database_url.startswith("duckdb"):  # taken under the project's root, not the cwd's
        database_url = f"duckdb:///{project / 'catalog' / 'catalog.duckdb'}"
    with core.connect(database_url, project / "catalog" / "blobs", create=False) as catalog:
        history = catalog.tags.get_history("main")
        assert [move.reason for move in history] == ["materialize orders", "materialize revenue"]
        (run_id,) = {move.run_id for move in history}
        assert catalog.runs.get_run(run_id).status == core.RunStatus.STARTED  # no daemon ran
        document = catalog.workflows.get_workflow_by_tag("main")
        assert document["nodes"]["revenue"]["deps"] == ["orders"]
        revenue = catalog.cas.get_content(document["nodes"]["revenue"]["cas_id"])
    assert json.loads(revenue) == 20.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("attributes", "expected", "hidden"),
    [
        ({"publish": "everything"}, "invalid publish mode 'everything'", None),
        ({"database_url": "not a url"}, "invalid database url 'not a url'", None),
        (
            {"database_url": "postgres://ci:s3cret@db/catalog"},
            "unsupported database url 'postgres://ci:***@db/catalog'",
            "s3cret",
        ),
    ],
    ids=["publish", "malformed-url", "url-with-password"],
)
def test_dg_check_defs_names_a_bad_value(
    tmp_path: Path, attributes: dict[str, str], expected: str, hidden: str | None
) -> None:
    project = write_project(tmp_path / "demo", attributes)
    checked = run_dg(project, "check", "defs")
    output = checked.stdout + checked.stderr
    assert checked.returncode == 1, output
    assert expected in output
    assert hidden is None or hidden not in output
    assert not (project / "catalog").exists() and not (project / ".orchestrator").exists()


@contextlib.contextmanager
def build_defs(defs_yaml: dict[str, Any], assets: str | None = None) -> Iterator[dg.Definitions]:
    """The definitions of a defs folder holding the component (and ``assets``), loaded in
    this process as ``dg`` loads them."""
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "catalog").mkdir()
        (sandbox.defs_folder_path / "catalog" / "defs.yaml").write_text(yaml.safe_dump(defs_yaml))
        if assets is not None:
            (sandbox.defs_folder_path / "assets.py").write_text(assets)
        with sandbox.build_all_defs() as defs:
            yield defs


def test_the_defs_yaml_sets_the_io_manager_and_the_sensors(tmp_path: Path) -> None:
    attributes = {
        "database_url": f"duckdb:///{tmp_path / 'catalog.duckdb'}",
        "tag": "release",
        "publish": "run",
        "server_url": "http://catalog.internal:8000",
        "sensors": {
            "run_snapshot": {"minimum_interval_seconds": 60, "default_status": "stopped"},
            "tag_moves": [
                {"target": "revenue", "asset_keys": ["sales/orders"], "default_status": "running"},
                {"target": "revenue", "tag": "prod", "name": "prod_moves"},
            ],
        },
    }
    with build_defs({"type": TYPE, "attributes": attributes}) as defs:
        resources = defs.resources or {}
        sensors = {sensor.name: sensor for sensor in defs.sensors or []}
    io_manager = resources["io_manager"]
    assert isinstance(io_manager, VersionedIOManager)
    assert (io_manager.tag, io_manager.publish) == ("release", "run")
    assert io_manager.orchestrator is resources["orchestrator"]
    assert io_manager.orchestrator.database_url == attributes["database_url"]
    assert io_manager.orchestrator.server_url == "http://catalog.internal:8000"
    assert set(sensors) == {"run_snapshot_sensor", "release_tag_move_sensor", "prod_moves"}
    snapshot = sensors["run_snapshot_sensor"]
    assert snapshot.minimum_interval_seconds == 60
    assert snapshot.default_status is dg.DefaultSensorStatus.STOPPED
    release = sensors["release_tag_move_sensor"]
    assert release.default_status is dg.DefaultSensorStatus.RUNNING
    assert "['sales/orders']" in (release.description or "")
    assert sensors["prod_moves"].default_status is dg.DefaultSensorStatus.STOPPED


def test_without_run_snapshot_the_component_adds_no_sensor() -> None:
    with build_defs({"type": TYPE, "attributes": {"sensors": {"run_snapshot": None}}}) as defs:
        assert not defs.sensors
        assert set(defs.resources or {}) == {"orchestrator", "io_manager"}


def test_a_publish_run_component_lands_a_run_once_through_its_sensor(
    database_url: str, blob_root: Path, catalog: core.Services
) -> None:
    attributes = {"database_url": database_url, "blob_root": str(blob_root), "publish": "run"}
    with (
        build_defs({"type": TYPE, "attributes": attributes}, ASSETS) as defs,
        dg.instance_for_test() as instance,
    ):
        assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        catalog.assets.commit_output("seed", "main", "seed", b"1", media_type="application/json")
        result = dg.materialize(assets, resources=defs.resources, instance=instance)
        assert result.success
        assert len(catalog.tags.get_history("main")) == 1  # staged: main has not moved
        (sensor,) = defs.sensors or []
        with dg.build_sensor_context(instance=instance, resources=defs.resources) as context:
            sensor(context)
    history = catalog.tags.get_history("main")
    assert [move.run_id for move in history] == ["seed", result.run_id]
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {
        "seed",
        "orders",
        "revenue",
    }


@pytest.mark.parametrize(
    "database_url", ["not a url", "sqlite:///catalog.db", "duckdb://", "duckdb:///:memory:"]
)
def test_the_component_refuses_the_database_urls_connect_refuses(
    database_url: str, tmp_path: Path
) -> None:
    with pytest.raises(core.ValidationError) as refused:
        core.connect(database_url, tmp_path / "blobs")
    with pytest.raises(pydantic.ValidationError) as invalid:
        OrchestratorComponent(database_url=database_url)
    assert str(refused.value) in str(invalid.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("blob_root", "s3://Bad_Bucket/x", "invalid blob root 's3://Bad_Bucket/x'"),
        ("tag", "a..b", "'a..b'"),
        ("publish", "later", "invalid publish mode 'later'"),
        ("server_url", "https://catalog:8000", "invalid server url 'https://catalog:8000'"),
    ],
)
def test_the_component_names_a_bad_setting(field: str, value: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field) as invalid:
        OrchestratorComponent(**{field: value})
    assert message in str(invalid.value)


DOC_ASSETS = """
import dagster as dg


@dg.asset
def report() -> int:
    return 1


@dg.asset
def sales_report() -> int:
    return 1


@dg.asset
def publish_report(report: int) -> int:
    return report


@dg.asset
def prod_report() -> int:
    return 1
"""


def yaml_examples(path: Path) -> list[dict[str, Any]]:
    """The ``defs.yaml`` examples of a page: its ``yaml`` blocks of the component."""
    blocks = path.read_text().split("```yaml\n")[1:]
    documents = [yaml.safe_load(block.split("```", 1)[0]) for block in blocks]
    return [document for document in documents if document.get("type") == TYPE]


@pytest.mark.parametrize("page", ["README.md", "docs/dagster.md"])
def test_the_documented_defs_yaml_loads(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (example,) = yaml_examples(Path(__file__).parents[2] / page)
    example["attributes"]["blob_root"] = str(tmp_path / "blobs")  # not /data on this machine
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", f"duckdb:///{tmp_path / 'catalog.duckdb'}")
    with build_defs(example, DOC_ASSETS) as defs:
        dg.Definitions.validate_loadable(defs)
        assert defs.sensors and "io_manager" in (defs.resources or {})
        assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        with dg.instance_for_test() as instance:
            assert dg.materialize(assets, resources=defs.resources, instance=instance).success


def test_the_components_cache_dir_is_taken_under_the_project(tmp_path: Path) -> None:
    attributes = {
        "database_url": f"duckdb:///{tmp_path / 'catalog.duckdb'}",
        "blob_root": str(tmp_path / "blobs"),
        "cache_dir": "cache/blobs",
        "cache_max_bytes": 1 << 20,
    }
    with build_defs({"type": TYPE, "attributes": attributes}) as defs:
        orchestrator = (defs.resources or {})["orchestrator"]
        assert isinstance(orchestrator, OrchestratorResource)
        assert orchestrator.cache_dir is not None
        assert Path(orchestrator.cache_dir).is_absolute()
        assert orchestrator.cache_dir.endswith("/cache/blobs")
        assert orchestrator.cache_max_bytes == 1 << 20
    with pytest.raises(pydantic.ValidationError, match="cache_max_bytes"):
        OrchestratorComponent(cache_max_bytes=0)
