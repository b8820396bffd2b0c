"""Preflight: find the problems that would otherwise stop the sweep in the
middle of the night, and report them all at once before the first run."""
from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, ExperimentConfig, ModelSpec, train_arg
from ..data.lengths import length_findings
from ..data.splits import dedupe, example_key, load_examples, split_errors, stratified_order
from ..infra import tools
from ..infra.atomic import atomic_write_json, read_json
from ..infra.paths import check_file, experiment_dir
from ..models.embedded import EMBEDDED_PREFIX, resolve_model_path
from ..models.parity import encode_template, parity_problems
from ..plan import train_runs, validation_text
from ..runspec import weights_bytes
from ..serve.serve import served_base, trained_base
from ..tasks import get_task
from ..tasks.prompts import render_prompt
from ..train.budget import budget, kept_epochs
from .trainargs import method_problems, method_warnings, train_args_findings, trains_whole_model

log = logging.getLogger("lorasweep.check")   # its name before the move into folders: log lines unchanged
IMBALANCE = 10   # a label with under 1/10 of the largest label's examples is worth a warning
LONG_TAIL = 4    # texts over 4x the median length are worth a warning


def _executable(path: str) -> bool:
    p = Path(path)
    if p.is_file():
        return os.access(p, os.X_OK)
    return shutil.which(path) is not None


