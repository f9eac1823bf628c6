"""Model sources: where a configured model's weights come from, and loading them.

A config model's ``source`` is one of

``builtin:<recipe>``
    a tiny MoE built locally by the workflow (:data:`moemui.recipes.RECIPES`) under
    ``results/models/{model}``;
``trained:<recipe>`` or ``trained:<recipe>@<step>``
    a tiny MoE trained by the workflow (:data:`moemui.recipes.TRAINED_RECIPES`) under
    ``results/training/{recipe}``: the final checkpoint, or the one saved at ``step``;
``local:<path>`` or a path
    a directory written by ``save_pretrained``; a path starts with ``/``, ``./``,
    ``../`` or ``~``, or is a relative path (from the working directory) to a directory
    that exists;
``<org>/<name>``
    a Hugging Face Hub id, with the model's ``revision`` (default ``main``); used from
    the local cache when offline (``HF_HUB_OFFLINE=1``). A directory of that name,
    relative to the working directory, is taken instead (see :func:`parse_source`).

This module is the one place that reads a source: the config's checks, the workflow
and the CLI call :func:`parse_source` and the helpers after it. Everything loads through
``from_pretrained`` with the ``grouped_mm`` experts implementation, which the capture
mirrors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.recipes import (
    BUILTIN_CONTEXT,
    TRAINED_CONTEXT,
    builtin_recipe,
    recipe_config,
    trained_config,
    trained_recipe,
)

if TYPE_CHECKING:  # torch and transformers load only when a model is loaded
    import torch
    from transformers import PretrainedConfig

log = logging.getLogger(__name__)

SourceKind = Literal["builtin", "trained", "local", "hub"]
DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A parsed model source: ``kind`` and ``ref`` (recipe, path or Hub id)."""

    kind: SourceKind
    ref: str


def parse_source(source: str, model: str = "model") -> ModelSource:
    """Parse a config ``source`` string (or the CLI's ``--source``, ``moemui inspect``'s
    argument).

    In order: the ``builtin:``, ``trained:`` and ``local:`` prefixes; a path that says
    it is one (``/``, ``./``, ``../``, ``~``); a relative path to a directory that
    exists (``results/training/olmoe_v2/step-00600``, relative to the working
    directory); a Hub id ``<org>/<name>``. So ``org/name`` is a Hub id unless a
    directory ``org/name`` is there; a path that is neither (no such directory, and not
    an ``<org>/<name>``) is an error.

    Raises
    ------
    MoemuiError
        ``model '<model>': unknown model source ...`` for a string that is none of these.

    Examples
    --------
    >>> parse_source("builtin:olmoe_tiny")
    ModelSource(kind='builtin', ref='olmoe_tiny')
    >>> parse_source("allenai/OLMoE-1B-7B-0924")
    ModelSource(kind='hub', ref='allenai/OLMoE-1B-7B-0924')
    >>> parse_source("./checkpoints/step100")
    ModelSource(kind='local', ref='./checkpoints/step100')
    >>> parse_source("mm/olmoe")  # no directory mm/olmoe here
    ModelSource(kind='hub', ref='mm/olmoe')
    """
    if not isinstance(source, str) or not source:
        raise MoemuiError(f"model {model!r}: source must be a non-empty string")
    if source.startswith("builtin:"):
        return ModelSource("builtin", source.removeprefix("builtin:"))
    if source.startswith("trained:"):
        return ModelSource("trained", source.removeprefix("trained:"))
    if source.startswith("local:"):
        return ModelSource("local", source.removeprefix("local:"))
    if source.startswith(("/", "./", "../", "~")) or Path(source).is_dir():
        return ModelSource("local", source)
    if _HUB_ID.match(source):
        return ModelSource("hub", source)
    raise MoemuiError(
        f"model {model!r}: unknown model source {source!r}; expected builtin:<recipe>, "
        "trained:<recipe>[@<step>], local:<path>, a path (starting with /, ./, ../ or ~, "
        "or a directory that exists), or a Hub id <org>/<name>"
    )


def parse_trained(ref: str) -> tuple[str, int]:
    """The recipe and step of a ``trained:`` source's ref: ``"olmoe_v2@200"`` ->
    ``("olmoe_v2", 200)``; no ``@`` means the final step.

    Raises
    ------
    MoemuiError
        An unknown recipe, or a step at which the recipe saves no checkpoint.
    """
    name, _, step = ref.partition("@")
    recipe = trained_recipe(name)
    if not step:
        return name, recipe.steps
    # ASCII digits only: str.isdigit() also takes "²" (int() rejects it) and "١٥٠"
    if not (step.isascii() and step.isdigit()) or int(step) not in recipe.save_steps:
        raise MoemuiError(
            f"trained recipe {name!r} saves no checkpoint at step {step!r}; "
            f"saved steps: {', '.join(map(str, recipe.save_steps))}"
        )
    return name, int(step)


