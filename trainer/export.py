"""Export a checkpoint as an ordinary Hugging Face GPT-2 (`AutoModelForCausalLM.from_pretrained` loads it).

Our model is GPT-2-shaped on purpose (learned positions, pre-LN, tanh-GELU MLP, no linear biases,
untied head), so only the layout and the parametrisation's multipliers need care
(`gpt2_state_dict`). The tokenizer becomes a `tokenizers` fast tokenizer with the same ids (bytes
0..255 + eos 256, or our BPE's own tokenizer.json) wrapped in `PreTrainedTokenizerFast`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from trainer.checkpoint import load_checkpoint
from trainer.model import Transformer, attention_scale
from trainer.tokenizer import EOS, BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer


def resolve_checkpoint(source: str | Path) -> Path:
    """`model.pt` itself, or a run/trial directory holding it (`automix export` finds a study's best trial)."""
    path = Path(source)
    if path.is_file():
        return path
    if (path / "model.pt").is_file():
        return path / "model.pt"
    raise FileNotFoundError(f"no checkpoint at {source}: give a model.pt or a run directory holding one")


def gpt2_config(model: Transformer, eos_id: int) -> GPT2Config:
    """The GPT-2 config of the same shape (no dropout, untied head, tanh-GELU exactly as torch's)."""
    cfg = model.cfg
    return GPT2Config(
        vocab_size=model.wte.num_embeddings,
        n_positions=model.wpe.num_embeddings,
        n_embd=cfg.width,
        n_layer=cfg.depth,
        n_head=cfg.n_heads,
        n_inner=cfg.mlp_ratio * cfg.width,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=model.ln_f.eps,
        tie_word_embeddings=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )


@torch.no_grad()
def gpt2_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights in GPT-2's names and layout, with the parametrisation's multipliers folded in.

    - layout: `nn.Linear` stores [out, in], GPT-2's `Conv1D` [in, out]: every matrix is transposed;
      GPT-2's linears have biases, which are written as zeros;
    - the readout: `MuReadout` computes W·(output_mult·x/width_mult): the head is W·output_mult/width_mult;
    - attention: GPT-2 scales logits by 1/sqrt(d_head), ours by `attention_scale` (c/d_head under μP);
      q·k is linear in q, so the query weights are multiplied by scale·sqrt(d_head);
    - CompleteP's residual-branch multiplier 1/m_L (1 under μP and SP) is folded into the linear
      projection that ends each branch.
    """
    cfg = model.cfg
    d_head = cfg.width // cfg.n_heads
    q_fold = attention_scale(cfg) * math.sqrt(d_head)
    head = model.lm_head
    sd = {
        "transformer.wte.weight": model.wte.weight,
        "transformer.wpe.weight": model.wpe.weight,
        "transformer.ln_f.weight": model.ln_f.weight,
        "transformer.ln_f.bias": model.ln_f.bias,
        "lm_head.weight": head.weight * (head.output_mult / head.width_mult()),
    }
    for i, block in enumerate(model.blocks):
        qkv = block.attn.qkv.weight.clone()
        qkv[: cfg.width] *= q_fold
        layer = {
            "ln_1": block.ln1,
            "ln_2": block.ln2,
            "attn.c_attn": qkv,
            "attn.c_proj": block.attn.proj.weight * block.branch_mult,
            "mlp.c_fc": block.fc.weight,
            "mlp.c_proj": block.fc_proj.weight * block.branch_mult,
        }
        for name, value in layer.items():
            prefix = f"transformer.h.{i}.{name}"
            if isinstance(value, torch.nn.LayerNorm):
                sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = value.weight, value.bias
            else:
                sd[f"{prefix}.weight"] = value.t()
                sd[f"{prefix}.bias"] = torch.zeros(value.shape[0])
    return {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def hf_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """A `transformers` fast tokenizer that encodes text to the same ids as `tokenizer`."""
    if isinstance(tokenizer, BPETokenizer):
        fast = HFTokenizer.from_str(tokenizer.hf.to_str())
    elif isinstance(tokenizer, ByteTokenizer):
        # Byte-level BPE with no merges: every UTF-8 byte b is one token, id b; eos is added as 256.
        chars = bytes_to_unicode()
        fast = HFTokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
        fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        fast.decoder = decoders.ByteLevel()
        fast.add_special_tokens([AddedToken(EOS, special=True)])
    else:
        raise TypeError(f"cannot export a {type(tokenizer).__name__}")
    if fast.token_to_id(EOS) != tokenizer.eos_id:
        raise ValueError(f"exported eos id {fast.token_to_id(EOS)} differs from the trainer's {tokenizer.eos_id}")
    return PreTrainedTokenizerFast(tokenizer_object=fast, eos_token=EOS)


def export(source: str | Path, out_dir: str | Path) -> Path:
    """Write `source`'s model (see `resolve_checkpoint`) as a Hugging Face model + tokenizer into `out_dir`.

    Also writes `automix_config.json` (the run's TrainConfig) for provenance. Returns `out_dir`.
    """
    path = resolve_checkpoint(source)
    model, config = load_checkpoint(path)
    tokenizer = load_tokenizer(path.parent)
    hf_model = GPT2LMHeadModel(gpt2_config(model, tokenizer.eos_id))
    missing, unexpected = hf_model.load_state_dict(gpt2_state_dict(model), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"GPT-2 mapping is incomplete: missing {missing}, unexpected {unexpected}")
    out = Path(out_dir)
    hf_model.save_pretrained(out)
    hf_tokenizer(tokenizer).save_pretrained(out)
    (out / "automix_config.json").write_text(json.dumps(config.model_dump(), indent=2))
    return out
