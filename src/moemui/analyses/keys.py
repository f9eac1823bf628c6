"""Per-sample key neurons of a store group, derived once and shared by the analyses.

Reading a group's score arrays is the one costly step of every table at the paper's
scale (tens of GB per model and task); the tables need only the key-neuron sets at the
configured thresholds (docs/method.md §3). :meth:`GroupKeys.from_group` reads each
``score_<variant>`` once and keeps, per sample, the sorted flat indices of its key
neurons at the largest threshold, each with its *level*: the index of the smallest
threshold (ascending) at which it is key. The sets are nested (theta only falls as k
grows), so the set at the i-th threshold is the entries of level <= i. MUI, experts,
diversity and ablation all read a :class:`GroupKeys`, which the workflow writes once
per group (``results/keys/{model}/{task}.npz``, rule ``derive_keys``).

Flat indices run over ``(layer position, expert, neuron)`` in C order, so ``index // N``
is the flat ``(layer position, expert)`` index and ``index // (E * N)`` the layer
position (``layers[position]`` is its decoder layer; the two differ where the first
decoder layers are dense). :meth:`GroupKeys.unravel` gives the decoder-layer
coordinates; :func:`moemui.key_neurons` a table of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from moemui.errors import MoemuiError
from moemui.io import atomic_write
from moemui.keyrule import k_for, thetas
from moemui.store import CorruptGroupError, Digest, check_digest, verify_read

#: The format of a saved :class:`GroupKeys`; a file of another format is refused.
KEYS_FORMAT = 1


def variants_of(ds: xr.Dataset) -> list[str]:
    """The score variants a store group holds, sorted."""
    return sorted(n.removeprefix("score_") for n in ds.data_vars if n.startswith("score_"))


@dataclass
class GroupKeys:
    """The key-neuron sets of one store group at a list of thresholds, and the small
    per-sample and per-expert arrays the tables need besides.

    ``keys[variant]`` is ``(offsets [S+1], index, level)`` (``index``: int32 flat
    indices, int64 for a model of over 2**31 neurons): sample ``b``'s key neurons
    at the largest threshold are ``index[offsets[b]:offsets[b+1]]`` (sorted), and entry
    ``i`` is key from ``thresholds[level[i]]`` on. ``route_tokens`` is ``[L, E]``, the
    scored positions routed to each expert, summed over samples.
    """

    model: str
    task: str
    samples: np.ndarray
    correct: np.ndarray | None  # None: the group has no correct array
    n_tokens: np.ndarray | None  # None: the group has no n_tokens array
    layers: np.ndarray
    expert_kind: np.ndarray
    n_neurons: int
    route_tokens: np.ndarray | None  # None: the group has no route_tokens array
    thresholds: tuple[float, ...]
    keys: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: Per variant, the sample of every entry (derived from the offsets once, on first use).
    _entry_samples: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_experts(self) -> int:
        return len(self.expert_kind)

    @property
    def total_neurons(self) -> int:
        """The MUI denominator N * L * (E_s + E_r)."""
        return self.n_neurons * self.n_experts * self.n_layers

    @property
    def variants(self) -> list[str]:
        return sorted(self.keys)

    def level_of(self, tau: float) -> int:
        """The position of threshold ``tau`` among :attr:`thresholds`."""
        for i, t in enumerate(self.thresholds):
            if abs(t - float(tau)) <= 1e-12 * t:  # the config's own tolerance
                return i
        have = ", ".join(f"{t:g}" for t in self.thresholds)
        raise MoemuiError(
            f"{self.model}/{self.task}: key neurons were derived at thresholds {have}, "
            f"not {float(tau):g}; derive them again with it"
        )

    def entries(self, variant: str, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """``(sample, index)`` of every key neuron of every sample at ``tau``."""
        if variant not in self.keys:
            raise MoemuiError(
                f"{self.model}/{self.task}: no key neurons of variant {variant!r} "
                f"(has {self.variants})"
            )
        offsets, index, level = self.keys[variant]
        sample = self._entry_samples.get(variant)
        if sample is None:
            sample = np.repeat(np.arange(self.n_samples, dtype=np.int32), np.diff(offsets))
            self._entry_samples[variant] = sample
        keep = level <= self.level_of(tau)
        return sample[keep], index[keep]

    def sets(self, variant: str, tau: float) -> list[np.ndarray]:
        """Per sample, the sorted flat indices of its key neurons at ``tau``."""
        sample, index = self.entries(variant, tau)
        bounds = np.searchsorted(sample, np.arange(self.n_samples + 1))
        return [index[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def unravel(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(layer, expert, neuron)`` of flat indices, ``layer`` the decoder-layer index
        (the store's ``layer`` coordinate), not the layer position.

        Examples
        --------
        >>> keys = GroupKeys("m", "t", np.array(["s"]), None, None, np.array([1, 2]),
        ...                  np.array(["routed"] * 2), 3, None, ())
        >>> [a.tolist() for a in keys.unravel(np.array([0, 5, 7]))]  # position 0 is layer 1
        [[1, 1, 2], [0, 1, 0], [0, 2, 1]]
        """
        position, expert, neuron = np.unravel_index(
            np.asarray(index, dtype=np.int64), (self.n_layers, self.n_experts, self.n_neurons)
        )
        return np.asarray(self.layers, dtype=np.int64)[position], expert, neuron

    def head(self, n: int) -> GroupKeys:
        """The keys of the first ``n`` samples."""
        n = min(n, self.n_samples)
        keys = {}
        for variant, (offsets, index, level) in self.keys.items():
            stop = offsets[n]
            keys[variant] = (offsets[: n + 1], index[:stop], level[:stop])
        return GroupKeys(
            self.model, self.task, self.samples[:n],
            None if self.correct is None else self.correct[:n],
            None if self.n_tokens is None else self.n_tokens[:n],
            self.layers, self.expert_kind, self.n_neurons, self.route_tokens, self.thresholds,
            keys,
        )  # fmt: skip

    # -- reading a group, once -----------------------------------------------------------
    @classmethod
    def from_group(
        cls,
        ds: xr.Dataset,
        thresholds: Iterable[float],
        model: str | None = None,
        task: str | None = None,
        sample_chunk: int = 16,
        verify: bool = False,
    ) -> GroupKeys:
        """Derive the key neurons of store group ``ds`` at ``thresholds``, reading each
        ``score_<variant>`` and ``pairtop_<variant>`` once, a block of samples and one
        layer at a time (memory: one block, whatever the group's size). With no
        threshold, no score array is read.

        ``verify``: ``ds`` is a whole group as stored (:func:`moemui.store.open_group`);
        every array read is checked against its ``digest`` (the score and pairtop
        streams block by block, failing at the end on a mismatch), and a chunk that
        fails to decode is named. Either raises :class:`moemui.store.CorruptGroupError`.
        """
        thresholds = tuple(sorted({float(t) for t in thresholds}))
        if len(thresholds) > 255:
            raise MoemuiError(f"{len(thresholds)} thresholds: at most 255 are derived at once")
        model = model if model is not None else str(ds.attrs.get("model", ""))
        task = task if task is not None else str(ds.attrs.get("task", ""))
        variants = variants_of(ds)
        if thresholds and not variants:
            raise MoemuiError(f"{model}/{task}: the store group holds no score_* array")
        n_samples = ds.sizes["sample"]
        n_layers, n_exp, n_neu = ds.sizes["layer"], ds.sizes["expert"], ds.sizes["neuron"]

        def whole(name: str) -> np.ndarray:
            """An array read whole, checked against its digest."""
            var = ds[name]
            values = _read(var, name, (slice(None),) * var.ndim)
            if verify:
                verify_read(name, var.dims, var.attrs, values)
            return values

        kinds = (
            np.asarray([str(k) for k in whole("expert_kind")])
            if "expert_kind" in ds.coords
            else np.full(n_exp, "routed")
        )
        out = cls(
            model=model,
            task=task,
            samples=np.asarray([str(s) for s in whole("sample")]),
            correct=whole("correct").astype(bool) if "correct" in ds else None,
            n_tokens=whole("n_tokens").astype(np.int64) if "n_tokens" in ds else None,
            layers=np.asarray(whole("layer"), dtype=np.int64),
            expert_kind=kinds,
            n_neurons=int(n_neu),
            route_tokens=(
                whole("route_tokens").astype(np.int64).sum(axis=0) if "route_tokens" in ds else None
            ),
            thresholds=thresholds,
        )
        if not thresholds:
            return out
        ks = [k_for(tau, n_exp * n_neu) for tau in thresholds]
        # flat indices in 4 bytes: 58 layers x 257 experts x 2048 neurons is 30.5 M
        index_type = np.int32 if out.total_neurons < 2**31 else np.int64
        for variant in variants:
            score_name, top_name = f"score_{variant}", f"pairtop_{variant}"
            score_var, top_var = ds[score_name], ds[top_name]
            # the stream's digests, accumulated block by block, checked at the end
            score_digest, top_digest = Digest(score_var.dims), Digest(top_var.dims)
            parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for start in range(0, n_samples, sample_chunk):
                sl = slice(start, start + sample_chunk)
                top = _read(top_var, top_name, (sl,))  # [c, L, K]
                top_digest.add((start, 0), top)
                theta = np.stack([thetas(top, k) for k in ks])  # [n_thr, c, L]
                for pos in range(n_layers):
                    block = _read(score_var, score_name, (sl, slice(pos, pos + 1)))
                    score_digest.add((start, pos), block)
                    score = block.reshape(top.shape[0], -1)  # [c, E*N]
                    floor = theta[-1, :, pos, None]
                    with np.errstate(invalid="ignore"):  # NaN: not kept, never key
                        b, j = np.nonzero((score >= floor) & (score > 0))
                    s = score[b, j]
                    level = (theta[:, b, pos] > s).sum(axis=0).astype(np.uint8)
                    parts.append((b + start, j + pos * n_exp * n_neu, level))
            if verify:
                check_digest(score_name, score_digest, score_var.attrs)
                check_digest(top_name, top_digest, top_var.attrs)
            if parts:
                sample = np.concatenate([p[0] for p in parts])
                index = np.concatenate([p[1] for p in parts]).astype(index_type)
                level = np.concatenate([p[2] for p in parts])
            else:
                sample, index = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=index_type)
                level = np.zeros(0, dtype=np.uint8)
            order = np.lexsort((index, sample))
            counts = np.bincount(sample, minlength=n_samples)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            out.keys[variant] = (offsets, index[order], level[order])
        return out

    # -- the derived artefact -------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the keys to ``path`` (NumPy ``.npz``), atomically."""
        optional = {"correct": self.correct, "n_tokens": self.n_tokens}
        optional["route_tokens"] = self.route_tokens
        arrays = {
            "format": np.asarray(KEYS_FORMAT),
            "model": np.asarray(self.model),
            "task": np.asarray(self.task),
            "samples": self.samples.astype(str),
            **{name: value for name, value in optional.items() if value is not None},
            "layers": self.layers,
            "expert_kind": self.expert_kind.astype(str),
            "n_neurons": np.asarray(self.n_neurons),
            "thresholds": np.asarray(self.thresholds, dtype=np.float64),
            "variants": np.asarray(self.variants, dtype=str),
        }
        for variant, (offsets, index, level) in self.keys.items():
            arrays[f"offsets_{variant}"] = offsets
            arrays[f"index_{variant}"] = index
            arrays[f"level_{variant}"] = level
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GroupKeys:
        """Read keys written by :meth:`save`; fail naming the file when it is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != KEYS_FORMAT:
                    raise MoemuiError(
                        f"{path}: key-neuron file of format {int(z['format'])}, expected "
                        f"{KEYS_FORMAT}; derive it again"
                    )
                variants = [str(v) for v in z["variants"]]
                return cls(
                    model=str(z["model"]),
                    task=str(z["task"]),
                    samples=z["samples"],
                    correct=z["correct"] if "correct" in z.files else None,
                    n_tokens=z["n_tokens"] if "n_tokens" in z.files else None,
                    layers=z["layers"],
                    expert_kind=z["expert_kind"],
                    n_neurons=int(z["n_neurons"]),
                    route_tokens=z["route_tokens"] if "route_tokens" in z.files else None,
                    thresholds=tuple(float(t) for t in z["thresholds"]),
                    keys={
                        v: (z[f"offsets_{v}"], z[f"index_{v}"], z[f"level_{v}"]) for v in variants
                    },
                )
        except FileNotFoundError:
            raise MoemuiError(f"{path}: file not found") from None
        except (OSError, KeyError, ValueError) as err:
            raise MoemuiError(f"{path}: not a key-neuron file ({err})") from None


def _read(var: xr.DataArray, name: str, region: tuple[slice, ...]) -> np.ndarray:
    """``var[region]`` as NumPy; a chunk that fails to decode (its CRC32C, a truncated
    frame) is a :class:`CorruptGroupError` naming the array and its chunks."""
    try:
        return var[region].values
    except Exception as err:  # noqa: BLE001 - any decode failure is the finding
        chunks = var.encoding.get("chunks") or var.shape
        where = []
        for sl, c, n in zip(region + (slice(None),) * var.ndim, chunks, var.shape, strict=False):
            a, b, _ = sl.indices(n)
            first, last = a // c, max(a, b - 1) // c
            where.append(str(first) if first == last else f"{first}..{last}")
        why = f"{type(err).__name__}: {err}".replace("\n", " ")
        raise CorruptGroupError(
            f"chunk {name}/c/{'/'.join(where)} cannot be read ({why})"
        ) from None


def as_keys(
    source: xr.Dataset | GroupKeys,
    thresholds: Iterable[float],
    model: str | None = None,
    task: str | None = None,
    sample_chunk: int = 16,
) -> GroupKeys:
    """``source`` as :class:`GroupKeys` holding ``thresholds``: a store group is read once
    (:meth:`GroupKeys.from_group`); keys already derived are checked to hold them."""
    if isinstance(source, GroupKeys):
        for tau in thresholds:
            source.level_of(tau)
        return source
    return GroupKeys.from_group(source, thresholds, model, task, sample_chunk)


def key_sets(
    source: xr.Dataset | GroupKeys,
    variant: str,
    thresholds: Iterable[float],
) -> dict[float, list[np.ndarray]]:
    """Per threshold, per sample: the flat indices of the sample's key neurons.

    The indices run over ``(layer position, expert, neuron)`` (the module's docstring);
    :meth:`GroupKeys.unravel` turns them into decoder-layer coordinates, and
    :func:`moemui.key_neurons` gives them as a table.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> score = np.zeros((1, 1, 2, 3), dtype=np.float32); score[0, 0, 1, 2] = 4.0
    >>> top = np.array([[[4.0, np.nan]]], dtype=np.float32)
    >>> ds = xr.Dataset({"score_glu": (("sample", "layer", "expert", "neuron"), score),
    ...                  "pairtop_glu": (("sample", "layer", "rank"), top)})
    >>> [s.tolist() for s in key_sets(ds, "glu", [0.1])[0.1]]
    [[5]]
    """
    thresholds = sorted({float(t) for t in thresholds})
    if isinstance(source, xr.Dataset) and (
        f"score_{variant}" not in source or f"pairtop_{variant}" not in source
    ):
        raise MoemuiError(
            f"the store group holds no variant {variant!r} (has {variants_of(source)})"
        )
    keys = as_keys(source, thresholds)
    return {tau: keys.sets(variant, tau) for tau in thresholds}


def union_size(sets: list[np.ndarray], pick: Iterable[int] | None = None) -> int:
    """Number of distinct key neurons over the samples ``pick`` (all by default)."""
    chosen = sets if pick is None else [sets[i] for i in pick]
    if not chosen:
        return 0
    return int(np.unique(np.concatenate(chosen)).size)
