"""Command line: `lorasweep <command> [experiment.yaml] [--set key=value ...]`
(after `pip install -e .`), or `python -m lorasweep ...` with src/ on the path;
shell/*.sh call the same commands. `lorasweep <command> --help` says more.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import yaml

from . import __version__
from .analysis.notebook import run_notebook
from .analysis.report import write_report
from .analysis.results import collect_results, reported_rows, summary_table
from .check.check import full_check
from .config import ConfigError, ExperimentConfig, load_experiment
from .data.splits import load_split, prepare_data
from .infra import tools
from .infra.procs import LockError
from .models.embedded import ModelUnavailable, availability
from .overrides import show_recorded_overrides
from .plan import eval_runs, plan_text, train_runs
from .runspec import TEST, VAL
from .score.evaluation import run_eval
from .score.score import score_runs
from .train.train import resolved_train_yaml, run_training

log = logging.getLogger("lorasweep")
COMMANDS = {
    "check": "find every problem with the experiment, its data and models before the night: errors stop the "
             "sweep, warnings are shown (and fatal with --strict); token lengths per model",
    "plan": "print the runs and their state (trained, failed, to train)",
    "prepare": "write the data splits and LLaMA-Factory's dataset_info.json",
    "train": "train every unfinished run with LLaMA-Factory (what shell/train.sh runs)",
    "eval": "serve each base model's adapters with vLLM, check parity, score them, collect results "
            "(what shell/eval.sh runs)",
    "results": "rebuild experiments/<name>/results.* from every scored run folder on disk",
    "notebook": "execute analysis.ipynb headless for the experiment (figures saved as PNG)",
    "report": "write experiments/<name>/report.html: intervals, paired tests, fitted curves, cost",
}
DEFAULT_EXPERIMENT = "experiments/demo.yaml"


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "openai", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args) -> ExperimentConfig:
    return load_experiment(args.experiment, set_args=args.set or [])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT, help="experiment YAML (default: %(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set seeds=[1,2] --set train.args.num_train_epochs=3")
    p.add_argument("-v", "--verbose", action="store_true")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = _load(args)
        if args.cmd not in ("train", "check"):
            show_recorded_overrides(cfg)
        if args.cmd == "train" and args.dry_run:
            return _plan(cfg, show_yaml=True)
        return _RUN[args.cmd](cfg, args)
    except (ConfigError, LockError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lorasweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for name in ("plan", "prepare", "eval", "results", "notebook"):
        _common(sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name]))
    c = sub.add_parser("check", help=COMMANDS["check"], description=COMMANDS["check"])
    _common(c)
    c.add_argument("--strict", action="store_true", help="warnings count as errors (exit 1)")
    rp = sub.add_parser("report", help=COMMANDS["report"], description=COMMANDS["report"])
    _common(rp)
    rp.add_argument("--target", type=float, default=0.8, help="score to ask 'how many labels?' for (default 0.8)")
    rp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    rp.add_argument("--bootstrap-seed", type=int, default=0)
    t = sub.add_parser("train", help=COMMANDS["train"], description=COMMANDS["train"])
    _common(t)
    t.add_argument("--dry-run", action="store_true",
                   help="print the plan and the resolved LLaMA-Factory YAML of the first run")
    t.add_argument("--strict", action="store_true", help="stop on the check's warnings too, not only its errors")
    t.add_argument("--retrain-changed", action="store_true",
                   help="train again the finished runs whose settings or data changed (else train.sh stops and "
                        "names them)")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--skip-failed", action="store_true", help="do not retry runs that failed before")
    which.add_argument("--retry-failed", action="store_true", help="train only the runs that failed before")
    return ap


# Each command, given the loaded config and the parsed arguments: its exit code.

def _check(cfg: ExperimentConfig, args) -> int:
    for m in cfg.models:
        print(f"model {m.name} ({m.path}): {availability(m.path)}")
    report = full_check(cfg)
    for label, items in (("note", report.notes), ("error", report.errors), ("warning", report.warnings)):
        for p in items:
            print(f"  - {label}: {p}")
    print(f"{cfg.path}: {_verdict(report, args.strict)}")
    return 1 if report.fatal(args.strict) else 0


def _train(cfg: ExperimentConfig, args) -> int:
    summary = run_training(cfg, retry_failed=not args.skip_failed, only_failed=args.retry_failed,
                           strict=args.strict, retrain_changed=args.retrain_changed)
    print(summary.text(), flush=True)
    return 1 if summary.failed else 0


def _eval(cfg: ExperimentConfig, args) -> int:
    summary = run_eval(cfg)
    print(summary.text(), flush=True)
    return 1 if summary.failed else 0


def _report(cfg: ExperimentConfig, args) -> int:
    print(write_report(cfg, target=args.target, n_resamples=args.resamples, seed=args.bootstrap_seed))
    return 0


def _results(cfg: ExperimentConfig, args) -> int:
    df = collect_results(cfg)
    print(summary_table(reported_rows(df)).to_string() if len(df) else "no scored runs yet")
    return 0


def _prepare(cfg: ExperimentConfig, args) -> int:
    prepare_data(cfg)
    return 0


def _notebook(cfg: ExperimentConfig, args) -> int:
    run_notebook(cfg)
    return 0


_RUN = {"check": _check, "plan": lambda cfg, args: _plan(cfg, show_yaml=False), "prepare": _prepare,
        "train": _train, "eval": _eval, "report": _report, "notebook": _notebook, "results": _results}


def _verdict(report, strict: bool) -> str:
    if not report.errors and not report.warnings:
        return "ok"
    parts = [f"{len(report.errors)} error(s)", f"{len(report.warnings)} warning(s)"]
    if report.fatal(strict):
        return ", ".join(parts) + (" (--strict: warnings count)" if strict and not report.errors else "")
    return ", ".join(parts) + " (warnings only: the sweep can run; --strict makes them fatal)"


def _plan(cfg: ExperimentConfig, show_yaml: bool) -> int:
    print(plan_text(cfg))
    if show_yaml:
        first = train_runs(cfg)[0]
        try:
            resolved = resolved_train_yaml(cfg, first)
        except ModelUnavailable as e:   # the plan stands; its model paths are not resolved here
            print(f"\nno resolved LLaMA-Factory YAML: model {first.model}: {e}")
            return 0
        print(f"\nresolved LLaMA-Factory YAML of {first.run_id}:")
        print(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False))
    return 0


def infer_eval_main(argv: list[str] | None = None) -> int:
    """Entry point of infer_eval.py: score runs against a running server."""
    ap = argparse.ArgumentParser(prog="infer_eval.py", description="score runs against an OpenAI-compatible server")
    ap.add_argument("experiment")
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    ap.add_argument("--runs", nargs="+", required=True, help="run ids to score (see `lorasweep plan`)")
    ap.add_argument("--decoding", nargs="+", choices=("free", "constrained"),
                    help="decoding modes to score (default: eval.decoding of the experiment)")
    ap.add_argument("--kv-cache-tokens", type=int, help="the server's KV cache size, for eval.concurrency: auto")
    ap.add_argument("--share", type=int, default=1,
                    help="client processes scoring this server at once (each takes this share of concurrency)")
    ap.add_argument("--split", choices=(TEST, VAL), default=TEST,
                    help="the examples to score on: the test set, or the validation set (eval.select: val)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = _load(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_id = {r.run_id: r for r in eval_runs(cfg)}
    unknown = [r for r in args.runs if r not in by_id]
    if unknown:
        print(f"error: unknown run id(s) {unknown}; known: {sorted(by_id)}", file=sys.stderr)
        return 2
    runs = [by_id[r] for r in args.runs]
    if len({r.model for r in runs}) != 1:
        print("error: --runs must all belong to one base model (one server)", file=sys.stderr)
        return 2
    api_key = os.environ.get(tools.API_KEY_ENV, "EMPTY")
    score_runs(cfg, runs, load_split(cfg, args.split), args.base_url, api_key, decodings=args.decoding,
               kv_cache_tokens=args.kv_cache_tokens, share=max(1, args.share), split=args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
