"""Typed experiment configuration, loaded from `experiments/<name>.yaml`.

Unknown keys are errors with a "did you mean"; the `train.args` mapping is the
one place where keys are free, because every LLaMA-Factory training key passes
through to the run's resolved YAML unchanged.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .infra.paths import repo_root
from .infra.tools import MANAGED_TRAIN_KEYS
from .tasks import get_task
from .tasks.metrics import normalise
from .tasks.prompts import placeholders, unknown_placeholders

Decoding = Literal["free", "constrained"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_SEED = 2**32 - 1   # numpy's seeding (through transformers' set_seed) takes 0 .. 2**32 - 1

# Defaults for the LLaMA-Factory keys lorasweep sets on every run; `train.args`
# overrides any of them. Sized for a small model on a CPU (see README).
DEFAULT_TRAIN_ARGS: dict[str, Any] = {
    "stage": "sft",
    "do_train": True,
    "finetuning_type": "lora",
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "lora_target": "all",
    "cutoff_len": 256,
    "learning_rate": 2.0e-4,
    "num_train_epochs": 2.0,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
    "logging_steps": 1,                      # a loss point per step: the loss curves (trainer_log.jsonl)
    "save_strategy": "no",
    "report_to": "none",
    "overwrite_output_dir": True,
    "plot_loss": False,
    "preprocessing_num_workers": 1,
    "dataloader_num_workers": 0,
    "include_num_input_tokens_seen": True,   # tokens seen: the cost of a point
}


def train_arg(args: dict[str, Any], key: str) -> Any:
    """A training key's value in a run's keys, else lorasweep's default for it: the one
    home of these fallbacks (resolved keys always hold the defaults; partial ones may not)."""
    return args.get(key, DEFAULT_TRAIN_ARGS.get(key))

# LLaMA-Factory's fine-tuning methods that save the whole model (each run's is
# served from a vLLM server of its own); lora saves an adapter.
WHOLE_MODEL_METHODS = ("full", "freeze")


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user (file, field, fix)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _no_managed_keys(v: dict[str, Any], where: str) -> dict[str, Any]:
    bad = sorted(set(MANAGED_TRAIN_KEYS) & set(v))
    if bad:
        raise ValueError(f"{bad} are set by lorasweep per run (models, train_sizes, seeds); remove them from {where}")
    return v


class BudgetSpec(_Strict):
    """How long each run trains (trainargs.budgeted applies it):
    epochs: train.args.num_train_epochs for every size (a small set gets few steps);
    min_steps: epochs raised, in whole epochs, until a run takes at least `steps` optimizer steps;
    steps: exactly `steps` optimizer steps for every size (LLaMA-Factory's max_steps)."""
    kind: Literal["epochs", "min_steps", "steps"] = "epochs"
    steps: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        # `budget: epochs`, `budget: {min_steps: 100}`, `budget: {steps: 200}`
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, dict) and "kind" not in v and len(v) == 1:
            (kind, steps), = v.items()
            if kind in ("min_steps", "steps"):
                return {"kind": kind, "steps": steps}
            raise ValueError(f"budget: unknown budget {kind!r}; write epochs, {{min_steps: N}} or {{steps: N}}")
        return v

    @model_validator(mode="after")
    def _steps_given(self) -> "BudgetSpec":
        if self.kind != "epochs" and self.steps is None:
            raise ValueError(f"budget {self.kind} needs a number of steps, e.g. {{{self.kind}: 100}}")
        if self.kind == "epochs" and self.steps is not None:
            raise ValueError("budget epochs takes no steps (the epochs are train.args.num_train_epochs)")
        return self

    def text(self) -> str:
        return {"epochs": "the same epochs for every size", "min_steps": f"at least {self.steps} optimizer steps "
                "per run (epochs raised for small sets)", "steps": f"{self.steps} optimizer steps for every size"
                }[self.kind]