def checkpoint_source(source: str, step: int) -> str:
    """The source of a series' checkpoint at ``step`` that names no source of its own:
    ``trained:<recipe>@<step>`` for a trained series, the series' source otherwise (a Hub
    id, whose checkpoint is a revision). Reads the string only: it is checked later.

    Examples
    --------
    >>> checkpoint_source("trained:olmoe_v2", 150)
    'trained:olmoe_v2@150'
    >>> checkpoint_source("allenai/OLMoE-1B-7B-0924", 5000)
    'allenai/OLMoE-1B-7B-0924'
    """
    if not source.startswith("trained:"):
        return source
    return f"{source.partition('@')[0]}@{step}"


def check_source(source: ModelSource) -> None:
    """Fail unless ``source`` names something that is there: a known builtin recipe, a
    trained recipe and one of its saved steps, a local directory that exists (a Hub id
    is not looked up). The message names no model or key: the caller's does.
    """
    if source.kind == "trained":
        parse_trained(source.ref)
    elif source.kind == "builtin":
        builtin_recipe(source.ref)
    elif source.kind == "local":
        if not source.ref.strip():
            raise MoemuiError("empty path")
        if not Path(source.ref).expanduser().is_dir():
            raise MoemuiError(f"local model directory {source.ref} does not exist")


def recipe_model_config(source: ModelSource) -> PretrainedConfig | None:
    """The transformers config of a ``builtin:`` or ``trained:`` source, made from its
    recipe (no file read); None for a local directory or a Hub id."""
    if source.kind == "builtin":
        return recipe_config(source.ref)
    if source.kind == "trained":
        return trained_config(trained_recipe(parse_trained(source.ref)[0]))
    return None


def recipe_context(source: ModelSource) -> int | None:
    """The context (``max_position_embeddings``) of a ``builtin:`` or ``trained:``
    source's config, as :func:`recipe_model_config` makes it, without importing
    transformers (the config's checks run at every workflow parse, a Slurm job's too);
    None for a local directory or a Hub id. An unknown recipe raises as there."""
    if source.kind == "builtin":
        builtin_recipe(source.ref)
        return BUILTIN_CONTEXT
    if source.kind == "trained":
        parse_trained(source.ref)
        return TRAINED_CONTEXT
    return None


def list_revisions(repo: str) -> list[str]:
    """The branches and tags of a Hub model repository (its published checkpoints).

    Needs the network; offline (``HF_HUB_OFFLINE=1``) or unreachable, it fails with a
    message naming the repository.
    """
    from huggingface_hub import list_repo_refs

    try:
        refs = list_repo_refs(repo)
    except Exception as err:  # offline, unknown or gated repository
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MoemuiError(f"cannot list the revisions of {repo}: {reason}") from None
    return [r.name for r in refs.branches] + [r.name for r in refs.tags]


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_architecture(archs: list[str], model: str) -> None:
    """Fail unless one of a config's ``architectures`` is a MoE family the capture knows.

    A family listed as unsupported fails with its reason; a dense or unknown one
    fails saying it has no MoE adapter.
    """
    from moemui.adapters import REGISTRY, UNSUPPORTED
    from moemui.adapters.discovery import is_moe_architecture

    for arch in archs:
        if arch in UNSUPPORTED:
            raise MoemuiError(
                f"model {model!r}: architecture {arch} is not supported: {UNSUPPORTED[arch]}"
            )
    if not any(arch in REGISTRY or is_moe_architecture(arch) for arch in archs):
        raise MoemuiError(
            f"model {model!r}: architecture {', '.join(archs) or '(none)'} has no MoE "
            "adapter (no sparse MoE layer known in transformers for it)"
        )


