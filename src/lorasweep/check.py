"""Preflight: find the problems that would otherwise stop the sweep in the
middle of the night, and report them all at once before the first run."""
from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from . import tools
from .atomic import atomic_write_json, read_json
from .config import ConfigError, ExperimentConfig, ModelSpec
from .models import EMBEDDED_PREFIX, resolve_model_path
from .parity import encode_template, parity_problems
from .paths import experiment_dir
from .plan import train_runs
from .prompts import render_prompt
from .splits import example_key, load_examples, stratified_order


def _executable(path: str) -> bool:
    p = Path(path)
    if p.is_file():
        return os.access(p, os.X_OK)
    return shutil.which(path) is not None


def data_problems(cfg: ExperimentConfig) -> list[str]:
    """Everything wrong with the data, found in one pass (not only the first problem)."""
    out: list[str] = []
    try:
        examples = load_examples(cfg, cfg.data.source)
    except ConfigError as e:
        return [str(e)]
    test: list = []
    if cfg.data.test_file:
        try:
            test = load_examples(cfg, cfg.data.test_file)
        except ConfigError as e:
            out.append(str(e))
    src = cfg.data.source
    empty = sum(1 for ex in examples if not ex["text"])
    if empty:
        out.append(f"{src}: {empty} example(s) with an empty text ({cfg.data.text_column}); remove them")
    if cfg.task.type == "relation_classification":
        missing = sum(1 for ex in examples if ex["entity1"] and ex["entity1"] not in ex["text"]
                      or ex["entity2"] and ex["entity2"] not in ex["text"])
        if missing:
            out.append(f"{src}: {missing} example(s) name an entity that does not occur in the text; check "
                       f"{cfg.data.entity1_column}/{cfg.data.entity2_column}")
    dup = Counter(example_key(ex) for ex in examples)
    dups = {k: v for k, v in dup.items() if v > 1}
    if dups:
        conflicting = sum(1 for k in dups if len({ex["label"] for ex in examples if example_key(ex) == k}) > 1)
        out.append(f"{src}: {sum(v - 1 for v in dups.values())} duplicate example(s) "
                   f"({conflicting} with conflicting labels), e.g. {next(iter(dups))[0][:60]!r}; de-duplicate "
                   "the data (duplicates can land on both sides of the train/test split)")
    if test:
        overlap = {example_key(ex) for ex in test} & {example_key(ex) for ex in examples}
        if overlap:
            out.append(f"{cfg.data.test_file}: {len(overlap)} test example(s) also appear in {src}; they are "
                       "left out of training, but check that this is what you meant")
        pool = len(examples) - len(overlap)
    else:
        if cfg.data.test_size >= len(examples):
            out.append(f"data.test_size={cfg.data.test_size} leaves nothing to train on ({len(examples)} examples)")
        pool = len(examples) - cfg.data.test_size
        if cfg.task.closed_labels:
            held = Counter(ex["label"] for ex in stratified_order(examples, cfg.data.split_seed)[:cfg.data.test_size])
            absent = [lab for lab in cfg.task.labels if held[lab] == 0]
            if absent and len(absent) < len(cfg.task.labels):
                out.append(f"data: no test example for label(s) {absent}; they cannot be scored "
                           "(bring more data or raise data.test_size)")
    too_big = [s for s in cfg.train_sizes if s > pool]
    if too_big:
        out.append(f"train_sizes: {too_big} larger than the {max(pool, 0)} examples left for training after "
                   "the test set; lower them or bring more data")
    return out


