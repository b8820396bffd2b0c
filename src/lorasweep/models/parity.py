"""Train/serve parity, and where an answer ends.

The token ids a served model receives for a prompt must be the ids
LLaMA-Factory's template encoded for training, and the request must stop at
the token that ended every answer in training. Both facts come from
LLaMA-Factory's own encoding of one example (envscripts/parity_encode.py, run
in the training environment), recorded per model in runs/<model>/template.json:

- its answer-end token (the first token after the answer, e.g. Gemma's
  <end_of_turn>, Qwen's <|im_end|>) is the request's stop_token_ids unless the
  user sets models[].stop_token_ids: any LLaMA-Factory template works, no table;
- the prompt as the chat template saved with the adapters renders it must be
  the trained prompt (checked before the first run by `check`), and the live
  server's /tokenize must agree (checked before scoring by eval), for the chat
  request and for the client-rendered completion prompt scoring sends (chat.py).
"""
from __future__ import annotations

import json
import logging
import subprocess
import urllib.request

from ..config import ExperimentConfig, ModelSpec
from ..envscripts import script
from ..infra import tools
from ..infra.atomic import atomic_write_json, read_json, recorded
from ..infra.paths import parity_file, template_file
from ..serve.serve import served_template
from .chat import render_user_turn
from .embedded import resolve_model_path

log = logging.getLogger("lorasweep.parity")   # its name before the move into folders: log lines unchanged


def training_encoding(train_python: str, model_path: str, template: str, prompt: str, answer: str,
                      trust_remote_code: bool = False) -> dict:
    """Prompt and answer token ids as LLaMA-Factory builds them for training."""
    proc = subprocess.run([train_python, script("parity_encode.py"), model_path, template,
                           *(["--trust-remote-code"] if trust_remote_code else [])],
                          input=json.dumps({"prompt": prompt, "answer": answer}), env=tools.child_env(),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"LLaMA-Factory template encoding failed:\n{proc.stderr[-2000:]}")
    try:
        record = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        record = None
    if not isinstance(record, dict) or not {"prompt_ids", "answer_ids", "label_ids"} <= set(record):
        raise RuntimeError(f"LLaMA-Factory template encoding printed no encoding:\n{proc.stdout[-500:]}")
    return record


ENCODER_VERSION = 2   # what parity_encode.py records; a record of an older one is encoded again


def encode_template(cfg: ExperimentConfig, model: ModelSpec, prompt: str, answer: str) -> dict:
    """LLaMA-Factory's encoding of one example with the model's template, recorded
    in runs/<model>/template.json (reused while template, model and example are the same)."""
    path = resolve_model_path(model.path)
    key = {"encoder": ENCODER_VERSION, "template": model.template, "model": model.path, "prompt": prompt,
           "answer": answer,
           "model_mtime": (path / "config.json").stat().st_mtime if (path / "config.json").is_file() else None}
    out = template_file(cfg.name, model.name)
    if (old := recorded(out, key)) is not None:
        return old
    python = tools.train_python(cfg)
    if not python.is_file():
        raise RuntimeError(f"no training-environment python at {python} to encode the template with "
                           "(bash shell/setup.sh train, or set models[].stop_token_ids)")
    record = {"key": key, **training_encoding(str(python), str(path), model.template, prompt, answer,
                                              model.trust_remote_code)}
    atomic_write_json(out, record)
    return record


def recorded_encoding(cfg: ExperimentConfig, model: ModelSpec) -> dict | None:
    """The last encoding recorded for this model with its current template, if any."""
    out = template_file(cfg.name, model.name)
    try:
        rec = read_json(out)
    except (OSError, ValueError):
        return None
    key = rec.get("key", {})
    return rec if key.get("template") == model.template and key.get("model") == model.path else None


def answer_end_token(encoding: dict) -> int | None:
    """The first token LLaMA-Factory puts after an answer's own tokens (the turn's end)."""
    answer, label = encoding["answer_ids"], encoding["label_ids"]
    return answer[len(label)] if len(answer) > len(label) and answer[:len(label)] == label else None


def stop_token_ids(model: ModelSpec, encoding: dict | None) -> list[int]:
    """A request's stop_token_ids: models[].stop_token_ids when set, else the answer-end token."""
    if model.stop_token_ids is not None:
        return list(model.stop_token_ids)
    end = answer_end_token(encoding) if encoding else None
    return [end] if end is not None else []


def served_stop_ids(cfg: ExperimentConfig, model: ModelSpec) -> list[int]:
    """The stop_token_ids of the model's requests, from models[].stop_token_ids or
    the encoding recorded by `check` / eval; an error when neither is there
    (free decoding without its stop token answers until max_tokens)."""
    ids = stop_token_ids(model, recorded_encoding(cfg, model))
    if not ids:
        raise RuntimeError(f"no stop token known for {model.name}: run `lorasweep check` (it encodes an example "
                           f"with template '{model.template}') or set models[].stop_token_ids")
    return ids


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first token where two id lists differ (the shorter length if one is a prefix), or None."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                None if len(a) == len(b) else min(len(a), len(b)))


