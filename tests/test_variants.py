"""Variants: named sets of training keys as an axis of the grid (config, plan,
run folders, the resolved train.yaml, results and curves), and the base a
QLoRA adapter is trained against and served on."""
import matplotlib
import pytest

from conftest import write_experiment
from lorasweep.analysis import plots
from lorasweep.analysis import results as R
from lorasweep.check.trainargs import resolved_train_yaml
from lorasweep.config import ConfigError, load_config
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.plan import eval_runs, plan_text, train_runs
from lorasweep.runspec import RunSpec, scored_on_disk
from lorasweep.serve.serve import VLLMServer, base_server_args, served_base, trained_base
from lorasweep.train.train import fingerprint

matplotlib.use("Agg")
VARIANTS = {"r8": {}, "r64": {"lora_rank": 64, "lora_alpha": 16, "lora_dropout": 0.05},
            "qlora": {"quantization_bit": 4}}


def _cfg(sandbox, **over):
    models = [{"name": "m1", "path": "embedded:gemma-3-270m", "template": "gemma",
               "train_args": {"lora_rank": 16, "learning_rate": 1.0e-4}}]
    return load_config(write_experiment(sandbox / "experiments" / "x.yaml", models=models, variants=VARIANTS,
                                        train={"args": {"lora_rank": 4, "num_train_epochs": 3}}, **over))


def test_variants_are_a_level_of_the_grid_with_their_own_folders_ids_and_plan_lines(sandbox):
    cfg = _cfg(sandbox)
    runs = train_runs(cfg)
    assert len(runs) == 2 * 3 and len({r.run_id for r in runs}) == 6 and len({r.folder() for r in runs}) == 6
    r = next(r for r in runs if r.variant == "r64" and r.size == 10)
    assert r.run_id == "m1__r64__n10__seed1"
    assert r.folder() == sandbox / "experiments" / "x" / "runs" / "m1" / "variant-r64" / "n10" / "seed1"
    # variants share the training data: the same examples, compared pairwise
    assert len({x.train_file for x in runs if x.size == 10}) == 1
    assert [b.run_id for b in eval_runs(cfg) if b.is_base] == ["m1__n0__base"]   # zero-shot trains nothing
    text = plan_text(cfg)
    assert "1 model(s) x 3 variant(s) x 2 size(s) x 1 seed(s) = 6 training run(s)" in text
    assert "variant r64: lora_alpha=16, lora_dropout=0.05, lora_rank=64" in text   # (the YAML as written)
    assert "variant r8: the settings as they are" in text


def test_settings_override_in_the_written_order_and_enter_the_fingerprint(sandbox):
    cfg = _cfg(sandbox)
    by_variant = {r.variant: r for r in train_runs(cfg) if r.size == 10}
    r8, r64, q = (resolved_train_yaml(cfg, by_variant[v]) for v in ("r8", "r64", "qlora"))
    # defaults < train.args < models[].train_args < the variant
    assert r8["lora_rank"] == 16 and r8["num_train_epochs"] == 3 and r8["learning_rate"] == 1.0e-4
    assert r8["lora_dropout"] == 0.0                       # lorasweep's default
    assert r64["lora_rank"] == 64 and r64["lora_dropout"] == 0.05 and r64["learning_rate"] == 1.0e-4
    assert q["quantization_bit"] == 4 and q["lora_rank"] == 16
    assert len({fingerprint(cfg, by_variant[v]) for v in by_variant}) == 3


