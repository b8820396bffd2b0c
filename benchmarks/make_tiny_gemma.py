"""Write a randomly initialised Gemma 3 text model with the real Gemma 3
tokenizer, for the GPU machine where no model can be downloaded:

    python make_tiny_gemma.py <tokenizer-dir> <out-dir>                # tiny: 2 layers, hidden 256
    python make_tiny_gemma.py <tokenizer-dir> <out-dir> --like <dir>   # the shape of <dir>/config.json

With --like the model has a real checkpoint's shape (e.g. the embedded Gemma 3
270M: 18 layers, hidden 640, vocab 262,144), so a training step costs what it
costs with the real weights; only the numbers in it are random."""
import argparse
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

ap = argparse.ArgumentParser()
ap.add_argument("tokenizer_dir")
ap.add_argument("out")
ap.add_argument("--like", help="a checkpoint folder whose config.json gives the shape")
a = ap.parse_args()
tok = AutoTokenizer.from_pretrained(a.tokenizer_dir)
if a.like:
    shape = json.loads((Path(a.like) / "config.json").read_text())
    shape = shape.get("text_config", shape)
    cfg = Gemma3TextConfig(**{k: v for k, v in shape.items() if k not in ("architectures", "model_type")})
else:
    cfg = Gemma3TextConfig(vocab_size=262144, hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
                           sliding_window=512, bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)
torch.manual_seed(0)
model = Gemma3ForCausalLM(cfg).to(torch.bfloat16)
model.config.dtype = "bfloat16"
model.save_pretrained(a.out)
tok.save_pretrained(a.out)
print(f"gemma ({'shape of ' + a.like if a.like else 'tiny'}): "
      f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters -> {a.out}")
