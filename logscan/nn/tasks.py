"""Training tasks: the selective-copy synthetic task and character-level language modelling.

A task hands out batches ``(inputs, targets, mask)`` of integer arrays
``(B, T)`` (NumPy; the trainer moves them to the device) and says how to
measure held-out quality.

Examples
--------
>>> import numpy as np
>>> task = SelectiveCopy(seq_len=12, data_tokens=3, vocab_size=6)
>>> inputs, targets, mask = task.batch(np.random.default_rng(0), 2)
>>> inputs.shape, int(mask.sum())
((2, 12), 6)
>>> corpus = CharCorpus("abcabcabcabc", heldout_fraction=0.25)
>>> corpus.vocab_size, corpus.decode(corpus.encode("cab"))
(3, 'cab')
"""

from __future__ import annotations

import numpy as np


class SelectiveCopy:
    """Data tokens scattered among noise; reproduce them, in order, at the end (Mamba's selective copying).

    A sequence has ``seq_len`` tokens: the first ``seq_len - data_tokens``
    are noise (token 0) except ``data_tokens`` random positions holding data
    tokens (values ``2 .. vocab_size-1``); the last ``data_tokens`` are the
    marker token 1. At the ``k``-th marker the model must output the ``k``-th
    data token. Loss and accuracy count the marker positions only.

    Parameters
    ----------
    seq_len : int
        Total length, markers included.
    data_tokens : int
        How many tokens to memorize.
    vocab_size : int
        Total vocabulary, noise and marker included (so ``vocab_size - 2`` data values).
    """

    NOISE, MARKER = 0, 1

    def __init__(self, seq_len=64, data_tokens=8, vocab_size=10):
        if vocab_size < 3:
            raise ValueError(f"SelectiveCopy: vocab_size must be >= 3 (noise, marker, data), got {vocab_size}")
        if data_tokens < 1 or seq_len < 2 * data_tokens:
            raise ValueError(f"SelectiveCopy: need 1 <= data_tokens and seq_len >= 2 * data_tokens, got "
                             f"seq_len={seq_len}, data_tokens={data_tokens}")
        self.seq_len, self.data_tokens, self.vocab_size = seq_len, data_tokens, vocab_size

    def batch(self, rng, batch_size):
        B, T, N = batch_size, self.seq_len, self.data_tokens
        context = T - N
        data = rng.integers(2, self.vocab_size, (B, N))
        # N distinct sorted positions per row: argsort of random keys, first N, sorted
        positions = np.sort(np.argsort(rng.random((B, context)), axis=1)[:, :N], axis=1)
        inputs = np.full((B, T), self.NOISE, dtype=np.int64)
        np.put_along_axis(inputs, positions, data, axis=1)
        inputs[:, context:] = self.MARKER
        targets = np.zeros((B, T), dtype=np.int64)
        targets[:, context:] = data
        mask = np.zeros((B, T), dtype=bool)
        mask[:, context:] = True
        return inputs, targets, mask


class CharCorpus:
    """A text as characters; the last ``heldout_fraction`` is held out.

    Parameters
    ----------
    text : str
    heldout_fraction : float
    """

    def __init__(self, text, heldout_fraction=0.1):
        if len(text) < 4:
            raise ValueError(f"CharCorpus: the text is too short ({len(text)} characters)")
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"CharCorpus: heldout_fraction must be in (0, 1), got {heldout_fraction}")
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        encoded = self.encode(text)
        split = int(round(len(encoded) * (1 - heldout_fraction)))
        self.train, self.heldout = encoded[:split], encoded[split:]

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as error:
            raise ValueError(f"CharCorpus.encode: character {error.args[0]!r} is not in the corpus") from None

    def decode(self, tokens):
        return "".join(self.chars[int(t)] for t in tokens)

    def _check_length(self, data, seq_len, split):
        if len(data) < seq_len + 1:
            raise ValueError(f"CharCorpus: the {split} part has {len(data)} characters, fewer than "
                             f"seq_len + 1 = {seq_len + 1}")

    def check_seq_len(self, seq_len):
        """ValueError unless both the training and the held-out part hold a window of ``seq_len + 1``."""
        self._check_length(self.train, seq_len, "training")
        self._check_length(self.heldout, seq_len, "held-out")

    def batch(self, rng, batch_size, seq_len):
        """Random training windows: inputs ``text[s:s+T]``, targets ``text[s+1:s+T+1]``."""
        self._check_length(self.train, seq_len, "training")
        starts = rng.integers(0, len(self.train) - seq_len, batch_size)
        windows = self.train[starts[:, None] + np.arange(seq_len + 1)]
        return windows[:, :-1], windows[:, 1:], None

    def heldout_batches(self, batch_size, seq_len, max_batches=None):
        """Consecutive non-overlapping windows covering the held-out text (or its first ``max_batches``)."""
        self._check_length(self.heldout, seq_len, "held-out")
        count = (len(self.heldout) - 1) // seq_len
        starts = np.arange(count) * seq_len
        batches = [starts[k:k + batch_size] for k in range(0, count, batch_size)]
        for chunk in batches[:max_batches]:
            windows = self.heldout[chunk[:, None] + np.arange(seq_len + 1)]
            yield windows[:, :-1], windows[:, 1:], None
