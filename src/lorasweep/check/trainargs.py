"""A run's LLaMA-Factory config, and LLaMA-Factory's own verdict on it before the night.

Every run's train.yaml is `defaults < train.args < models[].train_args < variants.<name>`
plus the keys lorasweep sets from the run's coordinates (tools.run_train_args)
and, on a GPU that has it, bf16. `check` hands all of them to the training
environment at once (envscripts/train_args_check.py, one process, ~10 s of
imports): a misspelled key (`lora_rnak`), a value of the wrong type
(`num_train_epochs: "3"`, or `2e-4`, which YAML reads as text) or a
combination LLaMA-Factory refuses would otherwise fail every run of the night
in its first seconds. The verdict is recorded in
experiments/<name>/train_args_check.json and reused while the configs are the same.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import defaultdict

from ..config import WHOLE_MODEL_METHODS, ExperimentConfig, train_arg
from ..envscripts import script
from ..infra import tools
from ..infra.atomic import atomic_write_json, recorded
from ..infra.paths import repo_root, train_args_check_file
from ..models.embedded import resolve_model_path
from ..plan import train_runs
from ..runspec import RunSpec
from ..train.budget import run_keys


def resolved_train_yaml(cfg: ExperimentConfig, run: RunSpec) -> dict:
    """The run's train.yaml as written before it trains (bf16 is added by train_one on a GPU)."""
    model = cfg.model(run.model)
    return {**run_keys(cfg, run),
            **tools.run_train_args(str(resolve_model_path(model.path)), model.template, run.dataset, run.seed,
                                   dataset_dir=str(repo_root()), output_dir=str(run.adapter_dir))}


def with_precision(args: dict, gpus: list[str] | None) -> dict:
    """bf16 on GPUs that have it (compute capability >= 8.0) unless the args choose a precision;
    the CPU trains in float32."""
    if gpus and not any(args.get(k) for k in ("bf16", "fp16", "pure_bf16")) and tools.bf16_capable(gpus):
        return {**args, "bf16": True}
    return args


def where_set(cfg: ExperimentConfig, model: str, key: str, variant: str | None = None) -> str:
    """Which part of the experiment a run's key comes from (for the message)."""
    if variant and key in cfg.variants[variant]:
        return f"variants.{variant}.{key}"
    if key in cfg.model(model).train_args:
        return f"models[{model}].train_args.{key}"
    if key in cfg.train.args:
        return f"train.args.{key}"
    return f"{key} (a lorasweep default)"


# YAML 1.1 (PyYAML, LLaMA-Factory) reads 2e-4 as text: a float needs a dot (2.0e-4).
_E_NOTATION = re.compile(r"^[+-]?\d+[eE][+-]?\d+$")


def _hint(value_repr: str, key: str = "", expects: str = "") -> str:
    """What to write instead, from the value's repr: quotes mean YAML read it as a string."""
    if value_repr in ("True", "False"):   # a real boolean: YAML 1.1 reads yes/no/on/off/true/false unquoted as one
        words = "yes, true or on" if value_repr == "True" else "no, false or off"
        if "str" in expects:
            example = '"none"' if key == "report_to" else f'"{words.split(",")[0]}"'
            return f"; YAML reads an unquoted {words} as a boolean: quote the string, e.g. {key}: {example}"
        return f"; YAML reads an unquoted {words} as a boolean: write the value LLaMA-Factory expects"
    if len(value_repr) < 2 or value_repr[0] not in "'\"" or value_repr[-1] != value_repr[0]:
        return ""   # not a string: "without quotes" would not help
    raw = value_repr[1:-1]
    if _E_NOTATION.match(raw):
        mantissa, exp = re.split("[eE]", raw)
        return f"; YAML reads {raw} as text: write {mantissa}.0e{exp}"
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", raw):
        return f"; write {raw} without quotes"
    if raw.lower() in ("true", "false"):
        return f"; write {raw.lower()} without quotes"
    return ""


def verdict(cfg: ExperimentConfig, runs: dict[str, dict], full: bool, gpus: list[str] | None = None) -> dict[str, list]:
    """The training environment's problems per run id (recorded; reused while the inputs are the same)."""
    key = hashlib.sha256(json.dumps([str(tools.train_python(cfg)), full, runs], sort_keys=True, default=str)
                         .encode()).hexdigest()[:16]
    out = train_args_check_file(cfg.name)
    if (old := recorded(out, key)) is not None:
        return old["problems"]
    proc = subprocess.run([str(tools.train_python(cfg)), script("train_args_check.py")] + (["--full"] if full else []),
                          input=json.dumps(runs, default=str), env=tools.child_env(gpus), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"LLaMA-Factory's argument check did not run:\n{proc.stderr[-1500:]}")
    try:
        problems = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        problems = None
    if not isinstance(problems, dict):
        raise RuntimeError(f"LLaMA-Factory's argument check printed no verdict: {proc.stdout[-300:]!r}")
    if out.parent.is_dir():
        atomic_write_json(out, {"key": key, "problems": problems})
    return problems


