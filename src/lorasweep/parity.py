"""Train/serve parity: the token ids a served model receives for a test prompt
must be the ids LLaMA-Factory's template encoded for training, and the token
that ended the answers in training must be one the requests stop at.

LLaMA-Factory's side runs in the training environment (`python parity.py
encode ...`), so this file imports nothing from the package at module level.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path


def _encode_stage(model_path: str, template: str, prompt: str, answer: str) -> None:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    tpl = get_template_and_fix_tokenizer(tok, DataArguments(template=template))
    prompt_ids, answer_ids = tpl.encode_oneturn(
        tok, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    label_ids = tok.encode(answer, add_special_tokens=False)
    print(json.dumps({"prompt_ids": prompt_ids, "answer_ids": answer_ids, "label_ids": label_ids}))


def training_encoding(train_python: str, model_path: str, template: str, prompt: str, answer: str) -> dict:
    """Prompt and answer token ids as LLaMA-Factory builds them for training."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"}
    proc = subprocess.run([train_python, str(Path(__file__).resolve()), "encode", model_path, template],
                          input=json.dumps({"prompt": prompt, "answer": answer}), env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"LLaMA-Factory template encoding failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def served_prompt_ids(base_url: str, api_key: str, model_name: str, prompt: str) -> list[int]:
    """The ids the server builds for a chat request (vLLM's /tokenize with the chat template)."""
    root = base_url.rsplit("/v1", 1)[0]
    body = json.dumps({"model": model_name, "messages": [{"role": "user", "content": prompt}],
                       "add_generation_prompt": True, "add_special_tokens": False}).encode()
    req = urllib.request.Request(f"{root}/tokenize", data=body,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as r:
        return json.load(r)["tokens"]


def compare(trained: dict, served: list[int], stop_ids: list[int]) -> dict:
    """A parity report; `ok` is False when prompts differ or the answer end is not a stop token."""
    prompt = trained["prompt_ids"]
    first_diff = next((i for i, (a, b) in enumerate(zip(prompt, served)) if a != b),
                      None if len(prompt) == len(served) else min(len(prompt), len(served)))
    answer, label = trained["answer_ids"], trained["label_ids"]
    end_token = answer[len(label)] if len(answer) > len(label) and answer[:len(label)] == label else None
    return {
        "prompt_tokens": len(prompt), "served_tokens": len(served), "prompt_identical": first_diff is None,
        "first_difference_at": first_diff, "answer_end_token": end_token, "stop_token_ids": stop_ids,
        "stops_at_answer_end": end_token is not None and end_token in stop_ids,
        "ok": first_diff is None and end_token is not None and end_token in stop_ids,
    }


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "encode":
    data = json.loads(sys.stdin.read())
    _encode_stage(sys.argv[2], sys.argv[3], data["prompt"], data["answer"])