class ModelSpec(_Strict):
    name: str = Field(description="short name used in run folders and tables")
    path: str = Field(description="a checkpoint folder, a Hugging Face Hub id (org/name), 'modelscope:org/name' "
                                  "(the ModelScope cache), or 'embedded:gemma-3-270m' for a built-in model")
    template: str = Field(description="LLaMA-Factory chat template name, e.g. gemma, qwen, llama3")
    stop_token_ids: list[int] | None = Field(
        default=None, description="token ids that end an answer; default: the token LLaMA-Factory's template "
                                  "puts after an answer (found by encoding one example)")
    trust_remote_code: bool = Field(
        default=False, description="run the model code its checkpoint folder ships (config.json's auto_map: "
                                   "GLM-4, Baichuan, ...): passed to LLaMA-Factory, the vLLM server and every "
                                   "tokenizer lorasweep loads; only for checkpoints you trust")
    allow_new_tokens: bool = Field(
        default=False, description="accept a template that adds tokens to the model's vocabulary (they are "
                                   "trained, and the resized embeddings saved with every adapter); default: refused, "
                                   "as it usually means another model family's template")
    train_args: dict[str, Any] = Field(
        default_factory=dict, description="LLaMA-Factory training keys for this model's runs only; they override "
                                          "train.args (e.g. a 7B model's batch size)")
    budget: BudgetSpec | None = Field(
        default=None, description="this model's training budget, in train.budget's words; default: train.budget "
                                  "(e.g. a model that answers in the label format from the start needs no minimum "
                                  "of steps, and the report names each model's budget)")

    @field_validator("train_args")
    @classmethod
    def _no_managed_model_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _no_managed_keys(v, "models[].train_args")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"model name {v!r} must be letters, digits, '.', '_' or '-' (it names folders)")
        return v


class TaskSpec(_Strict):
    type: str = Field(default="text_classification", description="a registered task type (lorasweep.tasks): "
                      "text_classification, relation_classification, ner, or one registered with register_task")
    labels: list[str] = Field(description="the closed label set (for ner: the entity types)")
    prompt: str | dict[str, str] = Field(
        description="prompt template, or several named ones (an experiment axis); "
                    "{text}, {labels} and, for relation_classification, {entity1}, {entity2} are filled in; "
                    "{{ and }} write a literal brace")
    label_separator: str = Field(default="、", description="joins the labels where a prompt says {labels}")
    none_answer: str = Field(default="没有", description="ner: the answer for a text without entities")
    entity_separator: str = Field(default="_", description="ner: between entity and type in an answer line")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        get_task(v)   # a ValueError naming the known types
        return v

    @field_validator("labels")
    @classmethod
    def _labels_ok(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if len(v) < 2:
            raise ValueError("needs at least two labels")
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"duplicate labels: {dup}")
        for lab in v:
            if not lab.strip():
                raise ValueError(f"{lab!r} is an empty label; write its text or remove it")
            if lab != lab.strip():   # data labels are stripped when read: this one could never match
                raise ValueError(f"{lab!r} has spaces at its ends (data labels are read stripped); "
                                 f"write {lab.strip()!r}")
        if "type" in info.data and get_task(info.data["type"]).closed_labels:
            # scoring (metrics.to_label) folds answers with normalise: labels equal after it are one label
            seen: dict[str, str] = {}
            for lab in v:
                other = seen.setdefault(normalise(lab), lab)
                if other != lab:
                    raise ValueError(f"{other!r} and {lab!r} are the same label once answers are normalised (width, "
                                     "case, trailing punctuation), so scoring cannot tell them apart; keep one")
        return v

    @model_validator(mode="after")
    def _task_rules(self) -> "TaskSpec":
        get_task(self.type).validate(self)   # e.g. ner's entity_separator
        return self

    @model_validator(mode="after")
    def _prompt_fields(self) -> "TaskSpec":
        prompts = self.prompt if isinstance(self.prompt, dict) else {"prompt": self.prompt}
        if not prompts:
            raise ValueError("prompt: give at least one template")
        for name, tpl in prompts.items():
            where = "prompt" if isinstance(self.prompt, str) else f"prompt '{name}'"
            if isinstance(self.prompt, dict) and not _NAME_RE.match(name):
                raise ValueError(f"prompt name {name!r} must be letters, digits, '.', '_' or '-' (it names folders)")
            allowed = get_task(self.type).prompt_fields()
            unknown = unknown_placeholders(tpl, allowed)
            if unknown:
                fields = ", ".join("{" + f + "}" for f in allowed)
                close = {u: difflib.get_close_matches(u, allowed, n=1) for u in unknown}
                named = ", ".join("{" + u + "}" + (f" (did you mean {{{close[u][0]}}}?)" if close[u] else "")
                                  for u in unknown)
                raise ValueError(f"{where}: {named} is not a field of a {self.type} task (its fields: {fields}); "
                                 "write a literal brace as {{ or }}")
            used = placeholders(tpl)
            if "text" not in used:
                raise ValueError(f"{where} must contain {{text}}")
            for f in get_task(self.type).fields:
                if f not in used:
                    raise ValueError(f"{where}: a {self.type} prompt must contain {{{f}}}")
        return self

    def prompt_names(self) -> list[str | None]:
        """None for the single unnamed prompt, else the names in order."""
        return list(self.prompt) if isinstance(self.prompt, dict) else [None]

    def prompt_template(self, name: str | None) -> str:
        if name is None:
            if isinstance(self.prompt, dict):
                raise KeyError("this task has named prompts; give a name")
            return self.prompt
        return self.prompt[name]

    @property
    def closed_labels(self) -> bool:
        """Whether an answer is one label (classification) rather than free structured text (ner)."""
        return get_task(self.type).closed_labels


