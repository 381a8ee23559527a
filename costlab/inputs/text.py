"""Raw-string inputs: their two sizes (words and bytes per string), how to count them as the
model's own vectorizer does, and strings of a given size.

A string input (a Keras `Input(dtype="string")` feeding `TextVectorization`) has no free
axis whose length sets its cost: the cost follows the words each string splits into and
its bytes. `InputSpace.from_model` gives it two dimensions, `<input>_words` and
`<input>_bytes`, the largest over the strings of one request (a batch is padded to its
longest sequence). A string of `w` words has at least `2·w − 1` bytes (one-byte words,
one space between): `strings` makes longer ones where the size asks for fewer bytes.

Example:
    >>> from costlab.inputs.text import Text, count_words, strings
    >>> t = Text("text_words", "text_bytes", vocabulary=("the", "cat", "sat"))
    >>> s = strings(t, rows=2, words=3, n_bytes=11, pattern="repeat", seed=0)
    >>> [count_words(t, x) for x in s.ravel()], [len(x.encode()) for x in s.ravel()]
    ([3, 3], [11, 11])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: Dtype names of string inputs (Keras `string`, numpy's `str` / `object`, TF's `tf.string`).
TEXT_DTYPES = ("string", "str", "object", "bytes")
#: Keras TextVectorization's `lower_and_strip_punctuation` (its DEFAULT_STRIP_REGEX).
_STRIP = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
#: Value patterns of strings: as `costlab.inputs.space.VALUE_PATTERNS`, plus words outside the vocabulary.
TEXT_PATTERNS = ("random", "min", "max", "repeat", "alternate", "unknown")


def is_text(dtype) -> bool:
    return str(dtype) in TEXT_DTYPES


@dataclass(frozen=True, slots=True)
class Text:
    """How a string input is sized and split.

    Attributes:
        words, bytes: The names of its two dimensions (`<input>_words`, `<input>_bytes`).
        vocabulary: Words to draw from (the model's `TextVectorization.get_vocabulary()`,
            without the padding and OOV entries); empty: random lowercase words.
        split: `"whitespace"` or `"character"`, as the vectorizer splits.
        standardize: `"lower_and_strip_punctuation"`, `"lower"`, `"strip_punctuation"` or
            `None`, as the vectorizer standardizes before splitting.
    """

    words: str
    bytes: str
    vocabulary: tuple = ()
    split: str = "whitespace"
    standardize: str | None = "lower_and_strip_punctuation"

    def to_dict(self, *, vocabulary: bool = True) -> dict:
        out = {"words": self.words, "bytes": self.bytes, "split": self.split, "standardize": self.standardize}
        if vocabulary and self.vocabulary:
            out["vocabulary"] = list(self.vocabulary)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Text:
        return cls(d["words"], d["bytes"], tuple(d.get("vocabulary") or ()), d.get("split", "whitespace"),
                   d.get("standardize", "lower_and_strip_punctuation"))


def count_words(text: Text, s: str) -> int:
    """Tokens the model's vectorizer makes of `s`: standardized, then split."""
    if text.split == "character":
        return len(_standardize(text, s))
    return len(_standardize(text, s).split())


def _standardize(text: Text, s: str) -> str:
    std = text.standardize or ""
    if "lower" in std:
        s = s.lower()
    if "strip_punctuation" in std:
        s = _STRIP.sub("", s)
    return s


def sizes(text: Text, values) -> tuple[int, int]:
    """(words, bytes) of an array of strings: the largest over its strings."""
    flat = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object).ravel()]
    if not flat:
        return 0, 0
    return max(count_words(text, s) for s in flat), max(len(s.encode()) for s in flat)


def strings(text: Text, *, rows: int, words: int, n_bytes: int, pattern: str = "random", seed: int = 0,
            shape: tuple | None = None) -> np.ndarray:
    """`rows` strings of exactly `words` words and `max(n_bytes, 2·words − 1)` bytes (ASCII),
    as an object array of `shape` (default `(rows,)`).

    Patterns: `random` (words drawn from the vocabulary), `min` (its first word
    repeated), `max` (its longest words), `repeat` (one drawn word repeated), `alternate`
    (two drawn words in turn), `unknown` (random letters, outside any vocabulary). The
    words are kept whole and the last one takes the bytes left (repeated: it leaves the
    vocabulary, as a long crafted word does); where whole words do not fit, each word is
    cut to an equal share.
    """
    rng = np.random.default_rng(seed)
    vocab = [w for w in text.vocabulary if w and " " not in w] or None
    words = max(0, int(words))
    total = max(int(n_bytes), 2 * words - 1, 0)
    if words == 0:
        row = " " * total
        return _shaped([row] * rows, shape)
    letters = total - (words - 1)
    slot = [letters // words + (1 if i < letters % words else 0) for i in range(words)]

    def draw(n):
        if pattern == "unknown" or vocab is None:
            return ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=max(1, k))) for k in slot[:n]]
        if pattern == "min":
            return [vocab[0]] * n
        if pattern == "max":
            longest = sorted(vocab, key=len, reverse=True)[:8]
            return [longest[i % len(longest)] for i in range(n)]
        if pattern == "repeat":
            return [vocab[int(rng.integers(len(vocab)))]] * n
        if pattern == "alternate":
            a, b = (vocab[int(i)] for i in rng.integers(len(vocab), size=2))
            return [a if i % 2 == 0 else b for i in range(n)]
        return [vocab[int(i)] for i in rng.integers(len(vocab), size=n)]

    def stretch(w, k):
        return (w * (k // len(w) + 1))[:k]

    out = []
    for _ in range(rows):
        chosen = draw(words)
        head = sum(len(w) for w in chosen[:-1]) + (words - 1)
        if head + 1 <= total:  # whole words, the last one takes the rest
            out.append(" ".join([*chosen[:-1], stretch(chosen[-1], total - head)]))
        else:
            out.append(" ".join(stretch(w, k) for w, k in zip(chosen, slot, strict=True)))
    return _shaped(out, shape)


def _shaped(rows: list, shape) -> np.ndarray:
    arr = np.empty(len(rows), dtype=object)
    arr[:] = rows
    return arr.reshape(shape) if shape is not None else arr


def cut(text: Text, values, words: int, n_bytes: int) -> np.ndarray:
    """Each string cut to at most `words` words and `n_bytes` bytes (whole characters)."""
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        s = " ".join(str(v).split()[:words]) if text.split == "whitespace" else str(v)[:words]
        out[idx] = s.encode()[:n_bytes].decode(errors="ignore")
    return out