def data_findings(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """Everything about the data, found in one pass: (errors, warnings).

    Errors stop the sweep (nothing sensible can be trained or scored);
    warnings are what real data sets have (repeated sentences, test
    sentences in the training file, masked entities, skewed labels) and are
    handled the documented way (splits.dedupe: duplicates kept once, test
    examples removed from training) while the sweep goes on."""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        examples = load_examples(cfg, cfg.data.source)
    except ConfigError as e:
        return [str(e)], []
    test: list = []
    if cfg.data.test_file:
        try:
            test = load_examples(cfg, cfg.data.test_file, split="test")
        except ConfigError as e:
            errors.append(str(e))
    _empty_fields(cfg, examples, test, errors, warnings)
    examples, test = _duplicates(cfg, examples, test, warnings)
    overlap = 0
    if test:
        keys = {example_key(ex) for ex in test} & {example_key(ex) for ex in examples}
        overlap = len(keys)
        if keys:
            warnings.append(f"{cfg.data.test_file}: {overlap} test example(s) also appear in {cfg.data.source}, "
                            f"e.g. {_show(next(ex for ex in test if example_key(ex) in keys))}; they are left out "
                            "of training")
    errors += split_errors(cfg, len(examples), overlap)
    _label_findings(cfg, examples, test, errors, warnings)
    _length_findings(cfg, examples, warnings)
    return errors, warnings


def _empty_fields(cfg: ExperimentConfig, examples: list, test: list, errors: list, warnings: list) -> None:
    """Empty texts (an error), and the task type's own (relation_classification: empty entity pairs, an
    error; entities not in their text, a warning)."""
    src = cfg.data.source
    empty = sum(1 for ex in examples if not ex["text"])
    if empty:
        errors.append(f"{src}: {empty} example(s) with an empty text ({cfg.data.text_column}); remove them")
    more_errors, more_warnings = get_task(cfg.task.type).example_findings(cfg, examples, test, _show)
    errors += more_errors
    warnings += more_warnings


def _duplicates(cfg: ExperimentConfig, examples: list, test: list, warnings: list) -> tuple[list, list]:
    """Each file with its repeated examples kept once (splits.dedupe), a warning for each that had some."""
    distinct = []
    for name, rows in ((cfg.data.source, examples), (cfg.data.test_file, test)):
        kept, dropped, conflicting = dedupe(rows)
        distinct.append(kept)
        if dropped:
            warnings.append(f"{name}: {len(dropped)} duplicate example(s) ({conflicting} with another label than "
                            f"the first), e.g. {_show(dropped[0])}; each is kept once (its first occurrence)")
    return distinct[0], distinct[1]


def _label_findings(cfg: ExperimentConfig, examples: list, test: list, errors: list, warnings: list) -> None:
    """A label the held-out test set would lack (an error), labels far rarer than the commonest (a warning)."""
    if not cfg.task.closed_labels or not examples:
        return
    if not test:
        order = stratified_order(examples, cfg.data.split_seed, get_task(cfg.task.type).stratum)
        held = Counter(ex["label"] for ex in order[:cfg.data.test_size])
        absent = [lab for lab in cfg.task.labels if held[lab] == 0]
        if absent and len(absent) < len(cfg.task.labels):
            errors.append(f"data: no test example for label(s) {absent}; they cannot be scored "
                          "(bring more data or raise data.test_size)")
    counts = Counter(ex["label"] for ex in examples)
    rare = [(lab, counts[lab]) for lab in cfg.task.labels if counts[lab] * IMBALANCE < max(counts.values())]
    if rare:
        top = counts.most_common(1)[0]
        warnings.append(f"{cfg.data.source}: labels are imbalanced: {', '.join(f'{lab!r} {n}' for lab, n in rare)} "
                        f"against {top[0]!r} {top[1]} (under 1/{IMBALANCE} of the largest); macro-F1 weighs "
                        "them equally")


def _length_findings(cfg: ExperimentConfig, examples: list, warnings: list) -> None:
    """A long tail of text lengths (a warning; the token lengths per model come later)."""
    lengths = sorted(len(ex["text"]) for ex in examples)
    if not lengths:
        return
    median, longest = lengths[len(lengths) // 2], lengths[-1]
    if longest > LONG_TAIL * max(median, 1):
        n_long = sum(1 for n in lengths if n > LONG_TAIL * max(median, 1))
        warnings.append(f"{cfg.data.source}: {n_long} text(s) longer than {LONG_TAIL}x the median of {median} "
                        f"characters (the longest {longest}); see the token lengths per model below")


def _show(ex: dict, blank: bool = False) -> str:
    text = ex["text"] if len(ex["text"]) <= 40 else ex["text"][:40] + "..."
    if blank:   # quoted, so an empty entity shows as ''
        return f"{text!r} ({ex['entity1']!r}, {ex['entity2']!r})"
    ents = f" ({ex['entity1']}, {ex['entity2']})" if ex.get("entity1") else ""
    return f"{text!r}{ents}"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def disk_problems(cfg: ExperimentConfig) -> list[str]:
    """Enough free disk for the planned adapters (rough: LoRA matrices of every
    linear layer, fp32) and full/freeze-tuned models (the base's size: they are
    saved in its dtype)."""
    need = 0
    runs = train_runs(cfg)
    for m in cfg.models:
        try:
            base = resolve_model_path(m.path)
            mc = json.loads((base / "config.json").read_text())
        except (OSError, ValueError):
            continue
        whole = [r for r in runs if r.model == m.name and trains_whole_model(cfg, r)]
        need += len(whole) * (weights_bytes(base) + 50_000_000)
        mc = mc.get("text_config", mc) if isinstance(mc, dict) else None
        if not isinstance(mc, dict):
            continue
        h, i, n = mc.get("hidden_size", 4096), mc.get("intermediate_size", 4 * 4096), mc.get("num_hidden_layers", 32)
        if not all(_is_int(x) for x in (h, i, n)):
            continue   # no sizes to estimate from
        for r in runs:
            if r.model != m.name or r in whole:
                continue
            rank = train_arg(cfg.train_args(r.model, r.variant), "lora_rank")
            # a rank that is not an int (`lora_rank=abc`) is reported by LLaMA-Factory's argument check (trainargs)
            if _is_int(rank):
                adapters = 1 + len(kept_epochs(cfg, r))   # the final adapter and those kept after train.save_epochs
                need += adapters * (rank * (4 * 2 * h + 3 * (h + i)) * n * 4 + 50_000_000)   # + tokenizer, logs
    root = experiment_dir(cfg.name)
    probe = next((p for p in [root, *root.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if need * 2 > free:
        return [f"disk: the planned adapters and models need about {need / 1e9:.1f} GB (x2 margin) but only "
                f"{free / 1e9:.1f} GB are free under {probe}"]
    return []


def _ask_env(py: Path, code: str) -> list[str] | None:
    """The JSON list the snippet `code` prints in the environment of `py`, or None."""
    try:
        p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300,
                           env=tools.child_env())
        names = json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return names if isinstance(names, list) else None


def _names_in_env(py: Path, code: str, store_name: str, refresh: bool) -> list[str] | None:
    """A list of names an environment answers (asked once: its imports cost
    ~10 s), cached under the cache home per environment and its install time."""
    marker = py.parent.parent / "pyvenv.cfg"
    key = f"{py}|{marker.stat().st_mtime if marker.is_file() else py.stat().st_mtime}"
    store = tools.cache_home() / store_name
    if not refresh and store.is_file():
        try:
            rec = read_json(store)
            if rec.get("key") == key:
                return list(rec["names"])
        except (ValueError, KeyError, OSError):
            pass
    names = _ask_env(py, code)
    if names:
        try:
            atomic_write_json(store, {"key": key, "names": names})
        except OSError:
            pass
    return names


def known_templates(py: Path, refresh: bool = False) -> list[str] | None:
    """LLaMA-Factory's template names in the environment of `py` (asked again
    when a name is missing from the cached answer, in case LLaMA-Factory was upgraded)."""
    code = "import json; from llamafactory.data.template import TEMPLATES; print(json.dumps(sorted(TEMPLATES)))"
    return _names_in_env(py, code, "llamafactory_templates.json", refresh)


def vllm_architectures(py: Path) -> list[str] | None:
    """The model architectures the vLLM of `py` has its own implementation of."""
    code = "import json; from vllm import ModelRegistry; print(json.dumps(sorted(ModelRegistry.get_supported_archs())))"
    return _names_in_env(py, code, "vllm_architectures.json", refresh=False)


def architecture_warnings(cfg: ExperimentConfig) -> list[str]:
    """Models whose architecture the pinned vLLM does not implement: its server
    then falls back on the Transformers backend (slower; LoRA support varies by
    release), which is worth knowing before the night rather than after it."""
    py = Path(tools.vllm_python(cfg))
    if not _executable(str(py)):
        return []
    known = None
    out = []
    for m in cfg.models:
        try:
            config = json.loads((resolve_model_path(m.path) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        archs = config.get("architectures") or [] if isinstance(config, dict) else []
        if not archs:
            continue
        known = vllm_architectures(py) if known is None else known
        if known and not set(archs) & set(known):
            out.append(f"models[{m.name}]: the serving environment's vLLM has no implementation of {archs[0]}; "
                       "its server will try vLLM's Transformers backend (slower, and LoRA adapters may not load "
                       "there): serve one adapter of it by hand before the night, or pin a vLLM that has it")
    return out


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
        return []       # reported by problems() / data_findings()
    prompt = render_prompt(cfg.task, example, cfg.task.prompt_names()[0])
    try:
        encoding = encode_template(cfg, model, prompt, example["label"] or cfg.task.none_answer)
    except RuntimeError as e:
        return [f"models[{model.name}].template '{model.template}': LLaMA-Factory could not encode an example: "
                f"{str(e).splitlines()[-1] if str(e).strip() else e}"]
    return parity_problems(model, encoding)


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)     # the sweep cannot run
    warnings: list[str] = field(default_factory=list)   # it runs; the user should know
    notes: list[str] = field(default_factory=list)      # facts worth seeing (token lengths per model)

    def fatal(self, strict: bool) -> list[str]:
        return self.errors + (self.warnings if strict else [])


def full_check(cfg: ExperimentConfig, stage: str | None = None) -> CheckReport:
    """Everything `lorasweep check` reports (stage None: for training and
    scoring; "eval": only what scoring needs). Warnings are written to
    experiments/<name>/check.json for later commands and the report."""
    stages = ["train", "eval"] if stage is None else [stage]
    errors = [p for st in stages for p in problems(cfg, st)]
    warnings: list[str] = []
    notes: list[str] = []
    if "train" in stages:
        # LLaMA-Factory's verdict on every run's train.yaml is a process of its own (~10 s of
        # imports): it runs while the data, templates and token lengths are looked at
        with ThreadPoolExecutor(max_workers=1) as pool:
            args_check = pool.submit(train_args_findings, cfg)
            data_errors, warnings = data_findings(cfg)
            errors += data_errors + template_problems(cfg) + disk_problems(cfg)
            if not data_errors:
                lengths = length_findings(cfg)
                errors += lengths.errors
                warnings += lengths.warnings
                notes = ([validation_text(cfg)] if cfg.data.val_size else []) + lengths.notes
            args_errors, args_warnings = args_check.result()
        errors += method_problems(cfg) + args_errors
        warnings += (args_warnings + served_base_warnings(cfg) + architecture_warnings(cfg) + method_warnings(cfg)
                     + selection_warnings(cfg))
    report = CheckReport(list(dict.fromkeys(errors)), warnings, notes)
    if "train" in stages and experiment_dir(cfg.name).parent.is_dir():
        experiment_dir(cfg.name).mkdir(exist_ok=True)
        atomic_write_json(check_file(cfg.name), {"checked_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                 "errors": report.errors, "warnings": report.warnings,
                                                 "notes": report.notes})
    return report


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
        else:
            out += remote_code_problems(m, path)
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


def selection_warnings(cfg: ExperimentConfig) -> list[str]:
    """eval.select: val with runs that keep no checkpoint (train.save_epochs none before their last epoch)."""
    if cfg.eval.select != "val":
        return []
    alone = [r for r in train_runs(cfg) if not kept_epochs(cfg, r)]
    if not alone:
        return []
    return [f"eval.select: val: {len(alone)} run(s) keep no checkpoint before their last epoch (train.save_epochs "
            f"{cfg.train.save_epochs}), e.g. {alone[0].run_id} ({budget(cfg, alone[0]).text()}): they report their "
            "final adapter"]


def served_base_warnings(cfg: ExperimentConfig) -> list[str]:
    """QLoRA runs that will be scored on another base than they train against (a CPU server)."""
    on_gpu = tools.has_nvidia_gpu()
    moved = [r for r in train_runs(cfg) if trained_base(cfg, r) != served_base(cfg, r, on_gpu)]
    if not moved:
        return []
    why = "eval.quantized_base: false" if on_gpu else "vLLM's CPU backend has no bitsandbytes"
    return [f"{len(moved)} run(s) train against a {trained_base(cfg, moved[0])} base (e.g. {moved[0].run_id}) and "
            f"will be scored on the full-precision base ({why}); their scores are not the adapters' own "
            "(served_base in the results)"]


def remote_code_problems(model: ModelSpec, path: Path) -> list[str]:
    """A checkpoint whose config.json points transformers at model code in its
    own folder (auto_map) loads only with trust_remote_code: say so before the
    night, where LLaMA-Factory, the server and the tokenizers would refuse it."""
    try:
        auto_map = json.loads((path / "config.json").read_text(encoding="utf-8")).get("auto_map")
    except (OSError, ValueError, AttributeError):
        return []
    if auto_map and not model.trust_remote_code:
        files = sorted({str(v).split(".")[0] + ".py" for v in auto_map.values() if isinstance(v, str)})
        return [f"models[{model.name}]: its config.json maps {sorted(auto_map)} to code in the checkpoint folder "
                f"({', '.join(files)}); set models[{model.name}].trust_remote_code: true if you trust that code"]
    return []


def preflight(cfg: ExperimentConfig, stage: str, strict: bool = False) -> CheckReport:
    """Stop before `stage` on any error (and, strict, on any warning); log the warnings."""
    report = full_check(cfg, stage)
    found = report.fatal(strict)
    if found:
        where = cfg.path or cfg.name
        kind = "problem(s)" if not strict else "problem(s) (warnings count: --strict)"
        raise ConfigError(f"{where}: {len(found)} {kind} found before {stage}:\n" +
                          "\n".join(f"  - {p}" for p in found))
    for n in report.notes:
        log.info("check: %s", n)
    for w in report.warnings:
        log.warning("check: %s", w)
    return report
