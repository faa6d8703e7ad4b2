"""Multiple-choice scoring: a model that knows the answer gets 100%, shuffled labels give chance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from trainer.config import ModelConfig, OptimConfig
from trainer.evaluate import MCItem, MCTask, continuation, load_mc_items
from trainer.model import build_model, build_optimizer
from trainer.tokenizer import ByteTokenizer
from trainer.train import run

TEXT = "automix repeats one string forever. "
SEQ = 32


@pytest.fixture(scope="module")
def parrot() -> torch.nn.Module:
    """A tiny transformer trained until it recites TEXT (the forced answer)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=32, base_width=32, depth=1, n_heads=2), 257, SEQ)
    opt = build_optimizer(model, OptimConfig(learning_rate=1e-2, weight_decay=0.0))
    ids = torch.tensor(list((TEXT * 40).encode()))
    for _ in range(250):
        starts = torch.randint(0, len(ids) - SEQ - 1, (16,))
        batch = torch.stack([ids[s : s + SEQ + 1] for s in starts])
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _items(n: int, rng: np.random.Generator, shuffle_labels: bool = False) -> list[MCItem]:
    """Context: TEXT up to a word start (longer than the window: left-truncated); choices: 6-char pieces."""
    doubled, items = TEXT * 3, []
    cuts = [k for k in range(len(TEXT), 2 * len(TEXT)) if doubled[k - 1] == " "]  # no separator is added
    for i in range(n):
        k = int(rng.choice(cuts))
        right = doubled[k : k + 6]
        wrong = [doubled[k + d : k + d + 6] for d in (7, 13, 19)]
        choices = [right, *wrong]
        order = rng.permutation(4)
        choices = [choices[j] for j in order]
        label = int(rng.integers(0, 4)) if shuffle_labels else int(np.argmin(order))
        items.append(MCItem(str(i), doubled[:k], choices, label))
    return items


def test_forced_answer_scores_100_and_shuffled_labels_score_chance(parrot):
    rng = np.random.default_rng(0)
    tok = ByteTokenizer()
    task = MCTask("parrot", _items(80, rng), tok, SEQ)
    scores = task.accuracy(parrot, batch_size=7)
    assert scores["acc"] == 1.0 and scores["acc_sum"] == 1.0
    assert scores["chance"] == 0.25
    shuffled = MCTask("shuffled", _items(400, rng, shuffle_labels=True), tok, SEQ).accuracy(parrot)
    assert abs(shuffled["acc"] - 0.25) < 0.06  # 400 items: sd of the hit rate is about 0.02


def test_untrained_model_is_not_at_100(parrot):
    fresh = build_model(ModelConfig(width=32, base_width=32, depth=1, n_heads=2), 257, SEQ).eval()
    with torch.no_grad():
        fresh.lm_head.weight.normal_()  # μP's zero readout would tie every choice
    task = MCTask("parrot", _items(80, np.random.default_rng(1)), ByteTokenizer(), SEQ)
    assert task.accuracy(fresh)["acc"] < 0.6


def test_batched_scores_equal_one_at_a_time_on_a_hugging_face_model():
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(vocab_size=257, n_positions=SEQ, n_embd=32, n_layer=1, n_head=2, bos_token_id=256, eos_token_id=256)
    ).eval()
    items = _items(6, np.random.default_rng(2))
    task = MCTask("hf", items, ByteTokenizer(), SEQ)
    batched = task.loglikelihoods(hf, batch_size=5)  # padding mixes lengths within a batch
    for i, seq in enumerate(task.seqs):
        with torch.no_grad():
            logp = torch.log_softmax(hf(torch.tensor([seq[:-1]])).logits[0].float(), -1)
        k = task.n_scored[i]
        expected = logp[-k:].gather(-1, torch.tensor(seq[-k:])[:, None]).sum().item()
        assert batched[i] == pytest.approx(expected, abs=1e-4)
    assert all(len(s) <= SEQ + 1 for s in task.seqs)  # contexts were left-truncated to the window


def test_separator_and_per_byte_normalisation():
    assert continuation("Q: which?", "ملائكة") == " ملائكة"  # EXAMS choices have no leading space
    assert continuation("Topic:", " sports") == " sports"
    assert continuation("Answer: ", "x") == "x"
    task = MCTask("t", [MCItem("a", "ctx", ["ab", "ملا"], 0)], ByteTokenizer(), SEQ)
    assert task.n_bytes.tolist() == [3, 7]  # " ab", " ملا" (Arabic letters are 2 bytes)


def test_load_mc_items_samples_and_rejects_bad_labels(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [{"id": str(i), "context": f"c{i}", "choices": ["a", "b"], "label": i % 2} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sample = load_mc_items(path, limit=5)
    assert len(sample) == 5 and [it.id for it in sample] == [it.id for it in load_mc_items(path, limit=5)]
    assert [it.id for it in sample] != [str(i) for i in range(5)]  # a seeded sample, not the head
    path.write_text(json.dumps({"id": "x", "context": "c", "choices": ["a"], "label": 3}) + "\n")
    with pytest.raises(ValueError, match="label 3"):
        load_mc_items(path)


def test_training_run_scores_configured_sets_on_the_final_model(make_cfg, tmp_path):
    sets = {}
    for name, text in (("ar_set", "السلام"), ("en_set", "fox")):
        path = tmp_path / f"{name}.jsonl"
        rows = [{"id": str(i), "context": f"{text} {i}", "choices": ["a", "bb", "c"], "label": i % 3} for i in range(9)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        sets[name] = str(path)
    cfg = make_cfg(unique_tokens=2000, epochs=2, data={"eval_sets": {"ar_set": sets["ar_set"]}})
    cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"aux_eval_sets": {"en_set": sets["en_set"]}}),
            "model": cfg.model.model_copy(update={"width": 32, "base_width": 32, "depth": 1}),
            "eval_every_tokens": 1000,
            "threads": 1,
        }
    )
    result = run(cfg)
    assert len(result.history) > 1 and "target_acc" not in result.history[0]
    final = result.metrics
    assert final["target_acc"] == final["ar_set_acc"] and final["aux_acc"] == final["en_set_acc"]
    assert final["target_acc_chance"] == pytest.approx(1 / 3)
    assert 0.0 <= final["target_acc_sum"] <= 1.0
