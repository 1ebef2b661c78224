"""How Python values become bytes and back: a codec table keyed by type.

JSON for JSON-able values, raw bytes for ``bytes``, pickle otherwise. Register a codec
for your own types (in the module that defines your assets, so every step process has
it)::

    from orchestrator_dagster import codecs

    codecs.register(pd.DataFrame, codecs.Codec("application/vnd.apache.parquet",
                                               encode=to_parquet, decode=from_parquet))
"""

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import core

JSON_MEDIA_TYPE = "application/json"
PICKLE_MEDIA_TYPE = "application/x-python-pickle"
BYTES_MEDIA_TYPE = "application/octet-stream"


class CodecError(core.ValidationError):
    """A value could not be encoded, or stored bytes could not be decoded."""


@dataclass(frozen=True)
class Codec:
    """Turns values into bytes of one media type and back."""

    media_type: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


def _json_encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


JSON = Codec(JSON_MEDIA_TYPE, _json_encode, json.loads)
PICKLE = Codec(PICKLE_MEDIA_TYPE, lambda value: pickle.dumps(value, protocol=5), pickle.loads)
BYTES = Codec(BYTES_MEDIA_TYPE, bytes, bytes)


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (no tuples, sets, NaN...)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is float:
            if item != item or item in (float("inf"), float("-inf")):
                return False
        elif type(item) not in (str, int, bool, type(None)):
            return False
    return True


class CodecRegistry:
    """Chooses a codec for a value (by its type's MRO) and for stored bytes (by media type)."""

    def __init__(self) -> None:
        self._by_type: dict[type, Codec] = {bytes: BYTES}
        self._by_media_type: dict[str, Codec] = {c.media_type: c for c in (JSON, PICKLE, BYTES)}

    def register(self, value_type: type, codec: Codec) -> None:
        """Use ``codec`` for instances of ``value_type`` (and its subclasses).

        Stored bytes are decoded by media type, so a media type belongs to one codec:
        give a codec of your own its own media type (``application/vnd.my-type+json``).
        """
        taken = self._by_media_type.get(codec.media_type)
        if taken is not None and taken is not codec:
            raise core.ValidationError(
                f"media type {codec.media_type!r} already decodes with another codec; "
                "give this codec a media type of its own"
            )
        self._by_type[value_type] = codec
        self._by_media_type[codec.media_type] = codec

    def codec_for(self, value: Any) -> Codec:
        for klass in type(value).__mro__:
            if klass in self._by_type:
                return self._by_type[klass]
        return JSON if is_plain_json(value) else PICKLE

    def encode(self, value: Any, *, what: str) -> tuple[bytes, str]:
        """``(bytes, media type)`` for ``value``; ``CodecError`` naming ``what`` on failure."""
        codec = self.codec_for(value)
        try:
            return codec.encode(value), codec.media_type
        except Exception as exc:
            raise CodecError(
                f"cannot encode {what} (a {type(value).__name__}) as {codec.media_type}: {exc}"
            ) from exc

    def decode(self, data: bytes, media_type: str, *, what: str) -> Any:
        codec = self._by_media_type.get(media_type)
        if codec is None:
            raise CodecError(
                f"cannot decode {what}: no codec registered for media type {media_type!r}"
            )
        try:
            return codec.decode(data)
        except Exception as exc:
            raise CodecError(f"cannot decode {what} as {media_type}: {exc}") from exc


default_registry = CodecRegistry()
register = default_registry.register