@pytest.mark.parametrize("variants, msg", [
    ({"a b": {}}, "variant name 'a b' must be letters"),
    ({"v": {"output_dir": "/tmp"}}, r"are set by lorasweep per run .* remove them from variants.v"),
    ({"v": 3}, "variant 'v': expected a mapping of LLaMA-Factory training keys"),
])
def test_bad_variants_are_explained(sandbox, variants, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(write_experiment(sandbox / "experiments" / "x.yaml", variants=variants))


def test_a_prompt_and_a_variant_of_one_name_are_refused(sandbox):
    task = {"type": "relation_classification", "labels": ["a", "b"],
            "prompt": {"short": "{text}{entity1}{entity2}", "long": "{labels}{text}{entity1}{entity2}"}}
    with pytest.raises(ConfigError, match=r"\['short'\] name both a prompt and a variant"):
        load_config(write_experiment(sandbox / "experiments" / "x.yaml", task=task, variants={"short": {}}))


def test_an_experiment_without_variants_keeps_its_folders(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    assert cfg.variant_names() == [None]
    assert [r.run_id for r in train_runs(cfg)] == ["m1__n10__seed1", "m1__n20__seed1"]
    assert train_runs(cfg)[0].folder() == sandbox / "experiments" / "x" / "runs" / "m1" / "n10" / "seed1"


def test_scored_variant_runs_read_back_from_disk_into_a_variant_column_and_curves(sandbox):
    cfg = _cfg(sandbox)
    for i, r in enumerate(eval_runs(cfg)):
        atomic_write_json(r.metrics_file("free"), {"decoding": "free", "score_s": 1.0, "variant": r.variant,
                                                  "trained_base": trained_base(cfg, r),
                                                  "served_base": served_base(cfg, r, on_gpu=False),
                                                  "metrics": {"n": 10, "accuracy": 0.5, "f1_macro": 0.05 * i}})
    assert sorted(r.run_id for r, _ in scored_on_disk("x")) == sorted(r.run_id for r in eval_runs(cfg))
    df = R.collect_results(cfg)
    assert set(df.variant) == {"", "r8", "r64", "qlora"} and df.in_plan.all()
    q = df[df.variant == "qlora"]
    assert set(q.trained_base) == {"bnb-4bit"} and set(q.served_base) == {"full"}   # a CPU: no bitsandbytes in vLLM
    assert R.series_keys(df) == ["model", "variant"]
    assert RunSpec.from_row("x", q.iloc[0]) == next(r for r in train_runs(cfg) if r.run_id == q.iloc[0].run_id)
    # each variant's curve starts at the zero-shot point
    fig = plots.plot_learning_curves(df)
    assert len(fig.axes[0].lines) == 3
    assert all(line.get_xdata()[0] == 0 for line in fig.axes[0].lines)


def test_qlora_adapters_get_a_server_that_quantizes_the_base_on_a_gpu(sandbox, tmp_path):
    cfg = _cfg(sandbox)
    q = next(r for r in train_runs(cfg) if r.variant == "qlora")
    full = next(r for r in train_runs(cfg) if r.variant == "r64")
    assert trained_base(cfg, q) == "bnb-4bit" and trained_base(cfg, full) == "full"
    assert served_base(cfg, q, on_gpu=True) == "bnb-4bit" and served_base(cfg, q, on_gpu=False) == "full"
    cfg.eval.quantized_base = False   # the same adapters on the full-precision base, to compare
    assert served_base(cfg, q, on_gpu=True) == "full"
    cfg.eval.quantized_base = True
    assert base_server_args("bnb-4bit") == ["--quantization", "bitsandbytes"] and base_server_args("full") == []
    srv = VLLMServer(cfg, cfg.models[0], {q.run_id: q.adapter_dir}, None, tmp_path / "s.log", gpus=["0"],
                     base="bnb-4bit")
    i = srv.argv.index("--quantization")
    assert srv.argv[i + 1] == "bitsandbytes"
    assert "--quantization" not in VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["0"]).argv


def test_a_check_message_names_the_variant_a_key_came_from(sandbox):
    from lorasweep.check.trainargs import where_set

    cfg = _cfg(sandbox)
    assert where_set(cfg, "m1", "quantization_bit", "qlora") == "variants.qlora.quantization_bit"
    assert where_set(cfg, "m1", "lora_rank", "r8") == "models[m1].train_args.lora_rank"
    assert where_set(cfg, "m1", "num_train_epochs", "r8") == "train.args.num_train_epochs"
    assert where_set(cfg, "m1", "cutoff_len") == "cutoff_len (a lorasweep default)"


def test_check_warns_that_qlora_runs_will_be_scored_on_the_full_base_on_a_cpu(sandbox, monkeypatch):
    from lorasweep.check import check
    from lorasweep.infra import tools

    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: False)
    (warning,) = check.served_base_warnings(_cfg(sandbox))
    assert warning.startswith("2 run(s) train against a bnb-4bit base (e.g. m1__qlora__n10__seed1) and will be "
                              "scored on the full-precision base (vLLM's CPU backend has no bitsandbytes)")
    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: True)
    assert check.served_base_warnings(_cfg(sandbox)) == []