def parity_problems(model: ModelSpec, encoding: dict) -> list[str]:
    """What would break train/serve parity with this template, found from one encoded example."""
    where = f"models[{model.name}].template '{model.template}'"
    out = []
    end = answer_end_token(encoding)
    if end is None and model.stop_token_ids is None:
        out.append(f"{where}: LLaMA-Factory puts no token after an answer, so nothing tells the server where "
                   "an answer ends; set models[].stop_token_ids")
    elif end is not None and model.stop_token_ids is not None and end not in model.stop_token_ids:
        out.append(f"models[{model.name}].stop_token_ids {model.stop_token_ids}: answers end at token {end} in "
                   "training; add it (or leave stop_token_ids unset)")
    added, rows = encoding.get("added_tokens") or [], encoding.get("embedding_rows")
    outside = end is not None and rows is not None and end >= rows
    if (added or outside) and not model.allow_new_tokens:
        what = f"adds token(s) {added} to the model's vocabulary" if added else "ends answers with a new token"
        where_end = f"; the answer-end token {end} is outside its {rows} embedding rows" if outside else ""
        out.append(f"{where}: the template {what}{where_end}, so it is probably another model family's "
                   "template; LLaMA-Factory would resize the embeddings and save them with every adapter, and "
                   "serving may fail. Choose the model's own template, or set models[].allow_new_tokens: true "
                   "to train the new tokens anyway")
    rendered = encoding.get("chat_template_prompt_ids")
    if rendered is not None and rendered != encoding["prompt_ids"]:
        i = first_difference(encoding["prompt_ids"], rendered)
        out.append(f"{where}: the chat template saved with the adapters (the one the server gets) renders a "
                   f"prompt different from the trained one from token {i} on (trained "
                   f"{encoding['prompt_ids'][i:i + 5]}, served {rendered[i:i + 5]}); choose the template that "
                   "matches the model's own chat format")
    return out


def served_prompt_ids(base_url: str, api_key: str, model_name: str, prompt: str) -> list[int]:
    """The ids the server builds for a chat request (vLLM's /tokenize with the chat template)."""
    return _tokenize(base_url, api_key, {"model": model_name, "messages": [{"role": "user", "content": prompt}],
                                         "add_generation_prompt": True, "add_special_tokens": False})


def served_completion_ids(base_url: str, api_key: str, model_name: str, text: str) -> list[int]:
    """The ids the server builds for a completion request of already rendered
    text, sent as scoring sends it (add_special_tokens=false)."""
    return _tokenize(base_url, api_key, {"model": model_name, "prompt": text, "add_special_tokens": False})


def _tokenize(base_url: str, api_key: str, body: dict) -> list[int]:
    root = base_url.rsplit("/v1", 1)[0]
    req = urllib.request.Request(f"{root}/tokenize", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as r:
        return json.load(r)["tokens"]


def compare(trained: dict, served: list[int], stop_ids: list[int], completion: list[int] | None = None) -> dict:
    """A parity report; `ok` is False when prompts differ or the answer end is
    not a stop token. `completion`: the ids of the client-rendered prompt as
    the completions endpoint tokenizes it (eval.api: completions), which must
    be the trained ones too."""
    prompt = trained["prompt_ids"]
    first_diff = first_difference(prompt, served)
    end_token = answer_end_token(trained)
    report = {
        "prompt_tokens": len(prompt), "served_tokens": len(served), "prompt_identical": first_diff is None,
        "first_difference_at": first_diff, "answer_end_token": end_token, "stop_token_ids": stop_ids,
        "stops_at_answer_end": end_token is not None and end_token in stop_ids,
    }
    ok = first_diff is None and end_token is not None and end_token in stop_ids
    if completion is not None:
        report["completion_first_difference_at"] = first_difference(prompt, completion)
        report["completion_prompt_identical"] = report["completion_first_difference_at"] is None
        ok = ok and report["completion_prompt_identical"]
    report["ok"] = ok
    return report


class ParityError(RuntimeError):
    pass


def check_parity(cfg: ExperimentConfig, srv, model: ModelSpec, trained: list,
                 training_side: tuple[str, dict]) -> None:
    """Compare the ids the running server `srv` (serve.VLLMServer) builds for a test prompt
    with LLaMA-Factory's (`training_side`: the prompt and its encoding) and write
    runs/<model>/parity.json; raise ParityError on a mismatch. `trained`: the model's
    trained runs (RunSpec), the first of which the comparison asks for by name."""
    trained_run = trained[0]
    prompt, encoding = training_side
    # The adapter's (or full-tuned model's) name when this server holds it; else (only
    # the base model left to score) the base model's, whose chat template is the same one.
    held = trained_run.run_id in srv.adapters or srv.served_name == trained_run.served_name
    name = trained_run.served_name if held else model.name
    try:
        served = served_prompt_ids(srv.base_url, srv.api_key, name, prompt)
    except OSError as e:   # urllib's HTTPError / URLError
        raise RuntimeError(f"parity {model.name}: the server's /tokenize failed for {name}: {e}") from e
    completion = None
    if cfg.eval.api == "completions":   # the text scoring will send, rendered here as its client renders it
        template, tokens = served_template(model, trained)
        try:
            completion = served_completion_ids(srv.base_url, srv.api_key, name,
                                               render_user_turn(template, tokens, prompt))
        except OSError as e:
            raise RuntimeError(f"parity {model.name}: the server's /tokenize failed for {name}: {e}") from e
    report = compare(encoding, served, stop_token_ids(model, encoding), completion)
    out = parity_file(cfg.name, model.name)
    atomic_write_json(out, {**report, "trained_prompt_ids": encoding["prompt_ids"], "served_prompt_ids": served})
    if not report["ok"]:
        raise ParityError(f"train/serve parity failed (see {out}): prompt identical: {report['prompt_identical']} "
                          f"(first difference at token {report['first_difference_at']}), answer end token "
                          f"{report['answer_end_token']} in stop_token_ids {report['stop_token_ids']}: "
                          f"{report['stops_at_answer_end']}"
                          + (f"; the client-rendered completion prompt identical: "
                             f"{report['completion_prompt_identical']} (first difference at token "
                             f"{report['completion_first_difference_at']})" if completion is not None else ""))
    log.info("parity %s: the served prompt is the trained one (%d tokens identical%s); answers end at token %s",
             model.name, report["prompt_tokens"], ", chat and completion requests" if completion is not None else "",
             report["answer_end_token"])
