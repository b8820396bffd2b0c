"""One run and its folder: the run-folder protocol, defined once.

A RunSpec is a point of the grid (model x prompt x variant x train size x seed), a
zero-shot base run (size 0), or a classical baseline. Its id and its folder
follow from those coordinates alone:

    experiments/<exp>/runs/<model>/[<prompt>/][variant-<variant>/]n<size>/seed<seed>/   (a training run)
    experiments/<exp>/runs/<model>/[<prompt>/]n0/base/               (the base model, zero-shot)

With a single unnamed prompt the <prompt> level is left out, and without
`variants` (named sets of training settings) the variant level. An adapter
kept after epoch k of a training run (train.save_epochs) is a run of its own
in the training run's folder, `.../seed<seed>/epoch<k>/`, with its own
adapter/, predictions and metrics; it is trained when its training run is. Every file a
stage reads or writes in that folder is named here and nowhere else:

    train.yaml                the resolved LLaMA-Factory config       (train writes)
    train.log                 llamafactory-cli's output               (train writes)
    adapter/                  the LoRA adapter + chat_template.jinja  (LLaMA-Factory writes);
                              full/freeze tuning: the whole model, in the base model's dtype
    train_result.json         "trained", written atomically, last     (train writes)
    train_failed.json         exit code and log tail of a failure     (train writes)
    .attempts                 attempts of a run not yet finished      (train writes)
    answers.<mode>.partial.jsonl  answers so far, appended             (score writes)
    predictions.<mode>.jsonl  one line per test example                (score writes)
    result.<mode>.pkl         the RunResult                            (score writes)
    metrics.<mode>.json       "scored in <mode>", atomically, last     (score writes)
    val_<file>                the same four on the validation set      (score writes, eval.select: val)
    selection.<mode>.json     the checkpoint chosen on the validation set (selection writes, eval.select: val)

The training set a run reads is data/<exp>/train_[<prompt>__]n<size>_seed<seed>.json,
registered in dataset_info.json as <exp>__[<prompt>__]n<size>_seed<seed>.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .infra.atomic import atomic_write_json, read_json
from .infra.paths import data_dir, runs_dir

# The classical baselines run as "models" of their own names.
BASELINE_MODELS = {"tfidf": "baseline-tfidf-logreg", "embedding": "baseline-minilm-logreg"}


def is_baseline_model(name: str) -> bool:
    return name in BASELINE_MODELS.values()

ADAPTER_DIR = "adapter"
VARIANT_PREFIX = "variant-"               # the variant's folder level: variant-<name>
EPOCH_PREFIX = "epoch"                    # a kept checkpoint's folder in its training run's: epoch<k>
CHAT_TEMPLATE = "chat_template.jinja"     # LLaMA-Factory saves it into the adapter folder
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# What full and freeze tuning save in adapter/ instead: the whole model, one file or shards and their index.
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def weights_bytes(folder: Path) -> int:
    """Bytes of the safetensors files in a checkpoint or adapter folder (0: none)."""
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))

TRAINER_RESULTS = "train_results.json"    # LLaMA-Factory's own summary in the adapter folder
TRAINER_LOG = "trainer_log.jsonl"         # LLaMA-Factory's per-step log in the adapter folder
TRAIN_YAML = "train.yaml"
TRAIN_LOG = "train.log"
TRAINED_MARKER = "train_result.json"
FAILED_MARKER = "train_failed.json"
ATTEMPTS = ".attempts"
METRICS_PREFIX = "metrics."
TEST, VAL = "test", "val"                 # the examples a run is scored on: the test set, the validation set


def _on(split: str) -> str:
    """The prefix of a run's scoring files on `split`: none on the test set, val_ on the validation set
    (so that metrics.<mode>.json, which scored_on_disk finds, is always the test set's)."""
    assert split in (TEST, VAL), split
    return "" if split == TEST else f"{VAL}_"


@dataclass(frozen=True)
class RunSpec:
    experiment: str
    model: str
    size: int                  # 0 = the base model, zero-shot
    seed: int | None           # None for zero-shot runs
    prompt: str | None = None  # None: the task's single unnamed prompt
    variant: str | None = None  # None: no variants (a zero-shot run has none: it trains nothing)
    epoch: int | None = None    # the adapter kept after this epoch of the training run (None: its final adapter)

    # --- identity ------------------------------------------------------------

    @property
    def is_base(self) -> bool:
        return self.size == 0

    @property
    def is_baseline(self) -> bool:
        return is_baseline_model(self.model)

    @property
    def _tail(self) -> str:
        return "base" if self.is_base else f"seed{self.seed}"

    @property
    def run_id(self) -> str:
        prompt = f"__{self.prompt}" if self.prompt else ""
        variant = f"__{self.variant}" if self.variant else ""
        epoch = f"__e{self.epoch}" if self.epoch else ""
        return f"{self.model}{prompt}{variant}__n{self.size}__{self._tail}{epoch}"

    @property
    def training_run(self) -> "RunSpec":
        """The run that trained this one's adapter: itself, or for a checkpoint its whole run."""
        return replace(self, epoch=None) if self.epoch else self

    def checkpoint(self, epoch: int) -> "RunSpec":
        return replace(self, epoch=epoch)

    @property
    def served_name(self) -> str:
        """The model name a request uses: the base model's name, or the run id for an adapter."""
        return self.model if self.is_base else self.run_id

    # --- the training set it reads ---------------------------------------------

    @property
    def _data_stem(self) -> str:
        assert not self.is_base, "a zero-shot run has no training set"
        prompt = f"{self.prompt}__" if self.prompt else ""
        return f"{prompt}n{self.size}_seed{self.seed}"

    @property
    def dataset(self) -> str:
        """Its name in LLaMA-Factory's dataset_info.json."""
        return f"{self.experiment}__{self._data_stem}"

    @property
    def train_file(self) -> Path:
        return data_dir(self.experiment) / f"train_{self._data_stem}.json"

    # --- its folder and files ----------------------------------------------------

    def folder(self, root: Path | None = None) -> Path:
        """The run folder; `root` is the experiment folder (default experiments/<exp>)."""
        base = runs_dir(self.experiment, root) / self.model
        if self.prompt:
            base = base / self.prompt
        if self.variant:
            base = base / f"{VARIANT_PREFIX}{self.variant}"
        base = base / f"n{self.size}" / self._tail
        return base / f"{EPOCH_PREFIX}{self.epoch}" if self.epoch else base

    @property
    def train_yaml(self) -> Path:
        return self.folder() / TRAIN_YAML

    @property
    def train_log(self) -> Path:
        return self.folder() / TRAIN_LOG

    @property
    def adapter_dir(self) -> Path:
        return self.folder() / ADAPTER_DIR

    @property
    def chat_template(self) -> Path:
        return self.adapter_dir / CHAT_TEMPLATE

    @property
    def adapter_weights(self) -> Path:
        return self.adapter_dir / ADAPTER_WEIGHTS

    def has_weights(self) -> bool:
        """Whether adapter/ holds what training saves: a LoRA adapter, or a whole model (full/freeze)."""
        return self.adapter_weights.is_file() or any((self.adapter_dir / f).is_file() for f in MODEL_WEIGHTS)

    @property
    def holds_whole_model(self) -> bool:
        return any((self.adapter_dir / f).is_file() for f in MODEL_WEIGHTS)

    @property
    def trainer_results(self) -> Path:
        return self.adapter_dir / TRAINER_RESULTS

    @property
    def trainer_log(self) -> Path:
        return self.adapter_dir / TRAINER_LOG

    @property
    def trained_marker(self) -> Path:
        return self.folder() / TRAINED_MARKER

    @property
    def failed_marker(self) -> Path:
        return self.folder() / FAILED_MARKER

    @property
    def attempts_file(self) -> Path:
        return self.folder() / ATTEMPTS

    def partial_answers(self, decoding: str, split: str = TEST) -> Path:
        """Answers received so far, one JSON line each, appended as they arrive;
        a rerun (after a kill or a server restart) asks only for the missing ones."""
        return self.folder() / f"{_on(split)}answers.{decoding}.partial.jsonl"

    def predictions_file(self, decoding: str, split: str = TEST) -> Path:
        return self.folder() / f"{_on(split)}predictions.{decoding}.jsonl"

    def result_file(self, decoding: str, split: str = TEST) -> Path:
        return self.folder() / f"{_on(split)}result.{decoding}.pkl"

    def metrics_file(self, decoding: str, split: str = TEST) -> Path:
        return self.folder() / f"{_on(split)}{METRICS_PREFIX}{decoding}.json"

    def selection_file(self, decoding: str) -> Path:
        """A training run's validation selection (eval.select: val): its candidates' scores and the one chosen."""
        return self.folder() / f"selection.{decoding}.json"

    # --- its state ---------------------------------------------------------------

    def is_trained(self) -> bool:
        if self.epoch:   # kept by its training run, which must have finished
            return self.training_run.is_trained() and self.adapter_weights.is_file()
        return self.trained_marker.is_file()

    def has_failed(self) -> bool:
        return self.failed_marker.is_file()

    def is_scored(self, decoding: str, split: str = TEST) -> bool:
        return self.metrics_file(decoding, split).is_file()

    def state(self) -> str:
        """trained / failed / to train, from the marker files."""
        if self.is_trained():
            return "trained"
        if self.has_failed():
            return "failed"
        return "to train"

    @classmethod
    def from_row(cls, experiment: str, row) -> "RunSpec":
        """The run of a results-table row (a pandas Series or a dict)."""
        seed = row["seed"]
        size = int(row["size"])
        seed = None if size == 0 or seed is None or seed != seed else int(seed)   # seed != seed: NaN
        # a validation-selected row (results.reported_rows) is its chosen checkpoint's: "e<k>", or "last"
        checkpoint = str(row.get("selected") or row.get("checkpoint") or "")
        epoch = int(checkpoint[1:]) if checkpoint.startswith("e") and checkpoint[1:].isdigit() else None
        return cls(experiment, row["model"], size, seed, row.get("prompt") or None, row.get("variant") or None,
                   epoch)


def scored_on_disk(experiment: str) -> list[tuple[RunSpec, str]]:
    """Every (run, decoding) scored under experiments/<exp>/runs, whatever the
    current plan names: the folders are the record of what was done."""
    root = runs_dir(experiment)
    found = []
    for metrics in sorted(root.glob(f"**/{METRICS_PREFIX}*.json")):
        # model/[prompt/][variant-<v>/]n<size>/<seed<k>|base>/[epoch<e>/]metrics.<mode>.json
        parts = list(metrics.relative_to(root).parts)
        epoch = None
        if len(parts) > 4 and parts[-2].startswith(EPOCH_PREFIX) and parts[-2][len(EPOCH_PREFIX):].isdigit():
            epoch = int(parts.pop(-2)[len(EPOCH_PREFIX):])
        if len(parts) not in (4, 5, 6) or not parts[-3].startswith("n") or not parts[-3][1:].isdigit():
            continue
        middle = list(parts[1:-3])
        variant = middle.pop()[len(VARIANT_PREFIX):] if middle and middle[-1].startswith(VARIANT_PREFIX) else None
        if len(middle) > 1:
            continue
        size, tail = int(parts[-3][1:]), parts[-2]
        seed = None if tail == "base" else int(tail[4:]) if tail.startswith("seed") and tail[4:].isdigit() else -1
        if seed == -1 or (seed is None) != (size == 0):
            continue
        decoding = metrics.name[len(METRICS_PREFIX):-len(".json")]
        run = RunSpec(experiment, parts[0], size, seed, middle[0] if middle else None, variant, epoch)
        if run.metrics_file(decoding) == metrics:      # the folder is one this protocol names
            found.append((run, decoding))
    return found


@dataclass
class TrainRecord:
    """train_result.json: what a finished training run records, the one type between
    train.py, which writes it last (the "trained" marker), and its readers (results,
    the retrain check). Records written before a field existed read it as None."""
    run_id: str
    model: str | None = None
    variant: str | None = None
    size: int | None = None
    seed: int | None = None
    train_wall_s: float | None = None
    train_runtime_s: float | None = None       # LLaMA-Factory's own train_results.json from here on
    train_samples_per_s: float | None = None
    train_loss: float | None = None
    train_tokens_seen: int | None = None
    train_peak_rss_gb: float | None = None     # the trainer's process group, sampled
    epochs: float | None = None
    steps: int | None = None                   # as the trainer counted them, else as planned
    budget: str | None = None                  # the model's train budget kind
    checkpoints: dict | None = None            # epoch -> the adapter kept after it (train.save_epochs)
    method: str | None = None                  # finetuning_type: lora, full or freeze
    lora_rank: int | None = None
    weights_bytes: int | None = None
    saved_dtype: str | None = None             # full/freeze: the base's dtype the model was saved in
    fast_loss: str | None = None
    adapter: str | None = None
    gpus: list | None = None
    node: str | None = None                    # the host, or the Ray node (executor: ray)
    attempts: int | None = None
    fingerprint: str | None = None
    model_path: str | None = None              # as declared (embedded:..., a folder, a Hub id)
    finished_at: str | None = None

    def write(self, run: RunSpec) -> None:
        atomic_write_json(run.trained_marker, asdict(self))   # the "trained" marker, written last

    @classmethod
    def read(cls, run: RunSpec) -> "TrainRecord":
        data = read_json(run.trained_marker)
        known = {f.name for f in fields(cls)}
        return cls(**{"run_id": run.run_id, **{k: v for k, v in data.items() if k in known}})
