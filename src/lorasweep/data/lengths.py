"""Token lengths, per model, with the model's own tokenizer and template
(check): a training example longer than `cutoff_len` is cut by LLaMA-Factory
(an answer cut short teaches the model nothing, or the wrong thing), and a
test prompt longer than `eval.max_model_len` minus the answer's tokens is
refused by the server at scoring time.

The counting runs in the training environment (envscripts/token_lengths.py:
LLaMA-Factory's own template encoding and truncation rule) and is recorded in
runs/<model>/lengths.json, reused while the inputs are the same.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..infra import tools
from ..infra.atomic import atomic_write_json, recorded
from ..config import ConfigError, ExperimentConfig, ModelSpec
from ..envscripts import script
from ..models.embedded import resolve_model_path
from ..infra.paths import lengths_file
from ..tasks.prompts import render_prompt
from ..score.score import max_answer_tokens
from .splits import example_key, make_splits, to_alpaca, train_subset


def _p95(values: list[int]) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))] if s else 0


def length_inputs(cfg: ExperimentConfig) -> dict:
    """The (prompt, answer) pairs any run may train on (every seed's largest
    subset, each prompt) and the test prompts."""
    splits = make_splits(cfg)
    biggest = max(cfg.train_sizes)
    seen: dict[tuple, dict] = {}
    for seed in cfg.seeds:
        for ex in train_subset(splits, biggest, seed):
            seen.setdefault(example_key(ex), ex)
    train, test = [], []
    for name in cfg.task.prompt_names():
        train += [[r["instruction"], r["output"]] for r in to_alpaca(cfg, list(seen.values()), name)]
        test += [render_prompt(cfg.task, ex, name) for ex in splits.test]
    return {"train": train, "test": test}


def count_tokens(cfg: ExperimentConfig, model: ModelSpec, inputs: dict) -> dict:
    """LLaMA-Factory's token counts for `inputs` (recorded; reused while they are the same)."""
    path = resolve_model_path(model.path)
    cutoff = int(min(cfg.train_arg_values(model.name, "cutoff_len")))   # the strictest variant's
    key = hashlib.sha256(json.dumps([str(path), model.template, cutoff, inputs], ensure_ascii=False)
                         .encode()).hexdigest()[:16]
    out = lengths_file(cfg.name, model.name)
    if (old := recorded(out, key)) is not None:
        return old
    proc = subprocess.run([str(tools.train_python(cfg)), script("token_lengths.py"), str(path), model.template,
                           str(cutoff), *(["--trust-remote-code"] if model.trust_remote_code else [])],
                          input=json.dumps(inputs, ensure_ascii=False), env=tools.child_env(),
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"token counting failed:\n{proc.stderr[-1500:]}")
    record = {"key": key, "cutoff_len": cutoff, **json.loads(proc.stdout.strip().splitlines()[-1])}
    atomic_write_json(out, record)
    return record


def _count_all(cfg: ExperimentConfig, inputs: dict) -> list[tuple[ModelSpec, dict | Exception]]:
    """count_tokens for every model whose files are here, all at once: each is
    a process that spends most of its time importing LLaMA-Factory (two models
    one after the other took 101 s on a GPU server, docs/gpu.md)."""
    todo: list[ModelSpec] = []
    failed: dict[str, Exception] = {}
    for m in cfg.models:
        try:
            if (resolve_model_path(m.path) / "config.json").is_file():
                todo.append(m)
        except ValueError as e:
            failed[m.name] = e
    with ThreadPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        futures = {m.name: pool.submit(count_tokens, cfg, m, inputs) for m in todo}
    out: list[tuple[ModelSpec, dict | Exception]] = []
    for m in cfg.models:                      # in the experiment's order
        if m.name in failed:
            out.append((m, failed[m.name]))
        elif m.name in futures:
            try:
                out.append((m, futures[m.name].result()))
            except (ValueError, RuntimeError) as e:
                out.append((m, e))
    return out


@dataclass
class LengthFindings:
    errors: list[str]
    warnings: list[str]
    notes: list[str]


def length_findings(cfg: ExperimentConfig) -> LengthFindings:
    """Per model: max and p95 token lengths of train and test, what exceeds
    cutoff_len and max_model_len; errors when an answer would be cut or a test
    prompt cannot be served."""
    found = LengthFindings([], [], [])
    if not tools.train_python(cfg).is_file():
        return found                          # check reports the missing environment
    try:
        inputs = length_inputs(cfg)
    except (ConfigError, ValueError):
        return found                          # the data's own errors are reported by check
    room = cfg.eval.max_model_len - max_answer_tokens(cfg)
    for m, rec in _count_all(cfg, inputs):
        if isinstance(rec, Exception):
            found.warnings.append(f"models[{m.name}]: token lengths not counted: {str(rec).splitlines()[-1]}")
            continue
        cutoff = rec["cutoff_len"]
        totals = [p + a for p, a, _, _ in rec["train"]]
        cut_answers = [i for i, (_, a, _, ka) in enumerate(rec["train"]) if ka < a]
        cut_prompts = [i for i, (p, a, kp, ka) in enumerate(rec["train"]) if kp < p and ka == a]
        too_long = [n for n in rec["test"] if n > room]
        found.notes.append(
            f"models[{m.name}] tokens: train prompt+answer max {max(totals, default=0)}, p95 {_p95(totals)} "
            f"({sum(t > cutoff for t in totals)} of {len(totals)} over cutoff_len={cutoff}); test prompt max "
            f"{max(rec['test'], default=0)}, p95 {_p95(rec['test'])} ({len(too_long)} of {len(rec['test'])} over "
            f"max_model_len={cfg.eval.max_model_len} - {max_answer_tokens(cfg)} answer tokens)")
        if cut_answers:
            need = max(totals[i] for i in cut_answers) + 1
            found.errors.append(
                f"models[{m.name}]: {len(cut_answers)} training example(s) longer than cutoff_len={cutoff} tokens "
                f"would have their answer cut (e.g. {inputs['train'][cut_answers[0]][1]!r} in a "
                f"{totals[cut_answers[0]]}-token example); raise train.args.cutoff_len to {need} or shorten the "
                "prompt")
        if cut_prompts:
            found.warnings.append(
                f"models[{m.name}]: {len(cut_prompts)} training prompt(s) longer than cutoff_len={cutoff} "
                "tokens lose their end in training (the answer is kept); raise train.args.cutoff_len to "
                f"{max(totals[i] for i in cut_prompts) + 1} to train on them whole")
        if too_long:
            found.errors.append(
                f"models[{m.name}]: {len(too_long)} test prompt(s) up to {max(too_long)} tokens do not fit "
                f"eval.max_model_len={cfg.eval.max_model_len} with {max_answer_tokens(cfg)} answer tokens; raise "
                f"eval.max_model_len to {max(too_long) + max_answer_tokens(cfg)}")
    return found
