"""Refs over every entry point: numbers in a ref are ASCII digits only."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import core
from core.cli import cli
from core.routes import create_app

DAG = {"nodes": {"orders": {"deps": []}}}
ADD = [{"op": "add", "path": "/nodes/more", "value": {"deps": []}}]
# Arabic-Indic 1 and 3, fullwidth 1, superscript 2, N'Ko 1: none is an ASCII digit.
NON_ASCII_POSITIONS = (
    "main@{\u0661}",
    "main@{\u0663}",
    "main@{\uff11}",
    "main@{²}",
    "main@{1\u0663}",
    "main@{\u07c1}",
)


@pytest.fixture
def moved(catalog: core.Services) -> core.Services:
    """``main`` at revision 2, so ``main@{1}`` (ASCII) names its first target."""
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", DAG))
    catalog.workflows.patch_workflow("main", ADD)
    return catalog


@pytest.mark.parametrize("ref", NON_ASCII_POSITIONS)
def test_a_position_of_non_ascii_digits_is_invalid(moved: core.Services, ref: str) -> None:
    assert moved.refs.resolve("main@{1}").id  # the ASCII spelling resolves
    with pytest.raises(core.ValidationError, match="invalid ref"):
        moved.refs.resolve(ref)


def test_a_position_too_long_to_parse_names_no_move(moved: core.Services) -> None:
    """``int`` refuses past 4300 digits: such a position is past any move, not an error."""
    with pytest.raises(core.NotFoundError, match="has no position"):
        moved.refs.resolve("main@{" + "9" * 5000 + "}")
    first = moved.refs.resolve("main@{1}")
    assert moved.refs.resolve("main@{" + "0" * 5000 + "1}") == first


def test_non_ascii_positions_over_http_and_cli(
    moved: core.Services, database_url: str, blob_root: Path
) -> None:
    with TestClient(create_app(moved), raise_server_exceptions=False) as client:
        assert client.get("/artifacts/main@{1}").status_code == 200
        for ref in NON_ASCII_POSITIONS:
            answer = client.get(f"/artifacts/{ref}")
            assert answer.status_code == 422, (ref, answer.text)
            assert ref in answer.json()["error"]["message"]
            put = client.put("/tags/prod", json={"target": ref})
            assert put.status_code == 422, (ref, put.text)
        assert client.get("/tags/prod").status_code == 404
    runner = CliRunner()
    base = ["--database-url", database_url, "--blob-root", str(blob_root)]
    assert runner.invoke(cli, [*base, "show", "main@{1}"]).exit_code == 0
    for ref in NON_ASCII_POSITIONS:
        shown = runner.invoke(cli, [*base, "show", ref])
        assert shown.exit_code == 2, (ref, shown.output)
        assert ref in shown.output


GRAMMAR = {  # ref -> HTTP status, CLI exit code
    "main~1": (200, 0),
    "main^": (200, 0),
    "main@{1}~0": (200, 0),
    "main@{2999-01-01}": (200, 0),
    "main@{2000-01-01}": (404, 3),
    "main~2": (404, 3),
    "main@{run:nobody}": (404, 3),
    "run:nobody": (404, 3),
    "main~x": (422, 2),
    "main@{yesterday}": (422, 2),
    "main^2": (422, 2),
}


def test_the_grammar_over_http_and_cli(
    moved: core.Services, database_url: str, blob_root: Path
) -> None:
    runner = CliRunner()
    base = ["--database-url", database_url, "--blob-root", str(blob_root)]
    with TestClient(create_app(moved), raise_server_exceptions=False) as client:
        for ref, (status, code) in GRAMMAR.items():
            answer = client.get(f"/artifacts/{ref}")
            assert answer.status_code == status, (ref, answer.text)
            shown = runner.invoke(cli, [*base, "show", ref])
            assert shown.exit_code == code, (ref, shown.output)
            if status == 200:
                assert answer.json()["id"] == str(moved.refs.resolve(ref).id)
            else:
                assert ref in answer.json()["error"]["message"]
                assert ref in shown.output
