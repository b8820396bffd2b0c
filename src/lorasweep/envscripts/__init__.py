"""Scripts that run under another environment's Python, not the harness's.

Each file here is started as `<python of that environment> <file> ...` by the
harness, so none of them imports anything from lorasweep at module level
(lorasweep is not installed in those environments), and each keeps its heavy
imports (torch, transformers, vLLM, LLaMA-Factory) inside functions:

    fast_loss.py      training env: llamafactory-cli train, logits only where the loss needs them
    cpu_lora.py       serving env: vLLM's OpenAI server with copy-free CPU LoRA kernels, children forked
    parity_encode.py  training env: LLaMA-Factory's token ids for a prompt and its answer
    token_lengths.py  training env: every example's token lengths and LLaMA-Factory's cut to cutoff_len
    build_model.py    training + serving envs: the embedded models' checkpoint stages
    embed_minilm.py   training env: all-MiniLM-L6-v2 sentence embeddings (embedding baseline)
    cast_checkpoint.py  training env: a full/freeze-tuned model saved in the base model's dtype

The harness-side callers are train.py, serve.py, parity.py, lengths.py, models.py and baselines.py.
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def script(name: str) -> str:
    """The path of one of these scripts, to put on a child's command line."""
    path = HERE / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return str(path)
