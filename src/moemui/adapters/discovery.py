"""Which causal-LM families of the installed transformers are mixtures of experts.

Discovered from the library, not from a hand-kept list: every architecture of
``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` whose modeling module defines fused experts
(``@use_experts_implementation``) or an experts/MoE module class. A new transformers
release that adds a MoE family adds it here without anyone listing it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re

_MOE_CLASS = re.compile(r"^class \w*(Experts|MoE|Moe)\w*\((nn\.Module|nn\.Linear)\)", re.M)
_DECORATOR = re.compile(r"^@use_experts_implementation", re.M)


@functools.cache
def moe_architectures() -> dict[str, str]:
    """``{architecture: model_type}`` of every MoE causal-LM class in transformers.

    Where several model types share an architecture the text one (``*_text``) is kept,
    else the first. Multimodal wrappers (``...ForConditionalGeneration``) are left out:
    their text model, where transformers has one as a causal LM, is the family.
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    found: dict[str, str] = {}
    for model_type, arch in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items():
        if not arch.endswith(("ForCausalLM", "LMHeadModel")):
            continue
        cls = getattr(transformers, arch, None)
        if cls is None:
            continue
        source = inspect.getsource(importlib.import_module(cls.__module__))
        if not (_DECORATOR.search(source) or _MOE_CLASS.search(source)):
            continue
        if arch not in found or model_type.endswith("_text"):
            found[arch] = model_type
    return found


def is_moe_architecture(arch: str) -> bool:
    """Whether transformers' class ``arch`` is a MoE causal LM (its module alone is read)."""
    import transformers

    cls = getattr(transformers, arch, None)
    if cls is None:
        return False
    source = inspect.getsource(importlib.import_module(cls.__module__))
    return bool(_DECORATOR.search(source) or _MOE_CLASS.search(source))
