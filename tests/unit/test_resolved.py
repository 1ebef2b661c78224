"""A resolved document the catalog made is cached unencoded and encoded once, when read."""

from core.dag import canonical_json
from core.service.artifact_resolution import Resolved


def test_a_document_cached_unencoded_reads_as_its_canonical_json_once() -> None:
    document = {"nodes": {"b": {"deps": ["a"]}, "a": {"deps": []}}}
    resolved = Resolved.of(document, 3)
    assert resolved.depth == 3
    first = resolved.document
    assert first == canonical_json(document)
    assert resolved.document is first  # not encoded again