class DataSpec(_Strict):
    source: str = Field(description="a JSON/JSONL/CSV file, or 'generate:people_relations' for the demo data")
    test_file: str | None = Field(default=None,
                                  description="a fixed test file; otherwise test_size examples are held out")
    test_size: int = Field(default=200, ge=1, description="held-out test examples when test_file is not given")
    val_size: int = Field(default=0, ge=0, description="validation examples held out once (stratified, after the "
                          "test set; never trained on) for eval.select: val; 0: none")
    split_seed: int = Field(default=0, ge=0, le=MAX_SEED,
                            description="seed of the test hold-out (fixed across run seeds)")
    generate_size: int = Field(default=2000, ge=10, description="examples to generate for 'generate:' sources")
    text_column: str = "text"
    label_column: str = "label"
    entity1_column: str = "entity1"
    entity2_column: str = "entity2"
    entities_column: str = Field(default="entities", description="ner: a list of entities, each [entity, type], "
                                 "{entity, type} (or {text, label}), character offsets into the text as given "
                                 "{start, end, label} or [start, end, label] (end exclusive; a text key must "
                                 "match), or Label Studio's {start, end, text, labels: [type]}; or use answer_column")
    answer_column: str = Field(default="answer", description="ner: the answer text, one 'entity_type' per line")
    sep: str | None = Field(default=None, description="CSV/TSV field separator; default: sniffed from the file's "
                            "first lines among , ; tab |, else , for .csv and tab for .tsv")
    encoding: str | None = Field(default=None, description="text encoding of the data files (e.g. gbk); default "
                                 "UTF-8, with or without a BOM")


