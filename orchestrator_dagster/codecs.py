"""How Python values become bytes and back: a codec table keyed by type.

JSON for JSON-able values, raw bytes for ``bytes``, Parquet for DataFrames (pandas,
polars, pyarrow: ``orchestrator_dagster.frames``, written and read as streams), pickle
otherwise. Register a codec for your own types (in the module that defines your assets,
so every step process has it)::

    from orchestrator_dagster import codecs

    codecs.register(MyType, codecs.Codec("application/vnd.my-type+json",
                                         encode=to_json, decode=from_json))
"""

import contextlib
import json
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, cast

import core
from orchestrator_dagster import frames
from orchestrator_dagster.piped import WriterError, WrittenStream

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


@dataclass(frozen=True)
class StreamCodec:
    """Writes values to a binary stream and reads them back, as the type asked for: for
    values too big to hold as bytes twice."""

    media_type: str
    prepare: Callable[[Any], Any]
    """Turns the value into what ``write`` takes (once, before it is written)."""
    write: Callable[[Any, BinaryIO], None]
    read: Callable[[BinaryIO, Any], Any]
    """``read(source, annotation)``: the value, as ``annotation`` if it names a type the
    codec reads (``typing.Any`` for none)."""


AnyCodec = Codec | StreamCodec

JSON = Codec(JSON_MEDIA_TYPE, _json_encode, json.loads)
PICKLE = Codec(PICKLE_MEDIA_TYPE, lambda value: pickle.dumps(value, protocol=5), pickle.loads)
BYTES = Codec(BYTES_MEDIA_TYPE, bytes, bytes)
PARQUET = StreamCodec(frames.PARQUET_MEDIA_TYPE, frames.prepare, frames.write, frames.read)


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
        self._by_type: dict[type, AnyCodec] = {bytes: BYTES}
        self._by_media_type: dict[str, AnyCodec] = {
            c.media_type: c for c in (JSON, PICKLE, BYTES, PARQUET)
        }

    def register(self, value_type: type, codec: AnyCodec) -> None:
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

    def codec_for(self, value: Any) -> AnyCodec:
        """The codec registered for ``value``'s type (or a base), else Parquet for a
        DataFrame, JSON for plain JSON, pickle for anything else."""
        for klass in type(value).__mro__:
            if klass in self._by_type:
                return self._by_type[klass]
        if frames.is_frame(value):
            return PARQUET
        return JSON if is_plain_json(value) else PICKLE

    def codec_of(self, media_type: str, *, what: str) -> AnyCodec:
        """The codec that decodes ``media_type``; ``CodecError`` naming ``what`` if none."""
        codec = self._by_media_type.get(media_type)
        if codec is None:
            raise CodecError(
                f"cannot decode {what}: no codec registered for media type {media_type!r}"
            )
        return codec

    def encode(self, value: Any, *, what: str) -> tuple[bytes, str]:
        """``(bytes, media type)`` for ``value``; ``CodecError`` naming ``what`` on failure."""
        codec = self.codec_for(value)
        if isinstance(codec, StreamCodec):
            raise CodecError(f"cannot encode {what}: {codec.media_type} is written as a stream")
        try:
            return codec.encode(value), codec.media_type
        except Exception as exc:
            raise CodecError(
                f"cannot encode {what} (a {type(value).__name__}) as {codec.media_type}: {exc}"
            ) from exc

    def decode(self, data: bytes, media_type: str, *, what: str) -> Any:
        codec = self.codec_of(media_type, what=what)
        if isinstance(codec, StreamCodec):
            raise CodecError(f"cannot decode {what}: {media_type} is read as a stream")
        try:
            return codec.decode(data)
        except Exception as exc:
            raise CodecError(f"cannot decode {what} as {media_type}: {exc}") from exc


default_registry = CodecRegistry()
register = default_registry.register


@contextlib.contextmanager
def written(codec: StreamCodec, prepared: Any, *, what: str) -> Iterator[BinaryIO]:
    """A stream of ``prepared`` as ``codec`` writes it (on a thread, in bounded memory);
    ``CodecError`` naming ``what`` if the writer fails."""
    try:
        with WrittenStream(partial(codec.write, prepared)) as stream:
            yield cast(BinaryIO, stream)
    except WriterError as exc:
        cause = exc.__cause__ or exc
        raise CodecError(
            f"cannot encode {what} as {codec.media_type}: {type(cause).__name__}: {cause}"
        ) from cause


def read(codec: StreamCodec, source: BinaryIO, annotation: Any, *, what: str) -> Any:
    """``codec.read`` of ``source``; ``CodecError`` naming ``what`` on failure."""
    try:
        return codec.read(source, annotation)
    except Exception as exc:
        raise CodecError(
            f"cannot decode {what} as {codec.media_type}: {type(exc).__name__}: {exc}"
        ) from exc
