"""Write a tiny, randomly initialised Gemma 3 text model (2 layers) with the
real Gemma 3 tokenizer, for proving the GPU training path where no model can
be downloaded.  python make_tiny_gemma.py <tokenizer-dir> <out-dir>"""
import sys

import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

tok_dir, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(tok_dir)
cfg = Gemma3TextConfig(vocab_size=262144, hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
                       sliding_window=512, bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)
torch.manual_seed(0)
model = Gemma3ForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out)
tok.save_pretrained(out)
print(f"tiny gemma: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters -> {out}")
