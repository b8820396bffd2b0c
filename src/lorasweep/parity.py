"""Train/serve parity: the token ids a served model receives for a test prompt
must be the ids LLaMA-Factory's template encoded for training, and the token
that ended the answers in training must be one the requests stop at.

LLaMA-Factory's side runs in the training environment
(envscripts/parity_encode.py); the served side asks the live server's /tokenize.
"""
from __future__ import annotations

import json
import subprocess
import urllib.request

from . import tools
from .envscripts import script


def training_encoding(train_python: str, model_path: str, template: str, prompt: str, answer: str) -> dict:
    """Prompt and answer token ids as LLaMA-Factory builds them for training."""
    proc = subprocess.run([train_python, script("parity_encode.py"), model_path, template],
                          input=json.dumps({"prompt": prompt, "answer": answer}), env=tools.child_env(),
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
    first_diff = next((i for i, (a, b) in enumerate(zip(prompt, served, strict=False)) if a != b),
                      None if len(prompt) == len(served) else min(len(prompt), len(served)))
    answer, label = trained["answer_ids"], trained["label_ids"]
    end_token = answer[len(label)] if len(answer) > len(label) and answer[:len(label)] == label else None
    return {
        "prompt_tokens": len(prompt), "served_tokens": len(served), "prompt_identical": first_diff is None,
        "first_difference_at": first_diff, "answer_end_token": end_token, "stop_token_ids": stop_ids,
        "stops_at_answer_end": end_token is not None and end_token in stop_ids,
        "ok": first_diff is None and end_token is not None and end_token in stop_ids,
    }
