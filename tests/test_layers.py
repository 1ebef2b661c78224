"""The layers of DESIGN.md hold, the public surface stays exported, the code is lint-clean."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: install the package with its [dev] extra")
        return found
    return str(path)


def test_import_contracts_hold() -> None:
    """Every contract of ``pyproject.toml`` (core never imports dagster, nothing below
    imports upward, services and adapters hold no SQL, ...) was checked and kept."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = [contract["name"] for contract in contracts["contracts"]]
    result = subprocess.run(
        [tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = " ".join(result.stdout.split())  # lint-imports wraps long names
    for name in names:
        assert f"{name} KEPT" in report, f"contract {name!r} was not kept:\n{result.stdout}"
    assert f"{len(names)} kept, 0 broken" in report


def test_ruff_is_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    """``mypy`` in strict mode, on the files ``pyproject.toml`` names (``core`` and
    ``orchestrator_dagster``), finds no error."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) >= {"core", "orchestrator_dagster"}
    result = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_core_does_not_load_dagster() -> None:
    code = "import sys, core; core.connect; print('dagster' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_public_names_are_exported() -> None:
    """The contract's names are exported from ``core`` as the objects their modules define,
    and the error tree is the one DESIGN.md draws."""
    from core import bootstrap, domain, errors

    contract = {
        "connect": bootstrap.connect,
        "Services": bootstrap.Services,
        "Artifact": domain.Artifact,
        "ArtifactKind": domain.ArtifactKind,
        "Tag": domain.Tag,
        "TagMove": domain.TagMove,
        "Run": domain.Run,
        "CreateWorkflowRequest": domain.CreateWorkflowRequest,
        "CreateWorkflowResponse": domain.CreateWorkflowResponse,
        "OrchestratorError": errors.OrchestratorError,
        "NotFoundError": errors.NotFoundError,
        "ConflictError": errors.ConflictError,
        "ValidationError": errors.ValidationError,
        "IntegrityError": errors.IntegrityError,
        "StorageBusyError": errors.StorageBusyError,
        "StorageUnavailableError": errors.StorageUnavailableError,
        "TransactionLostError": errors.TransactionLostError,
        "MergeConflictError": errors.MergeConflictError,
        "Publication": domain.Publication,
        "MergeResult": domain.MergeResult,
        "Blame": domain.Blame,
        "BlameEntry": domain.BlameEntry,
        "BlobLineage": domain.BlobLineage,
        "BlobUse": domain.BlobUse,
        "TagPolicy": domain.TagPolicy,
        "PolicyError": errors.PolicyError,
    }
    missing = sorted(set(contract) - set(core.__all__))
    assert not missing, f"not in core.__all__: {missing}"
    for name, defined in contract.items():
        assert getattr(core, name) is defined, name
    for error in ("NotFoundError", "ConflictError", "ValidationError", "IntegrityError"):
        assert issubclass(contract[error], core.OrchestratorError), error
    assert issubclass(core.StorageBusyError, core.OrchestratorError)
    assert issubclass(core.MergeConflictError, core.ConflictError)
    assert issubclass(core.PolicyError, core.ConflictError)
    assert issubclass(core.TransactionLostError, core.StorageUnavailableError)
    assert {"cas", "artifacts", "tags", "workflows", "runs", "lineage"} <= set(
        core.Services.__dataclass_fields__
    )
