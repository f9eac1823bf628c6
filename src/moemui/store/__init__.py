"""The activations store: one Zarr v3 store, one group per model and task (docs/store.md).

A capture holds the group's lock (:class:`GroupLock`) and streams batches into a
partial group outside the store's tree (``<root.parent>/.<root.name>.partial/``, on the
same filesystem); only when every sample is written does it record each array's
content digest, mark the group complete and move it into place with one rename.
Every chunk carries a CRC32C checksum. Readers only check (:func:`check_group`,
:func:`verify_group`) and fail with one line naming the group and the commands that
capture it again; ``moemui check-store --set-aside`` is the one tool that moves a
group, out of the tree to ``<root.parent>/<root.name>.set-aside/``.

Modules: :mod:`~moemui.store.layout` (what a group holds: the one description of its
arrays, which the writer creates and the checker expects), :mod:`~moemui.store.digest`
(content digests), :mod:`~moemui.store.lock` (one writer per group),
:mod:`~moemui.store.writer` (writing and publishing a group) and
:mod:`~moemui.store.read` (checking, opening, verifying and setting aside a group). Their
public names are importable from here.
"""

from __future__ import annotations

from moemui.store.digest import DIGEST_ATTR, DIGEST_SCHEME, Digest, digest_of
from moemui.store.layout import (
    COMPLETE_ATTR,
    COMPRESSORS,
    KEEP,
    KEEP_RULE,
    SAMPLE_CHUNK,
    ArraySpec,
    Layout,
    retain,
)
from moemui.store.lock import HEARTBEAT_S, LOCK_TIMEOUT_S, GroupLock, partial_dir
from moemui.store.read import (
    CorruptGroupError,
    check_digest,
    check_group,
    error_text,
    group_arrays,
    group_problems,
    not_a_group,
    open_group,
    recapture_hint,
    set_aside,
    set_aside_dir,
    timestamp_ignored,
    unusable,
    verify_group,
    verify_read,
)
from moemui.store.writer import StoreWriter, consolidate, index_store

__all__ = [
    "COMPLETE_ATTR",
    "COMPRESSORS",
    "DIGEST_ATTR",
    "DIGEST_SCHEME",
    "HEARTBEAT_S",
    "KEEP",
    "KEEP_RULE",
    "LOCK_TIMEOUT_S",
    "SAMPLE_CHUNK",
    "ArraySpec",
    "CorruptGroupError",
    "Digest",
    "GroupLock",
    "Layout",
    "StoreWriter",
    "check_digest",
    "check_group",
    "consolidate",
    "digest_of",
    "error_text",
    "group_arrays",
    "group_problems",
    "index_store",
    "not_a_group",
    "open_group",
    "partial_dir",
    "recapture_hint",
    "retain",
    "set_aside",
    "set_aside_dir",
    "timestamp_ignored",
    "unusable",
    "verify_group",
    "verify_read",
]