class TrainSpec(_Strict):
    args: dict[str, Any] = Field(default_factory=dict,
                                 description="any LLaMA-Factory training keys; override the defaults")
    llamafactory_cli: str | None = Field(default=None,
                                         description="your own llamafactory-cli; default: the managed environment")
    timeout_s: float | None = Field(default=None, gt=0, description="kill a run that trains longer than this")
    gpus_per_run: int = Field(default=1, ge=1, description="GPUs given to each run; runs go in parallel on the rest")
    runs_per_gpu: int = Field(default=1, ge=1, description="runs trained at once on each GPU group (a small model "
                              "leaves most of a large GPU idle); 1 on a CPU-only machine")
    budget: BudgetSpec = Field(default_factory=BudgetSpec,
                               description="how long each run trains: epochs (train.args.num_train_epochs for "
                                           "every size), {min_steps: N} (epochs raised so every run takes at least "
                                           "N optimizer steps) or {steps: N} (N steps for every size)")
    save_epochs: list[int] = Field(default_factory=list,
                                   description="also keep each run's adapter after these epochs (whole epochs "
                                               "before its last); eval scores each beside the final adapter: "
                                               "the epoch curve, e.g. [1, 2, 5] of a 10-epoch run")
    fast_loss: bool = Field(default=True, description="compute the output layer only at the positions whose next "
                            "token is labelled (the same loss, ~3x faster on a CPU; envscripts/fast_loss.py); "
                            "false runs llamafactory-cli unchanged")

    @field_validator("args")
    @classmethod
    def _no_managed_train_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _no_managed_keys(v, "train.args")

    @field_validator("save_epochs")
    @classmethod
    def _epochs(cls, v: list[int]) -> list[int]:
        if any(e < 1 for e in v) or len(set(v)) != len(v):
            raise ValueError(f"save_epochs: whole epochs from 1 on, each once; got {v}")
        return sorted(v)

    def resolved_args(self) -> dict[str, Any]:
        return {**DEFAULT_TRAIN_ARGS, **self.args}


