"""A byte-level tokenizer built offline, for the built-in tiny models.

Every UTF-8 text encodes without an unknown token: one token per byte (the GPT-2
byte-to-unicode alphabet, a BPE model with no merges), plus three special tokens.
It is saved with ``save_pretrained`` and loads back through ``AutoTokenizer``.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, BOS_TOKEN)


def _bytes_to_unicode() -> dict[int, str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def byte_alphabet() -> list[str]:
    """The 256 printable characters that stand for the bytes 0..255, in byte order."""
    mapping = _bytes_to_unicode()
    return [mapping[b] for b in range(256)]


def build_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ids 0..2 are pad, eos, bos; ids 3..258 are the bytes.

    Examples
    --------
    >>> tok = build_tokenizer()
    >>> tok.decode(tok("12+7=")["input_ids"])
    '12+7='
    >>> len(tok)
    259
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for char in byte_alphabet():
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
