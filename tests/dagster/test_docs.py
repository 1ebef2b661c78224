"""Every public class's docstring example runs, and the data version degrades gracefully."""

import inspect
import textwrap
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

import core
import orchestrator_dagster
from orchestrator_dagster.data_version import set_content_data_version

DOCUMENTED = [
    orchestrator_dagster.OrchestratorResource,
    orchestrator_dagster.VersionedIOManager,
    orchestrator_dagster.tag_move_sensor,
]


def example_code(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    assert "Examples:" in doc, f"{obj} has no Examples: block"
    block = doc.split("Examples:", 1)[1].split(".. code-block:: python", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("        "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


@pytest.mark.parametrize("obj", DOCUMENTED, ids=lambda obj: obj.__name__)
def test_docstring_example_runs(
    obj: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", f"duckdb:///{tmp_path / 'catalog.duckdb'}")
    namespace: dict[str, object] = {}
    exec(compile(example_code(obj), f"<{obj.__name__} example>", "exec"), namespace)
    defs = namespace["defs"]
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    if "io_manager" in (defs.resources or {}):
        with dg.instance_for_test() as instance:
            result = dg.materialize(assets, resources=defs.resources, instance=instance)
        assert result.success
    for sensor in defs.sensors or []:  # a move of the node the example watches starts a run
        with core.connect() as catalog:
            catalog.assets.commit_output(
                "docs", "main", "sales_report", b"1", media_type="application/json"
            )
            move = catalog.tags.get_history("main")[-1]
        with (
            dg.instance_for_test() as instance,
            dg.build_sensor_context(instance=instance, resources=defs.resources) as context,
        ):
            tick = sensor(context)
        (request,) = tick.run_requests  # type: ignore[union-attr]
        assert request.run_key == f"main:{move.id}"
    assert assets or defs.sensors, "the example defines nothing that runs"


def test_data_version_degrades_to_metadata_only() -> None:
    no_step_context = SimpleNamespace(has_asset_key=True, asset_key=dg.AssetKey("a"))
    assert set_content_data_version(no_step_context, "sha256:" + "0" * 64) is False  # type: ignore[arg-type]

    class OldStepContext:  # a Dagster whose step context lacks set_data_version
        pass

    old = SimpleNamespace(
        has_asset_key=True, asset_key=dg.AssetKey("a"), step_context=OldStepContext()
    )
    assert set_content_data_version(old, "sha256:" + "0" * 64) is False  # type: ignore[arg-type]

    calls = []

    def refuse(key: dg.AssetKey, version: dg.DataVersion) -> None:
        calls.append((key, version))
        raise RuntimeError("changed signature")

    failing = SimpleNamespace(
        has_asset_key=True,
        asset_key=dg.AssetKey("a"),
        step_context=SimpleNamespace(set_data_version=refuse),
    )
    assert set_content_data_version(failing, "sha256:" + "1" * 64) is False  # type: ignore[arg-type]
    assert calls == [(dg.AssetKey("a"), dg.DataVersion("1" * 64))]