class EvalSpec(_Strict):
    decoding: Decoding | list[Decoding] = Field(
        default="free", description="free: raw answer, normalised; constrained: forced into the label list; "
                                    "a list scores each run both ways")
    max_tokens: int | None = Field(default=None, ge=1, description="answer length cap; default from the longest label")
    concurrency: int | Literal["auto"] = Field(
        default="auto", description="requests in flight per server; auto: as many as the server's KV cache holds "
                                    "at once (capped at 1024 on a GPU, 16 per core on a CPU, and at the number of "
                                    "requests)")
    api: Literal["completions", "chat"] = Field(
        default="completions", description="completions: the client renders the chat template the server was given "
                                           "(parity proves the token ids equal) and sends batch_size prompts per "
                                           "request; chat: one chat request per prompt")
    batch_size: int = Field(default=32, ge=1, description="prompts per completions request")
    client_processes: int | Literal["auto"] = Field(
        default="auto", description="scoring client processes per server, each taking a share of the runs; auto: "
                                    "1 on a CPU, up to 4 on a GPU")
    tune_server: bool = Field(default=True, description="lorasweep's throughput settings (on a CPU a KV block size "
                              "small enough for prefix caching to hit the shared instruction and LoRA kernels "
                              "that do not copy each token's adapter weights (same outputs); all of a model's "
                              "adapters batched together); false leaves vLLM's defaults")
    include_base: bool = Field(default=True, description="also score each base model zero-shot (train size 0)")
    select: Literal["last", "val"] = Field(
        default="last", description="the checkpoint a trained run reports: last (its final adapter) or val (of its "
                                    "final adapter and the ones kept after train.save_epochs, the one with the best "
                                    "headline score on the data.val_size validation examples, chosen before its "
                                    "test answers are read; ties: the earlier epoch)")
    quantized_base: bool = Field(default=True, description="score QLoRA adapters on a base quantized as in training "
                                 "(a second vLLM server with bitsandbytes; GPU only); false: on the "
                                 "full-precision base")
    baselines: list[Literal["tfidf", "embedding"]] = Field(
        default_factory=lambda: ["tfidf", "embedding"],
        description="classical classifiers on the same splits (tfidf, embedding); [] for none")
    check_parity: bool = Field(default=True,
                               description="before scoring, prove the served prompt tokens equal the trained ones")
    max_model_len: int = Field(default=1024, ge=64)
    kv_cache_gib: float = Field(default=2.0, gt=0, description="VLLM_CPU_KVCACHE_SPACE on CPU")
    dtype: str = "auto"
    server_timeout_s: float = Field(default=900, gt=0, description="how long to wait for the server to be healthy")
    server_restarts: int = Field(default=2, ge=0, description="restart a server that dies mid-scoring this often")
    request_timeout_s: float = Field(default=300, gt=0)
    vllm_python: str | None = Field(default=None,
                                    description="python of your own vLLM install; default: the managed environment")
    extra_server_args: list[str] = Field(default_factory=list, description="more vLLM server flags, passed as given")
    gpus_per_model: int = Field(default=1, ge=1,
                                description="GPUs given to each base model's server (tensor parallel); "
                                            "different base models are served at once on the rest")
    models_per_gpu: int | Literal["auto"] = Field(
        default="auto", description="base models served at once on each GPU group when there are more models "
                                    "than groups, each server with its share of the memory (their starts overlap); "
                                    "auto: as many as fit (3 x the weights each, at most 8); one at a time on a CPU")
    checkpoint_servers: int | Literal["auto"] = Field(
        default="auto", description="full/freeze-tuned models served at once on a model's GPUs, each from a vLLM "
                                    "server of its own with its share of the memory; auto: as many as fit (3 x "
                                    "the weights each, at most 8); one at a time on a CPU")
    delete_full_weights: bool = Field(default=False, description="delete a full/freeze-tuned model's weights once "
                                      "it is scored in every decoding (its scores, logs and config stay; scoring "
                                      "it again means training it again)")

    @field_validator("concurrency", "client_processes", "models_per_gpu", "checkpoint_servers")
    @classmethod
    def _at_least_one(cls, v, info):
        if isinstance(v, int) and v < 1:
            raise ValueError(f"{info.field_name} must be at least 1 (or auto)")
        return v

    @field_validator("decoding")
    @classmethod
    def _decoding(cls, v):
        modes = [v] if isinstance(v, str) else list(v)
        if not modes or len(set(modes)) != len(modes):
            raise ValueError("list each decoding mode once")
        return v

    @property
    def decodings(self) -> list[str]:
        return [self.decoding] if isinstance(self.decoding, str) else list(self.decoding)


