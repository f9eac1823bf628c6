"""Content digests of a store group's arrays, accumulated from blocks in any order."""

from __future__ import annotations

import hashlib
import json

import numpy as np

#: Each array's attribute holding its content digest (:class:`Digest`), and its scheme.
DIGEST_ATTR = "digest"
DIGEST_SCHEME = "blake2b128-sum-v1"
#: Digests are sums modulo 2**128.
MOD = 1 << 128


def _piece_bytes(data: np.ndarray) -> bytes:
    if data.dtype.kind in "OUT":  # strings (coordinates): their JSON list
        return json.dumps([str(x) for x in data.ravel()]).encode()
    data = np.ascontiguousarray(data)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data.tobytes()


def _piece(index: tuple[int, ...], data: np.ndarray) -> int:
    head = np.asarray(index, dtype="<i8").tobytes()
    h = hashlib.blake2b(head + _piece_bytes(data), digest_size=16)
    return int.from_bytes(h.digest(), "little")


class Digest:
    """An array's content digest: the sum mod 2**128 of a BLAKE2b-128 hash of every
    piece (its index, then its stored bytes, C order), so it can be accumulated from
    blocks read or written in any order.

    Pieces: ``(sample, layer)`` rows of an array whose dims start with them, ``(sample,)``
    elements of a 1-D sample array, the whole array otherwise (coordinates).
    """

    def __init__(self, dims: tuple[str, ...]):
        self.dims = tuple(dims)
        self.value = 0

    def block(self, start: tuple[int, ...], data: np.ndarray) -> int:
        """The digest of the pieces in ``data``, a block starting at ``start``."""
        if self.dims[:2] == ("sample", "layer"):
            return (
                sum(
                    _piece((start[0] + i, start[1] + j), data[i, j])
                    for i in range(data.shape[0])
                    for j in range(data.shape[1])
                )
                % MOD
            )
        if self.dims == ("sample",):
            return sum(_piece((start[0] + i,), data[i : i + 1]) for i in range(len(data))) % MOD
        if any(start):
            raise ValueError("a coordinate is one piece; read it whole")
        return _piece((), data)

    def add(self, start: tuple[int, ...], data: np.ndarray) -> None:
        self.value = (self.value + self.block(start, data)) % MOD

    def hex(self) -> str:
        return f"{self.value:032x}"


def digest_of(dims: tuple[str, ...], data: np.ndarray) -> str:
    """The digest of a whole array."""
    d = Digest(dims)
    d.add((0,) * data.ndim, data)
    return d.hex()