# What eval serves: LoRA adapters (QLoRA included) as vLLM LoRA modules on a
# server of the base model; the whole models that full and freeze tuning
# write, each from a vLLM server of its own.
ADAPTER_METHODS = ("lora",)


def finetuning_method(cfg: ExperimentConfig, run: RunSpec) -> str:
    """The run's LLaMA-Factory finetuning_type: lora (the default), full or freeze."""
    return str(train_arg(cfg.train_args(run.model, run.variant), "finetuning_type"))


def trains_whole_model(cfg: ExperimentConfig, run: RunSpec) -> bool:
    """Whether the run saves a whole model (full, freeze) rather than an adapter."""
    return not run.is_base and not run.is_baseline and cfg.trains_whole_model(run.model, run.variant)


def method_problems(cfg: ExperimentConfig) -> list[str]:
    """Fine-tuning methods whose output eval cannot serve (OFT writes an
    adapter vLLM does not load). Refused before the night rather than found after it."""
    out = []
    for m in cfg.models:
        for v in cfg.variant_names():
            method = train_arg(cfg.train_args(m.name, v), "finetuning_type")
            key = where_set(cfg, m.name, "finetuning_type", v)
            if method not in ADAPTER_METHODS + WHOLE_MODEL_METHODS:
                out.append(f"{key}: '{method}' writes what eval cannot serve (LoRA adapters as vLLM LoRA modules, "
                           "full and freeze checkpoints from servers of their own); use lora, QLoRA (lora with "
                           "quantization_bit: 4), full or freeze")
    return list(dict.fromkeys(out))


def method_warnings(cfg: ExperimentConfig) -> list[str]:
    """train.save_epochs is not applied to full/freeze-tuned runs: each kept
    epoch would be another copy of the whole model."""
    whole = [f"{m.name}/{v}" if v else m.name for m in cfg.models for v in cfg.variant_names()
             if cfg.trains_whole_model(m.name, v)]
    if cfg.train.save_epochs and whole:
        return [f"train.save_epochs {cfg.train.save_epochs}: not applied to the full/freeze-tuned runs of "
                f"{', '.join(whole)} (each kept epoch would be a copy of the whole model); they are scored "
                "after their last epoch only"]
    return []


def train_args_findings(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings): every run's train.yaml through LLaMA-Factory's parser,
    problems grouped over the runs they hit."""
    if not tools.train_python(cfg).is_file():
        return [], []      # check reports the missing environment
    runs = train_runs(cfg)
    gpus = tools.visible_gpus()[:cfg.train.gpus_per_run]
    try:
        configs = {r.run_id: with_precision(resolved_train_yaml(cfg, r), gpus) for r in runs}
    except ValueError:
        return [], []      # an unresolvable model path: reported by check.problems
    # The full check judges the device too: only where the runs train (not for a remote Ray cluster).
    full = not (cfg.executor.kind == "ray" and cfg.executor.address)
    try:
        # one GPU, as a run sees it (several visible make LLaMA-Factory ask for a distributed launch)
        found = verdict(cfg, configs, full, gpus[:1])
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as e:
        return [], [f"train.yaml: LLaMA-Factory's argument check could not run: {str(e).splitlines()[0]}"]
    run_of = {r.run_id: r for r in runs}
    grouped: dict[str, list[str]] = defaultdict(list)
    for run_id, problems in found.items():
        run = run_of.get(run_id)
        if run is None:
            continue
        where = lambda key, run=run: where_set(cfg, run.model, key, run.variant)  # noqa: E731
        for kind, key, msg in problems:
            if kind == "unknown":
                hint = f"did you mean '{msg}'?" if msg else "see LLaMA-Factory's argument list"
                text = f"{where(key)}: LLaMA-Factory has no training key '{key}'; {hint}"
            elif kind == "type":
                value_repr = msg.split(" is a ", 1)[0]
                expects = msg.rpartition("LLaMA-Factory expects ")[2]
                text = f"{where(key)}: {msg}{_hint(value_repr, key, expects)}"
            elif kind == "device":
                text = f"{where(key)}: {msg}"
            else:
                text = f"LLaMA-Factory refuses the run's train.yaml: {msg}"
            grouped[text].append(run_id)
    errors = [f"{text} (in {len(ids)} of {len(runs)} run(s), e.g. {ids[0]})" for text, ids in grouped.items()]
    return errors, []
