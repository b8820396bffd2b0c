"""LLaMA-Factory's own verdict on a set of run configs, run in the training
environment before the night: the keys its argument parser knows, the type
each key's field declares, and (with --full) its whole argument check
(`get_train_args`: the checks a run makes in its first seconds).

    <training-env python> train_args_check.py [--full]   < {"<run id>": {<train.yaml keys>}, ...}

Prints one JSON line: {"<run id>": [[kind, key, message], ...]} with kind
"unknown" (a key no parser knows; message: the closest known key or ""),
"type" (the value does not fit the field's declared type), "device" (with
--full: the machine cannot run it, e.g. a paged optimizer without CUDA, 4-bit
without bitsandbytes) or "parser" (the full check refused it; key ""). Runs without problems are left out.

HfArgumentParser.parse_dict builds the dataclasses from the values as they
are: a YAML string "3" for num_train_epochs reaches the trainer as a string,
so the types are checked here, field by field.
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import sys
import tempfile
import types
import typing


def _fits(value, tp) -> bool:
    """Whether `value` (from YAML) can stand where a field of type `tp` is declared."""
    if tp is typing.Any or isinstance(tp, (str, typing.TypeVar)):
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, t) for t in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return isinstance(value, tp) or value in {m.value for m in tp}
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True   # a type this check does not model: the parser decides


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def fields_and_types():
    from llamafactory.hparams.parser import _TRAIN_ARGS

    out = {}
    for cls in _TRAIN_ARGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                out.setdefault(f.name, hints.get(f.name, typing.Any))
    return out


def check(runs: dict, full: bool) -> dict:
    known = fields_and_types()
    names = sorted(known)
    found: dict[str, list] = {}
    for run_id, args in runs.items():
        problems = []
        for key, value in args.items():
            if key not in known:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                problems.append(["unknown", key, close[0] if close else ""])
            elif not _fits(value, known[key]):
                problems.append(["type", key, f"{value!r} is a {type(value).__name__}; LLaMA-Factory expects "
                                              f"{_type_name(known[key])}"])
        if full and not problems:
            problems += _device_check(args)
        if full and not problems:
            problems += _full_check(args)
        if problems:
            found[run_id] = problems
    return found


def _device_check(args: dict) -> list:
    """What this machine cannot run although the keys are right."""
    import importlib.util

    import torch

    out = []
    optim = str(args.get("optim") or "")
    if optim.startswith("paged_") and not torch.cuda.is_available():
        out.append(["device", "optim", f"{optim} pages the optimizer state through CUDA and this machine has no "
                                       "GPU; use adamw_torch here (paged optimizers need a GPU)"])
    method = str(args.get("quantization_method") or "bnb")
    if args.get("quantization_bit") is not None and method in ("bnb", "bitsandbytes"):
        if importlib.util.find_spec("bitsandbytes") is None:
            out.append(["device", "quantization_bit", "quantizing the base needs bitsandbytes, which the training "
                                                      "environment lacks; run `bash shell/setup.sh train` (it pins "
                                                      "bitsandbytes) or remove quantization_bit"])
    return out


def _full_check(args: dict) -> list:
    """get_train_args on the run's keys with a throw-away output folder: what
    the trainer would refuse in its first seconds (dependencies, combinations
    of keys, the device), without loading the model."""
    from llamafactory.hparams import get_train_args

    with tempfile.TemporaryDirectory() as tmp:
        try:
            get_train_args({**args, "output_dir": tmp})
        except (Exception, SystemExit) as e:  # noqa: BLE001 - any refusal is the answer
            lines = [line for line in str(e).strip().splitlines() if line.strip()]
            return [["parser", "", f"{type(e).__name__}: {lines[-1] if lines else e}"]]
    return []


if __name__ == "__main__":
    full = "--full" in sys.argv[1:]
    print(json.dumps(check(json.loads(sys.stdin.read()), full)))