def disk_problems(cfg: ExperimentConfig) -> list[str]:
    """Enough free disk for the planned adapters (rough: LoRA matrices of every linear layer, fp32)."""
    need = 0
    for m in cfg.models:
        rank = int(cfg.train_args(m.name).get("lora_rank", 8))
        try:
            mc = json.loads((resolve_model_path(m.path) / "config.json").read_text())
        except (OSError, ValueError):
            continue
        mc = mc.get("text_config", mc)
        h, i, n = mc.get("hidden_size", 4096), mc.get("intermediate_size", 4 * 4096), mc.get("num_hidden_layers", 32)
        per_adapter = rank * (4 * 2 * h + 3 * (h + i)) * n * 4 + 50_000_000   # + tokenizer, logs, predictions
        need += per_adapter * sum(1 for r in train_runs(cfg) if r.model == m.name)
    root = experiment_dir(cfg.name)
    probe = next((p for p in [root, *root.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if need * 2 > free:
        return [f"disk: the planned adapters need about {need / 1e9:.1f} GB (x2 margin) but only "
                f"{free / 1e9:.1f} GB are free under {probe}"]
    return []


def _ask_templates(py: Path) -> list[str] | None:
    code = "import json; from llamafactory.data.template import TEMPLATES; print(json.dumps(sorted(TEMPLATES)))"
    try:
        p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=180,
                           env=tools.child_env())
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def known_templates(py: Path, refresh: bool = False) -> list[str] | None:
    """LLaMA-Factory's template names in the environment of `py`. Asking
    costs ~10 s of imports, so the answer is cached per environment (and asked
    again when a name is missing from it, in case LLaMA-Factory was upgraded)."""
    marker = py.parent.parent / "pyvenv.cfg"
    key = f"{py}|{marker.stat().st_mtime if marker.is_file() else py.stat().st_mtime}"
    store = tools.cache_home() / "llamafactory_templates.json"
    if not refresh and store.is_file():
        try:
            rec = read_json(store)
            if rec.get("key") == key:
                return list(rec["templates"])
        except (ValueError, KeyError, OSError):
            pass
    names = _ask_templates(py)
    if names:
        try:
            atomic_write_json(store, {"key": key, "templates": names})
        except OSError:
            pass
    return names


def template_problems(cfg: ExperimentConfig) -> list[str]:
    """LLaMA-Factory templates that do not exist (asks the training environment)."""
    py = tools.train_python(cfg)
    if not py.is_file():
        return []
    known = known_templates(py)
    if known is not None and any(m.template not in known for m in cfg.models):
        known = known_templates(py, refresh=True)
    if known is None:
        return []
    out = []
    for m in cfg.models:
        if m.template not in known:
            close = difflib.get_close_matches(m.template, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see LLaMA-Factory's template list"
            out.append(f"models[{m.name}].template: LLaMA-Factory has no template '{m.template}'; {hint}")
        else:
            out += served_template_problems(cfg, m)
    return out


def served_template_problems(cfg: ExperimentConfig, model: ModelSpec) -> list[str]:
    """Encode one example with the model's template (training environment) and
    say what would keep it from being served with parity: no answer-end token
    to stop at, or a chat template that renders another prompt."""
    try:
        if not (resolve_model_path(model.path) / "config.json").is_file():
            return []   # reported by problems()
        example = load_examples(cfg, cfg.data.source)[0]
    except (ConfigError, ValueError, IndexError):
        return []       # reported by problems() / data_problems()
    prompt = render_prompt(cfg.task, example, cfg.task.prompt_names()[0])
    try:
        encoding = encode_template(cfg, model, prompt, example["label"] or cfg.task.none_answer)
    except RuntimeError as e:
        return [f"models[{model.name}].template '{model.template}': LLaMA-Factory could not encode an example: "
                f"{str(e).splitlines()[-1] if str(e).strip() else e}"]
    return parity_problems(model, encoding)


def full_check(cfg: ExperimentConfig) -> list[str]:
    """Everything `lorasweep check` reports: models, tools, data, templates, disk."""
    found = problems(cfg, "train") + problems(cfg, "eval")
    found += data_problems(cfg) + template_problems(cfg) + disk_problems(cfg)
    return list(dict.fromkeys(found))


def problems(cfg: ExperimentConfig, stage: str) -> list[str]:
    """Problems for `stage` ("train" or "eval"); empty when all is well."""
    out = []
    for m in cfg.models:
        try:
            path = resolve_model_path(m.path)
        except ValueError as e:
            out.append(f"models[{m.name}].path: {e}")
            continue
        if not (path / "config.json").is_file():
            hint = ("run `bash shell/setup.sh model`" if m.path.startswith(EMBEDDED_PREFIX)
                    else "point it at a Hugging Face checkpoint folder (with config.json)")
            out.append(f"models[{m.name}].path: no checkpoint at {path}; {hint}")
    if stage == "train":
        cli = tools.llamafactory_cli(cfg)[0]
        if not _executable(cli):
            out.append(f"train.llamafactory_cli: {cli} not found; run `bash shell/setup.sh train` "
                       "or set train.llamafactory_cli")
    if stage == "eval":
        py = tools.vllm_python(cfg)
        if not _executable(py):
            out.append(f"eval.vllm_python: {py} not found; run `bash shell/setup.sh serve` or set eval.vllm_python")
    return out


def preflight(cfg: ExperimentConfig, stage: str) -> None:
    found = problems(cfg, stage)
    if stage == "train":
        found += data_problems(cfg) + template_problems(cfg) + disk_problems(cfg)
    if found:
        where = cfg.path or cfg.name
        raise ConfigError(f"{where}: {len(found)} problem(s) found before {stage}:\n" +
                          "\n".join(f"  - {p}" for p in found))
