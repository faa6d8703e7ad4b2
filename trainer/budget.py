"""The token arithmetic of a run, in one place: U, E, r and T, and the sequences they make.

T = E·U/(1−r) (`mode: epochs`) or E = (1−r)·T/U (`mode: fixed_tokens`); a run trains whole
sequences of L = seq_len tokens, so `TokenPlan` says exactly how many come from each corpus. The
config, the training stream, the trainer's epoch metric and the search's cost model all use it.
"""

from __future__ import annotations

from dataclasses import dataclass


def train_tokens(unique: int, epochs: float, mix_ratio: float) -> int:
    """T of E epochs over U target tokens when a share r of all training tokens is auxiliary."""
    return int(round(epochs * unique / (1.0 - mix_ratio)))


def epochs_in(tokens: float, unique: int, mix_ratio: float) -> float:
    """Passes over the U target tokens that `tokens` training tokens make (the inverse of `train_tokens`)."""
    return tokens * (1.0 - mix_ratio) / unique


@dataclass(frozen=True)
class TokenPlan:
    """A run's sequences: `n_target` from the target pool of `n_chunks` chunks, `n_aux` auxiliary.

    Example:
        >>> plan = TokenPlan.of(unique=1000, seq_len=10, mix_ratio=0.5, epochs=2)
        >>> plan.n_target, plan.n_aux, plan.tokens
        (200, 200, 4000)
    """

    seq_len: int
    n_chunks: int
    n_target: int
    n_aux: int

    @classmethod
    def of(
        cls, unique: int, seq_len: int, mix_ratio: float, epochs: float | None = None, tokens: int | None = None
    ) -> TokenPlan:
        """The plan of E epochs (`epochs`) or of exactly T tokens (`tokens`) at mix ratio r.

        Args:
            unique: U, the target tokens training may use.
            seq_len: L, tokens per sequence.
            mix_ratio: r, the auxiliary share of all sequences.
            epochs: E (`mode: epochs`): round(E·U/L) target sequences, and as many auxiliary ones as r asks.
            tokens: T (`mode: fixed_tokens`): T // L sequences, round((1−r)·T/L) of them target.
        """
        n_chunks = unique // seq_len
        if tokens is not None:
            n_total = tokens // seq_len
            n_target = round((1 - mix_ratio) * n_total)
        else:
            n_target = round(epochs * n_chunks)
            n_total = round(n_target / (1 - mix_ratio))
        return cls(seq_len, n_chunks, n_target, n_total - n_target)

    @property
    def n_sequences(self) -> int:
        return self.n_target + self.n_aux

    @property
    def tokens(self) -> int:
        """T as trained: input tokens over all sequences."""
        return self.n_sequences * self.seq_len

    @property
    def epochs(self) -> float:
        """E as trained: target sequences per chunk."""
        return self.n_target / self.n_chunks
