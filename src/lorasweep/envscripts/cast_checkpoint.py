"""A whole model saved by full or freeze tuning, cast back to the base model's
dtype, run in the training environment:

    <training-env python> cast_checkpoint.py <saved model dir> <base model dir>

LLaMA-Factory trains the parameters it tunes in float32 (unless pure_bf16), so a
full-tuned bf16 model is saved as float32: twice the base's size on disk, e.g.
a 7B model at 2 bytes a parameter is 14 GB, at 4 bytes 28 GB, for every run of
the grid. This rewrites each float32 tensor of the saved safetensors files in the
dtype the base's own weights are stored in (the most common floating dtype of its
safetensors files, else its config.json's dtype) and gives the saved config the
base's declared dtype. The embedded Gemma, for one, stores bf16 weights under a
config that says float32. A float32 base leaves the files as they are.

Prints one JSON line: dtype (the base's weights'), cast (tensors rewritten), bytes_before, bytes_after.
"""
from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from pathlib import Path

_DTYPE_KEYS = ("dtype", "torch_dtype")


def base_dtype(config: dict) -> str | None:
    """The dtype a checkpoint's config.json declares (top level, else its text model's)."""
    for where in (config, config.get("text_config") or {}):
        for key in _DTYPE_KEYS:
            if isinstance(where.get(key), str):
                return where[key]
    return None


# safetensors' names of the floating dtypes, as torch names them
_STORED = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def stored_dtype(folder: Path) -> str | None:
    """The most common floating dtype of the tensors in a checkpoint's safetensors
    files, read from their headers (8 bytes of header length, then JSON)."""
    seen: Counter = Counter()
    for f in folder.glob("*.safetensors"):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        seen.update(v["dtype"] for k, v in header.items() if k != "__metadata__" and v.get("dtype") in _STORED)
    return _STORED[seen.most_common(1)[0][0]] if seen else None


def cast(saved: Path, base: Path) -> dict:
    import torch
    from safetensors.torch import load_file, save_file

    declared = base_dtype(json.loads((base / "config.json").read_text()))
    want = stored_dtype(base) or declared
    files = sorted(saved.glob("*.safetensors"))
    before = sum(f.stat().st_size for f in files)
    target = getattr(torch, want, None) if want else None
    n = 0
    if isinstance(target, torch.dtype) and target != torch.float32:
        for f in files:
            tensors = load_file(str(f))
            changed = {k: v.to(target) for k, v in tensors.items() if v.dtype == torch.float32}
            if changed:
                n += len(changed)
                save_file({**tensors, **changed}, str(f.with_suffix(".tmp")), metadata={"format": "pt"})
                f.with_suffix(".tmp").replace(f)
        cfg_path = saved / "config.json"
        config = json.loads(cfg_path.read_text())
        for where in (config, config.get("text_config") or {}):
            for key in _DTYPE_KEYS:
                if key in where:
                    where[key] = declared or want
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")
        index = saved / "model.safetensors.index.json"
        if index.is_file():   # the shards' total size changed with them
            idx = json.loads(index.read_text())
            idx.setdefault("metadata", {})["total_size"] = sum(f.stat().st_size for f in files)
            index.write_text(json.dumps(idx, indent=2) + "\n")
    return {"dtype": want, "cast": n, "bytes_before": before, "bytes_after": sum(f.stat().st_size for f in files)}


if __name__ == "__main__":
    print(json.dumps(cast(Path(sys.argv[1]), Path(sys.argv[2]))))