class ExecutorSpec(_Strict):
    kind: Literal["local", "ray"] = Field(default="local", description="local: this machine, one run per GPU group "
                                          "(one at a time on a CPU); ray: every training and scoring job is a Ray task")
    address: str | None = Field(default=None, description="Ray cluster to join (host:port or auto); "
                                                          "default: start a local one on 127.0.0.1 for the sweep")
    max_retries: int = Field(default=2, ge=0, description="a job whose Ray worker dies is run again this often")
    cpus_per_task: float | None = Field(default=None, gt=0, description="Ray CPUs per job; default 1 for a GPU job, "
                                        "a whole node's CPUs for a CPU-only job (CPU training uses every core)")
    resources: dict[str, float] = Field(default_factory=dict,
                                        description="custom Ray resources each job asks for, e.g. {trainer: 1} on a "
                                                    "cluster whose nodes were started with --resources "
                                                    "'{\"trainer\": 1}' (one job per node at a time)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"kind": v} if isinstance(v, str) else v


class ExperimentConfig(_Strict):
    name: str
    task: TaskSpec
    data: DataSpec
    models: list[ModelSpec]
    train_sizes: list[int]
    seeds: list[int] = Field(default_factory=lambda: [1])
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named sets of LLaMA-Factory training keys, each a level of the grid "
                                          "(e.g. {r8: {}, r64: {lora_rank: 64}, e10: {num_train_epochs: 10}}); "
                                          "they override models[].train_args")
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

    # Set by load_config, not by YAML: where the file lives and the
    # command-line overrides applied on top of it.
    _path: Path | None = PrivateAttr(default=None)
    _set_args: list[str] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"experiment name {v!r} must be letters, digits, '.', '_' or '-' (it names folders)")
        return v

    @field_validator("train_sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("list at least one train size")
        if any(s <= 0 for s in v):
            raise ValueError(f"train sizes must be positive, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate train sizes in {v}")
        return sorted(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("list at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate seeds in {v}")
        bad = [s for s in v if not 0 <= s <= MAX_SEED]
        if bad:
            # transformers' set_seed hands the seed to numpy, which takes 0 .. 2**32 - 1 only (and
            # Python's random.seed(-1) equals random.seed(1): two "different" seeds, one subset)
            raise ValueError(f"seeds {bad} are out of range: a seed is a whole number from 0 to {MAX_SEED}")
        return v

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v   # pydantic says what a mapping is
        out = {}
        for name, keys in v.items():
            if not _NAME_RE.match(str(name)):
                raise ValueError(f"variant name {name!r} must be letters, digits, '.', '_' or '-' (it names folders)")
            keys = {} if keys is None else keys   # `lora:` with nothing after it: the settings as they are
            if not isinstance(keys, dict):
                raise ValueError(f"variant '{name}': expected a mapping of LLaMA-Factory training keys "
                                 f"(or {{}} for the settings as they are), got {keys!r}")
            out[str(name)] = _no_managed_keys(keys, f"variants.{name}")
        return out

    @model_validator(mode="after")
    def _axes_apart(self) -> "ExperimentConfig":
        # run ids join the axes with "__": a prompt and a variant of one name would be one id
        both = sorted(set(self.variants) & {p for p in self.task.prompt_names() if p})
        if both:
            raise ValueError(f"{both} name both a prompt and a variant; rename one")
        if any(p and p.startswith("variant-") for p in self.task.prompt_names()):
            raise ValueError("prompt names may not start with 'variant-' (the variant level of the run folders)")
        return self

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[ModelSpec]) -> list[ModelSpec]:
        if not v:
            raise ValueError("list at least one model")
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate model names: {dup}")
        return v

    @model_validator(mode="after")
    def _task_vs_eval(self) -> "ExperimentConfig":
        task = get_task(self.task.type)
        if not task.closed_labels and "constrained" in self.eval.decodings:
            raise ValueError(f"eval.decoding: constrained decoding needs a closed label set; use free for {task.name}")
        if not task.baselines:
            if "baselines" not in self.eval.model_fields_set:
                self.eval.baselines = []   # the default baselines are classifiers
            elif self.eval.baselines:
                raise ValueError("eval.baselines: the classifier baselines are for classification tasks; "
                                 f"set eval.baselines: [] for {task.name}")
        return self

    @model_validator(mode="after")
    def _selection_has_candidates(self) -> "ExperimentConfig":
        if self.eval.select == "val":
            missing = [k for k, ok in (("data.val_size", self.data.val_size > 0),
                                       ("train.save_epochs", bool(self.train.save_epochs))) if not ok]
            if missing:
                raise ValueError(f"eval.select: val chooses each run's checkpoint on a validation set; it needs "
                                 f"{' and '.join(missing)} (validation examples to score on, checkpoints kept "
                                 "to choose among), or set eval.select: last")
        return self

    @model_validator(mode="after")
    def _ray_shares_single_gpus(self) -> "ExperimentConfig":
        if self.executor.kind == "ray" and self.train.runs_per_gpu > 1 and self.train.gpus_per_run > 1:
            raise ValueError(f"train.runs_per_gpu={self.train.runs_per_gpu} with executor: ray needs "
                             f"train.gpus_per_run: 1 (Ray shares one GPU between tasks, not several)")
        return self

    @property
    def path(self) -> Path | None:
        return self._path

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def set_args(self) -> list[str]:
        """The command line's `--set key=value` items this config was loaded with."""
        return list(self._set_args)

    def variant_names(self) -> list[str | None]:
        """None when the experiment has no variants, else their names in order."""
        return list(self.variants) or [None]

    def train_args(self, model: str, variant: str | None = None) -> dict[str, Any]:
        """LLaMA-Factory keys for a model's runs: defaults < train.args < models[].train_args < the variant."""
        m = self.model(model)
        return {**self.train.resolved_args(), **({"trust_remote_code": True} if m.trust_remote_code else {}),
                **m.train_args, **(self.variants[variant] if variant else {})}

    def budget(self, model: str) -> BudgetSpec:
        """The model's training budget: models[].budget, else train.budget."""
        return self.model(model).budget or self.train.budget

    def budget_text(self) -> str:
        """The budget in words, once when every model has the same, else per model."""
        texts = {m.name: self.budget(m.name).text() for m in self.models}
        if len(set(texts.values())) == 1:
            return next(iter(texts.values()))
        return "; ".join(f"{name}: {text}" for name, text in texts.items())

    def trains_whole_model(self, model: str, variant: str | None = None) -> bool:
        """Whether the runs save a whole model (finetuning_type full or freeze), not an adapter."""
        return train_arg(self.train_args(model, variant), "finetuning_type") in WHOLE_MODEL_METHODS

    def train_arg_values(self, model: str, key: str) -> list[Any]:
        """The values a key takes over the model's variants (e.g. the largest lora_rank is the server's)."""
        return [train_arg(self.train_args(model, v), key) for v in self.variant_names()]


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _submodel_at(loc: tuple) -> type[BaseModel]:
    """The pydantic class that owns the field at `loc` (for "did you mean")."""
    cls: type[BaseModel] = ExperimentConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            break
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        cand = [ann] + list(inner or [])
        nxt = next((c for c in cand if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            break
        cls = nxt
    return cls


def _yaml_typed_hint(value: Any, spelling: str | None) -> str:
    """Why a string field got a bool or number: YAML 1.1 reads yes/no/on/off and digits unquoted as such."""
    if isinstance(value, bool):
        if spelling:
            return f'; YAML read {spelling} as a boolean ({value}); quote it: "{spelling}"'
        return f'; YAML read it as a boolean ({value}); quote the word as written, e.g. "{"yes" if value else "no"}"'
    if isinstance(value, (int, float)):
        if spelling:
            return f'; YAML read {spelling} as a number ({value}); quote it: "{spelling}"'
        return f'; YAML read it as a number ({value}); quote it as written, e.g. "{value}"'
    return ""


def format_validation_error(err: ValidationError, source: str,
                            spelling: Callable[[tuple, Any], str | None] | None = None) -> str:
    """`spelling(loc, value)`: the value's text as the YAML file writes it, when known."""
    lines = [f"{source}: {err.error_count()} problem(s) in the experiment config:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_keys(_submodel_at(loc))
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
            lines.append(f"  - {where}: unknown key '{key}'; {hint}")
        elif e["type"] == "missing":
            lines.append(f"  - {where}: required field is missing")
        elif e["type"] == "string_type" and isinstance(e.get("input"), (bool, int, float)):
            written = spelling(loc, e["input"]) if spelling else None
            lines.append(f"  - {where}: {e['msg']}{_yaml_typed_hint(e['input'], written)}")
        else:
            lines.append(f"  - {where}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _list_index(dotted: str, where: str, items: list, p: str) -> int:
    """The list item a --set key names by its number (models.0.name)."""
    span = f"{len(items)} item(s) (0..{len(items) - 1})" if items else "no items"
    if not (p.isascii() and p.isdecimal()):
        raise ConfigError(f"--set {dotted}: {where} is a list of {span}; name an item by its number, "
                          f"e.g. {where}.0")
    if int(p) >= len(items):
        raise ConfigError(f"--set {dotted}: {where} has {span}")
    return int(p)


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur: Any = d
    for depth, p in enumerate(parts):
        key = _list_index(dotted, ".".join(parts[:depth]), cur, p) if isinstance(cur, list) else p
        if depth == len(parts) - 1:
            cur[key] = value
            return
        nxt = cur[key] if isinstance(cur, list) else cur.get(key)
        if nxt is None:
            nxt = cur[key] = {}
        if p == "executor" and isinstance(nxt, str) and cur is d:   # the `executor: ray` shorthand
            nxt = cur[p] = {"kind": nxt}
        if not isinstance(nxt, (dict, list)):
            at = ".".join(parts[:depth + 1])
            raise ConfigError(f"--set {dotted}: '{at}' is {nxt!r}, not a mapping or a list; write --set {at}=<value>")
        cur = nxt


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key.sub=value` strings from the command line; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if not key.strip():
            raise ConfigError(f"--set {item!r}: no key before '='; write key.sub=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            why = str(getattr(e, "problem", None) or e).splitlines()[0]
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({why}); quote it as a string, "
                              f"e.g. --set '{key.strip()}=\"{raw}\"', or fix the brackets") from None
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, line: int):
        super().__init__(key)
        self.key, self.first, self.line = key, first, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last, silently).
    Checked as each mapping is composed, before merge keys (<<) are flattened into it."""

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in seen:
                raise _DuplicateKey(key.value, seen[key.tag, key.value], line)
            seen[key.tag, key.value] = line
        return node


def _written(node: Any, loc: tuple, value: Any) -> str | None:
    """The plain YAML text at `loc` when it reads as `value` (not one a --set replaced), else None."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in reversed(node.value) if isinstance(k, yaml.ScalarNode) and k.value == part),
                        None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        elif not isinstance(node, yaml.ScalarNode):   # (a scalar ends the walk: the rest names a union's branch)
            return None
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    return node.value if _reads_as(node.value, value) else None


def _reads_as(text: str | None, value: Any) -> bool:
    try:
        same = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return False
    return type(same) is type(value) and same == value


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                set_args: list[str] | None = None) -> ExperimentConfig:
    """Load and validate an experiment; `overrides` (dotted keys) win over the YAML.

    `set_args` are the raw `key=value` strings; they are parsed into overrides
    and remembered so child processes can be given the same ones.
    """
    path = Path(path)
    overrides = {**parse_overrides(set_args or []), **(overrides or {})}
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    loader = _UniqueKeyLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
        raw = loader.construct_document(root) if root is not None else None
    except _DuplicateKey as e:
        lines = f"lines {e.first} and {e.line}" if e.first != e.line else f"both on line {e.line}"
        raise ConfigError(f"{path}:{e.line}: key '{e.key}' is given twice ({lines}); keep one") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (name, task, data, models, ...)")
    raw.setdefault("name", path.stem)
    for k, v in overrides.items():
        _set_dotted(raw, k, v)
    set_text = {k.strip(): v.strip() for k, _, v in (a.partition("=") for a in set_args or [])}

    def spelling(loc: tuple, value: Any) -> str | None:
        # as the file writes it, or as --set does when one replaced it
        dotted = ".".join(map(str, loc))
        hit = next((k for k in overrides if dotted == k or dotted.startswith(k + ".")), None)
        if hit is None:
            return _written(root, loc, value)
        return set_text[hit] if hit in set_text and _reads_as(set_text[hit], value) else None

    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), spelling)) from None
    cfg._path = path.resolve()
    cfg._set_args = list(set_args or [])
    return cfg


def load_experiment(path: str | Path, set_args: list[str] | None = None) -> ExperimentConfig:
    """load_config for a path as a user gives it: relative to the current
    folder, else to the repository root (LORASWEEP_ROOT)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = repo_root() / path
    return load_config(path, set_args=set_args)