def _from_config(config, **kwargs):
    """``AutoModelForCausalLM.from_config`` with the ``grouped_mm`` experts where the
    family has fused experts (DBRX and LongCat-Flash do not)."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_config(
            config, experts_implementation="grouped_mm", **kwargs
        )
    except ValueError as err:
        if "does not support setting experts implementation" not in str(err):
            raise
        return AutoModelForCausalLM.from_config(type(config).from_dict(config.to_dict()), **kwargs)


def _location(path_or_id: str, model: str, revision: str | None) -> tuple[str, dict, bool]:
    """Where ``from_pretrained`` loads model ``model`` from: (a local directory or a Hub
    id, the ``revision`` keyword for a Hub id, whether it is a local directory)."""
    local = Path(path_or_id).expanduser()
    if local.is_dir():
        return str(local), {}, True
    if parse_source(path_or_id, model).kind != "hub":
        raise MoemuiError(f"model {model!r}: local model directory {path_or_id} does not exist")
    return path_or_id, {"revision": revision or default("models.revision")}, False


def model_skeleton(
    source: str,
    model: str,
    revision: str | None = None,
    *,
    local_files_only: bool = False,
    trust_remote_code: bool | None = None,
):
    """The model of a config source built from its config alone, on the meta device.

    No weight is read and nothing runs: enough to read the MoE geometry and count the
    parameters (``moemui inspect``, ``moemui plan``). ``source`` is any config source
    (``builtin:``, ``trained:``, a directory, which needs only its ``config.json``, or a
    Hub id); with ``local_files_only`` a Hub config must be in the Hugging Face cache.
    """
    import torch
    from transformers import AutoConfig

    if trust_remote_code is None:
        trust_remote_code = default("models.trust_remote_code")
    parsed = parse_source(source, model)
    config = recipe_model_config(parsed)
    if config is None:
        where, kwargs, _ = _location(parsed.ref, model, revision)
        try:
            config = AutoConfig.from_pretrained(
                where,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
        except (OSError, ValueError) as err:
            if parsed.kind == "hub" and local_files_only:
                raise MoemuiError(
                    f"model {model!r}: config of {where}@{kwargs['revision']} not in the "
                    "Hugging Face cache"
                ) from None
            raise MoemuiError(
                f"model {model!r}: cannot read the config of {where}: {str(err).splitlines()[0]}"
            ) from None
        check_architecture(list(getattr(config, "architectures", None) or []), model)
    with torch.device("meta"):
        return _from_config(config)


def _load_error(model: str, where: str, kwargs: dict, is_dir: bool, err: Exception):
    """The error naming the model and what could not be loaded from where."""
    what = f"directory {where}" if is_dir else f"Hub model {where} (revision {kwargs['revision']})"
    return MoemuiError(f"model {model!r}: cannot load {what}: {str(err).splitlines()[0]}")


def load_model(
    path_or_id: str,
    model: str,
    revision: str | None = None,
    dtype: str | None = None,
    device: str = "auto",
    tokenizer: bool = True,
    trust_remote_code: bool | None = None,
    device_map: str | None = None,
):
    """Load a causal LM (and its tokenizer) for model ``model`` of the config.

    Parameters
    ----------
    path_or_id
        A local directory or a Hub id.
    model
        The config's model id, named in every error.
    revision
        Hub revision (branch, tag or commit); ignored for local directories.
    dtype
        ``float32``, ``bfloat16`` or ``float16`` (None: the config's default,
        ``models.dtype``).
    device
        ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
    tokenizer
        Also load the tokenizer (generation needs it; capture does not).
    trust_remote_code
        Let transformers run the repository's own code (None: the config's default,
        ``models.trust_remote_code``, off). The capture still needs an architecture it
        knows.
    device_map
        None: the whole model on ``device``. ``auto``, ``balanced``, ...: spread over the
        visible GPUs by transformers (``device`` is then ignored).

    Returns
    -------
    (model, tokenizer or None)
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = default("models.dtype") if dtype is None else dtype
    if trust_remote_code is None:
        trust_remote_code = default("models.trust_remote_code")
    if dtype not in DTYPES:
        raise MoemuiError(
            f"model {model!r}: unknown dtype {dtype!r}; expected one of {list(DTYPES)}"
        )
    where, kwargs, is_dir = _location(path_or_id, model, revision)
    kwargs["trust_remote_code"] = bool(trust_remote_code)
    placement = {"device_map": device_map} if device_map else {}
    try:
        config = AutoConfig.from_pretrained(where, **kwargs)
        archs = list(getattr(config, "architectures", None) or [])
        check_architecture(archs, model)
        try:
            lm = AutoModelForCausalLM.from_pretrained(
                where,
                config=config,
                dtype=getattr(torch, dtype),
                experts_implementation="grouped_mm",
                **placement,
                **kwargs,
            )
        except ValueError as err:  # families whose experts are not fused (DBRX, LongCat)
            if "does not support setting experts implementation" not in str(err):
                raise
            config = AutoConfig.from_pretrained(where, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(
                where, config=config, dtype=getattr(torch, dtype), **placement, **kwargs
            )
        tok = AutoTokenizer.from_pretrained(where, **kwargs) if tokenizer else None
    except (OSError, ValueError) as err:
        raise _load_error(model, where, kwargs, is_dir, err) from None
    lm = (lm if device_map else lm.to(pick_device(device))).eval()
    log.info("loaded %s from %s (%s, %s)", model, where, dtype, next(lm.parameters()).device)
    return lm, tok


def load_tokenizer(
    path_or_id: str,
    model: str,
    revision: str | None = None,
    trust_remote_code: bool | None = None,
):
    """The tokenizer, generation config and model config of a model, without its weights
    (what importing responses made elsewhere needs).

    Returns
    -------
    (tokenizer, generation config, model config). The generation config is the
    repository's ``generation_config.json``, or the one transformers derives from the
    model config when there is none.
    """
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    if trust_remote_code is None:
        trust_remote_code = default("models.trust_remote_code")
    where, kwargs, is_dir = _location(path_or_id, model, revision)
    kwargs["trust_remote_code"] = bool(trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(where, **kwargs)
        tok = AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as err:
        raise _load_error(model, where, kwargs, is_dir, err) from None
    try:
        generation = GenerationConfig.from_pretrained(
            where, **{k: v for k, v in kwargs.items() if k == "revision"}
        )
    except OSError:
        generation = GenerationConfig.from_model_config(config)
    return tok, generation, config
