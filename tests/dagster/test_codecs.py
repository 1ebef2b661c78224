"""The codec table: built-in codecs, codecs registered for your own types, and their limits."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

import core
from orchestrator_dagster import OrchestratorResource, VersionedIOManager, codecs

POINT_MEDIA_TYPE = "application/vnd.example.point"


@dataclass(frozen=True)
class Point:
    x: int
    y: int


POINT = codecs.Codec(
    POINT_MEDIA_TYPE,
    encode=lambda point: f"{point.x},{point.y}".encode(),
    decode=lambda data: Point(*map(int, data.split(b","))),
)


@pytest.fixture
def point_codec(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``Point`` registered with the default table, for one test only."""
    registry = codecs.default_registry
    monkeypatch.setattr(registry, "_by_type", dict(registry._by_type))
    monkeypatch.setattr(registry, "_by_media_type", dict(registry._by_media_type))
    codecs.register(Point, POINT)
    yield


@dg.asset
def origin() -> Point:
    return Point(3, 4)


@dg.asset
def distance(origin: Point) -> float:
    assert isinstance(origin, Point)  # decoded by the registered codec, not pickle
    return (origin.x**2 + origin.y**2) ** 0.5


def test_a_registered_codec_stores_and_loads_its_type(
    point_codec: None, database_url: str, blob_root: Path, catalog: core.Services
) -> None:
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=str(blob_root))
    resources = {"io_manager": VersionedIOManager(orchestrator=orchestrator)}
    with dg.instance_for_test() as instance:
        result = dg.materialize([origin, distance], resources=resources, instance=instance)
    assert result.success
    assert result.output_for_node("distance") == 5.0
    node = catalog.workflows.get_workflow_by_tag("main")["nodes"]["origin"]
    assert node["media_type"] == POINT_MEDIA_TYPE
    assert catalog.cas.get_content(node["cas_id"]) == b"3,4"


def test_builtin_codecs_by_value() -> None:
    registry = codecs.CodecRegistry()
    assert registry.encode({"a": [1, 2.5, None]}, what="x") == (
        b'{"a":[1,2.5,null]}',
        codecs.JSON_MEDIA_TYPE,
    )
    assert registry.encode(b"\x00raw", what="x") == (b"\x00raw", codecs.BYTES_MEDIA_TYPE)
    for not_plain_json in [(1, 2), {1: "a"}, float("nan"), {"s": {1}}]:
        data, media_type = registry.encode(not_plain_json, what="x")
        assert media_type == codecs.PICKLE_MEDIA_TYPE
        decoded = registry.decode(data, media_type, what="x")
        assert decoded == not_plain_json or decoded != decoded  # NaN is not equal to itself


def test_a_media_type_belongs_to_one_codec() -> None:
    registry = codecs.CodecRegistry()
    registry.register(Point, POINT)
    registry.register(tuple, POINT)  # the same codec for another type is fine
    impostor = codecs.Codec(codecs.JSON_MEDIA_TYPE, encode=str.encode, decode=bytes.decode)
    with pytest.raises(core.ValidationError, match="'application/json' already decodes"):
        registry.register(str, impostor)
    assert registry.encode("text", what="x") == (b'"text"', codecs.JSON_MEDIA_TYPE)


def test_undecodable_bytes_name_what_and_media_type() -> None:
    registry = codecs.CodecRegistry()
    with pytest.raises(codecs.CodecError, match=r"asset 'a'.*no codec .*'image/png'"):
        registry.decode(b"\x89PNG", "image/png", what="asset 'a'")
    with pytest.raises(codecs.CodecError, match=r"asset 'b'.*as application/json"):
        registry.decode(b"{nope", codecs.JSON_MEDIA_TYPE, what="asset 'b'")
