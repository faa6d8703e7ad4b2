"""Evaluation: per-language validation loss (nats per token) and multiple-choice accuracy.

Multiple choice: each item of a JSONL set `{id, context, choices, label}` is scored by the
log-likelihood of every choice given its context, as a sum and per byte of the choice (a sum
favours short answers). Contexts longer than the window are left-truncated; sequences are scored
in length-sorted padded batches. Any model mapping ids [B, T] to logits works: this trainer's
`Transformer` (`(logits, loss)`), a Hugging Face causal LM (`.logits`), or a plain tensor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.tokenizer import Tokenizer

Autocast = Callable[[], AbstractContextManager]


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
) -> float:
    """Mean next-token cross-entropy over `windows` ([N, L+1] token ids), token-weighted."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size].to(device)
        with autocast():
            _, loss = model(chunk[:, :-1], chunk[:, 1:])
        n = chunk[:, 1:].numel()
        total += loss.item() * n
        count += n
    return total / count


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question; `label` indexes `choices`."""

    id: str
    context: str
    choices: list[str]
    label: int


def load_mc_items(path: str | Path, limit: int | None = None, seed: int = 0) -> list[MCItem]:
    """Read a JSONL set; with `limit`, a seeded sample of that many items (sets are sorted by topic)."""
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        item = MCItem(str(row["id"]), row["context"], list(row["choices"]), int(row["label"]))
        if not 0 <= item.label < len(item.choices):
            raise ValueError(f"{path}:{n}: label {item.label} is outside its {len(item.choices)} choices")
        items.append(item)
    if not items:
        raise ValueError(f"{path} holds no multiple-choice items")
    if limit is not None and limit < len(items):
        keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:limit])
        items = [items[i] for i in keep]
    return items


def continuation(context: str, choice: str) -> str:
    """The choice as it follows the context: a space is added where neither side has one (EXAMS)."""
    if choice[:1].isspace() or context[-1:].isspace() or not context:
        return choice
    return " " + choice


class MCTask:
    """A tokenized multiple-choice set, ready to be scored by any model with a window of `seq_len`."""

    def __init__(self, name: str, items: list[MCItem], tokenizer: Tokenizer, seq_len: int):
        self.name = name
        self.labels = np.array([it.label for it in items])
        self.n_choices = np.array([len(it.choices) for it in items])
        seqs, n_scored, n_bytes = [], [], []
        for it in items:
            ctx = tokenizer.encode(it.context)
            for choice in it.choices:
                cont = tokenizer.encode(continuation(it.context, choice))
                full = (ctx + cont)[-(seq_len + 1) :]  # left-truncate: keep the choice and what precedes it
                k = min(len(cont), len(full) - 1)
                seqs.append(full)
                n_scored.append(k)
                n_bytes.append(len(tokenizer.decode(cont[len(cont) - k :]).encode("utf-8")))
        self.seqs = seqs
        self.n_scored = np.array(n_scored)
        self.n_bytes = np.maximum(1, np.array(n_bytes))
        self.item_of = np.repeat(np.arange(len(items)), self.n_choices)
        # Longest first: similar lengths share a batch (little padding), and memory peaks at once.
        self.order = np.argsort([-len(s) for s in seqs], kind="stable")

    @property
    def chance(self) -> float:
        """Expected accuracy of guessing uniformly."""
        return float(np.mean(1.0 / self.n_choices))

    @torch.no_grad()
    def loglikelihoods(self, model: Callable, batch_size: int = 64, autocast: Autocast = nullcontext) -> np.ndarray:
        """Sum of log p(choice tokens | context) for every (item, choice) sequence, in item order."""
        device = _device_of(model)
        out = np.empty(len(self.seqs))
        for lo in range(0, len(self.order), batch_size):
            idx = self.order[lo : lo + batch_size]
            width = max(len(self.seqs[i]) for i in idx)
            # Right padding: causal attention never lets a real position see the pad after it.
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(self.seqs[i])] = torch.as_tensor(self.seqs[i])
            ids = ids.to(device)
            with autocast():
                logits = logits_of(model, ids[:, :-1])
            logp = F.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            for row, i in enumerate(idx):
                end = len(self.seqs[i]) - 1
                out[i] = logp[row, end - self.n_scored[i] : end].sum().item()
        return out

    def accuracy(self, model: Callable, batch_size: int = 64, autocast: Autocast = nullcontext) -> dict[str, float]:
        """`acc` (per-byte normalised score, the primary one), `acc_sum` (raw sum) and `chance`."""
        ll = self.loglikelihoods(model, batch_size, autocast)
        return {
            "acc": self._pick(ll / self.n_bytes),
            "acc_sum": self._pick(ll),
            "chance": self.chance,
        }

    def _pick(self, scores: np.ndarray) -> float:
        """Share of items whose highest-scoring choice is the label (ties go to the first choice)."""
        starts = np.concatenate([[0], np.cumsum(self.n_choices)[:-1]])
        best = np.array([np.argmax(scores[s : s + n]) for s, n in zip(starts, self.n_choices, strict=True)])
        return float(np.mean(best == self.labels))


def logits_of(model: Callable, ids: torch.Tensor) -> torch.Tensor:
    """Logits [B, T, V] from a model returning a tensor, a `(logits, ...)` tuple or `.logits`."""
    out = model(ids)
    if isinstance(out, tuple):
        return out[0]
    return getattr(out, "logits", out)


def _device_of(model: Callable) -> torch.device:
    params = getattr(model, "parameters", None)
    first = next(params(), None) if params else None
    return first.device if first is not None else torch.device("cpu")


class MCSuite:
    """Target-language and auxiliary-language tasks, scored together into one metrics dict.

    Keys: `<task>_acc`, `<task>_acc_sum` per task; `target_acc`, `target_acc_sum` and
    `target_acc_chance` averaged over the target tasks; `aux_acc`, `aux_acc_sum`, `aux_acc_chance`
    over the auxiliary ones.
    """

    def __init__(self, target: list[MCTask], auxiliary: list[MCTask]):
        self.groups = {"target": target, "aux": auxiliary}

    @classmethod
    def from_paths(
        cls,
        target: Mapping[str, str],
        auxiliary: Mapping[str, str],
        tokenizer: Tokenizer,
        seq_len: int,
        limit: int | None = None,
    ) -> MCSuite:
        """Load and tokenize every set; `limit` caps the items per set (a seeded sample)."""

        def tasks(paths: Mapping[str, str]) -> list[MCTask]:
            return [MCTask(n, load_mc_items(p, limit), tokenizer, seq_len) for n, p in paths.items()]

        return cls(tasks(target), tasks(auxiliary))

    def evaluate(self, model: Callable, batch_size: int = 64, autocast: Autocast = nullcontext) -> dict[str, float]:
        """Accuracy per task and per group (see the class doc)."""
        metrics: dict[str, float] = {}
        for group, tasks in self.groups.items():
            scores = [task.accuracy(model, batch_size, autocast) for task in tasks]
            for task, s in zip(tasks, scores, strict=True):
                metrics[f"{task.name}_acc"] = s["acc"]
                metrics[f"{task.name}_acc_sum"] = s["acc_sum"]
            if scores:
                for key, suffix in (("acc", ""), ("acc_sum", "_sum"), ("chance", "_chance")):
                    metrics[f"{group}_acc{suffix}"] = float(np.mean([s[key] for s in scores]))
        return metrics
