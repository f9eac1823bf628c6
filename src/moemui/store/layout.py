"""The layout of a store group, in one place: every array a ``{model}/{task}`` group
holds, with its dimensions, shape, chunks, data type, fill value and attributes, as a
function of the model's geometry, the number of samples, the variants, K and what is
kept (:class:`Layout`). The writer (:class:`moemui.store.writer.StoreWriter`) creates
the arrays it describes; the checker (:func:`moemui.store.read.group_problems`) expects
the shapes it gives for a group's recorded attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

#: The group attribute that marks a group complete (set last, before the publishing rename).
COMPLETE_ATTR = "complete"
#: Samples per chunk of every array whose first dimension is the sample.
SAMPLE_CHUNK = 16
#: What a group keeps of ``score_<variant>``: ``key`` (the default) the neurons that can
#: be key at some threshold <= max_threshold; ``all`` every neuron's score.
KEEP = ("key", "all")
KEEP_RULE = (
    "score_<variant> keeps, per (sample, layer), the neurons whose max over t of s is "
    "> 0 and >= the K-th largest triple score (pairtop_<variant>[..., K-1], every "
    "positive neuron when the sample has fewer than K triples); every other value reads "
    "as NaN. A key neuron at any threshold <= max_threshold has s >= theta >= that floor "
    "and s > 0, so every key-neuron set, and every table built from them, is the same as "
    "from the full array."
)
#: Every chunk is compressed, then carries a CRC32C of the compressed bytes: a flipped
#: or truncated chunk fails to decode instead of reading as other numbers.
COMPRESSORS = (zarr.codecs.ZstdCodec(level=0), zarr.codecs.Crc32cCodec())


@dataclass(frozen=True)
class ArraySpec:
    """One array of a group, as created.

    ``fill`` None is Zarr's default fill value of the data type (the coordinates, which
    are written whole when created); ``attrs`` are the attributes it is created with
    (the writer adds its digest when the group is published).
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: Any
    fill: Any = None
    attrs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """What a group of ``n_samples`` samples holds, for a geometry (its MoE layers and
    experts), the captured ``variants``, K (``k_top``) and ``keep``.

    Examples
    --------
    >>> layout = Layout(3, (1, 3), 2, 1, 4, 5, ("glu",))
    >>> [(a.name, a.shape) for a in layout.variant_arrays()]
    [('score_glu', (3, 2, 3, 4)), ('pairtop_glu', (3, 2, 5))]
    >>> layout.expert_kinds
    ['routed', 'routed', 'shared']
    """

    n_samples: int
    moe_layers: tuple[int, ...]
    routed_experts: int
    shared_experts: int
    neurons_per_expert: int
    k_top: int
    variants: tuple[str, ...]
    keep: str = "key"

    @classmethod
    def of(cls, geometry, n_samples: int, variants, k_top: int, keep: str) -> Layout:
        """The layout of a capture of ``geometry`` (an adapter's
        :class:`~moemui.adapters.Geometry`, or a group's recorded one)."""
        return cls(
            n_samples,
            tuple(geometry.moe_layers),
            geometry.routed_experts,
            geometry.shared_experts,
            geometry.neurons_per_expert,
            int(k_top),
            tuple(variants),
            keep,
        )

    @classmethod
    def recorded(
        cls,
        geometry: dict,
        k_top,
        n_samples: int = 0,
        variants: tuple[str, ...] = (),
        keep: str = "all",
    ) -> Layout:
        """The layout of a group's recorded ``geometry`` attribute and ``k_top``.

        Raises
        ------
        KeyError, TypeError, ValueError
            A malformed ``geometry`` or ``k_top``.
        """
        layers = tuple(int(i) for i in geometry["moe_layers"])
        routed, shared = int(geometry["routed_experts"]), int(geometry["shared_experts"])
        neurons, k_top = int(geometry["neurons_per_expert"]), int(k_top)
        return cls(n_samples, layers, routed, shared, neurons, k_top, tuple(variants), keep)

    @property
    def n_layers(self) -> int:
        return len(self.moe_layers)

    @property
    def n_experts(self) -> int:
        """Experts per MoE layer, routed then shared."""
        return self.routed_experts + self.shared_experts

    @property
    def expert_kinds(self) -> list[str]:
        """The ``expert_kind`` coordinate: ``routed`` for each routed expert, then
        ``shared``."""
        return ["routed"] * self.routed_experts + ["shared"] * self.shared_experts

    @property
    def sample_chunk(self) -> int:
        """Samples per chunk: :data:`SAMPLE_CHUNK`, or fewer in a smaller group."""
        return min(SAMPLE_CHUNK, max(1, self.n_samples))

    def coordinates(self) -> tuple[ArraySpec, ...]:
        """The coordinates: each one chunk, of Zarr's default fill value, written whole
        (:meth:`coordinate_values`)."""
        n_s, n_l, n_e, n_n = self.n_samples, self.n_layers, self.n_experts, self.neurons_per_expert
        return (
            ArraySpec("sample", ("sample",), (n_s,), (n_s,), str),
            ArraySpec("layer", ("layer",), (n_l,), (n_l,), np.dtype(np.int64)),
            ArraySpec("expert", ("expert",), (n_e,), (n_e,), np.dtype(np.int64)),
            ArraySpec("expert_kind", ("expert",), (n_e,), (n_e,), str),
            ArraySpec("neuron", ("neuron",), (n_n,), (n_n,), np.dtype(np.int64)),
        )

    def coordinate_values(self, sample_ids: list[str]) -> dict[str, np.ndarray]:
        """Each coordinate's values, in the order of :meth:`coordinates`."""
        return {
            "sample": np.array(sample_ids, dtype=object),
            "layer": np.array(self.moe_layers, dtype=np.int64),
            "expert": np.arange(self.n_experts, dtype=np.int64),
            "expert_kind": np.array(self.expert_kinds, dtype=object),
            "neuron": np.arange(self.neurons_per_expert, dtype=np.int64),
        }

    def variant_arrays(self) -> tuple[ArraySpec, ...]:
        """Per variant ``v``: ``score_v`` ``[sample, layer, expert, neuron]`` (max over t
        of the contribution score, retained as ``keep`` says), then ``pairtop_v``
        ``[sample, layer, rank]`` (the K largest triple scores, descending)."""
        n_s, n_l, n_e, n_n = self.n_samples, self.n_layers, self.n_experts, self.neurons_per_expert
        chunk, k = self.sample_chunk, self.k_top
        specs = []
        for v in self.variants:
            kept = (
                "neurons that can be key at a threshold <= max_threshold; NaN: "
                f"not kept (below the floor pairtop_{v}[..., K-1], or <= 0)"
                if self.keep == "key"
                else "every neuron"
            )
            specs += [
                ArraySpec(
                    f"score_{v}",
                    ("sample", "layer", "expert", "neuron"),
                    (n_s, n_l, n_e, n_n),
                    (chunk, 1, n_e, n_n),
                    np.float32,
                    np.nan,
                    {
                        "coordinates": "expert_kind",
                        "long_name": f"max over t of the contribution score ({v})",
                        "kept": kept,
                    },
                ),
                ArraySpec(
                    f"pairtop_{v}",
                    ("sample", "layer", "rank"),
                    (n_s, n_l, k),
                    (chunk, n_l, k),
                    np.float32,
                    np.nan,
                    {"long_name": f"largest triple scores ({v}), descending; NaN past the triples"},
                ),
            ]
        return tuple(specs)

    def sample_arrays(self) -> tuple[ArraySpec, ...]:
        """The arrays of every capture, whatever its variants: routing per (sample,
        layer, expert), then per sample."""
        n_s, n_l, n_e, chunk = self.n_samples, self.n_layers, self.n_experts, self.sample_chunk
        per_expert = ("sample", "layer", "expert")
        return (
            ArraySpec(
                "route_tokens",
                per_expert,
                (n_s, n_l, n_e),
                (chunk, n_l, n_e),
                np.int32,
                -1,
                {
                    "coordinates": "expert_kind",
                    "long_name": "scored positions routed to the expert",
                },
            ),
            ArraySpec(
                "route_weight",
                per_expert,
                (n_s, n_l, n_e),
                (chunk, n_l, n_e),
                np.float32,
                np.nan,
                {"coordinates": "expert_kind", "long_name": "sum of g over those positions"},
            ),
            ArraySpec("n_tokens", ("sample",), (n_s,), (chunk,), np.int32, -1),
            ArraySpec("correct", ("sample",), (n_s,), (chunk,), bool, False),
            ArraySpec(
                "n_prompt_truncated",
                ("sample",),
                (n_s,),
                (chunk,),
                np.int32,
                0,
                {"long_name": "prompt tokens dropped from the left to fit the model's context"},
            ),
        )

    def data_arrays(self) -> tuple[ArraySpec, ...]:
        """Every array whose first dimension is the sample, in the order the writer
        creates them: :meth:`variant_arrays`, then :meth:`sample_arrays`."""
        return (*self.variant_arrays(), *self.sample_arrays())


def retain(score: np.ndarray, pairtop: np.ndarray) -> np.ndarray:
    """``score`` ``[sample, layer, expert, neuron]`` with NaN wherever a neuron cannot be
    key at any threshold <= max_threshold (:data:`KEEP_RULE`); ``pairtop``
    ``[sample, layer, K]`` holds the K largest triple scores, descending, NaN-padded.

    Examples
    --------
    >>> score = np.array([[[[3.0, 1.0, 0.5, -1.0]]]], dtype=np.float32)
    >>> retain(score, np.array([[[3.0, 1.0]]], dtype=np.float32))
    array([[[[ 3.,  1., nan, nan]]]], dtype=float32)
    >>> retain(score, np.array([[[3.0, np.nan]]], dtype=np.float32))  # fewer than K triples
    array([[[[3. , 1. , 0.5, nan]]]], dtype=float32)
    """
    floor = pairtop[..., -1]
    floor = np.where(np.isnan(floor), -np.inf, floor)[..., None, None]
    keep = (score >= floor) & (score > 0)
    return np.where(keep, score, np.float32(np.nan)).astype(np.float32, copy=False)
