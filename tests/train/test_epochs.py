"""Adapters kept after chosen epochs (train.save_epochs): runs of their own in
their training run's folder, moved there from LLaMA-Factory's checkpoints,
scored, read back into the results and drawn against epochs."""
import matplotlib
import pytest

from conftest import write_experiment
from lorasweep.analysis import plots
from lorasweep.analysis import results as R
from lorasweep.config import ConfigError, load_config
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.plan import checkpoint_runs, eval_runs, plan_text, train_runs
from lorasweep.runspec import RunSpec, scored_on_disk
from lorasweep.train.budget import kept_epochs, run_keys
from lorasweep.train.train import keep_checkpoints

matplotlib.use("Agg")


def _cfg(sandbox, save_epochs=(1, 2, 5), epochs=3, **over):
    return load_config(write_experiment(
        sandbox / "experiments" / "x.yaml", train_sizes=[50, 100],
        data={"source": "generate:people_relations", "generate_size": 400, "test_size": 50},
        train={"save_epochs": list(save_epochs), "args": {"num_train_epochs": epochs,
                                                          "per_device_train_batch_size": 8}}, **over))


def test_kept_checkpoints_are_runs_in_their_training_runs_folder(sandbox):
    cfg = _cfg(sandbox)
    # 3 epochs: the checkpoints after 1 and 2 are kept; 5 is never reached and 3 is the final adapter
    assert [kept_epochs(cfg, r) for r in train_runs(cfg)] == [[1, 2], [1, 2]]
    ck = checkpoint_runs(cfg)
    assert [r.run_id for r in ck] == ["m1__n50__seed1__e1", "m1__n50__seed1__e2", "m1__n100__seed1__e1",
                                      "m1__n100__seed1__e2"]
    assert ck[0].folder() == train_runs(cfg)[0].folder() / "epoch1"
    assert ck[0].adapter_dir == ck[0].folder() / "adapter" and ck[0].training_run == train_runs(cfg)[0]
    assert ck[0].train_file == train_runs(cfg)[0].train_file           # the same training set
    assert set(ck) <= set(eval_runs(cfg))
    assert "+ 4 checkpoint(s) kept after epochs [1, 2, 5] and scored by eval" in plan_text(cfg)
    keys = run_keys(cfg, train_runs(cfg)[0])
    assert keys["save_strategy"] == "epoch" and keys["save_only_model"] is True
    assert "save_strategy" not in run_keys(_cfg(sandbox, save_epochs=()), train_runs(cfg)[0]) or \
        run_keys(_cfg(sandbox, save_epochs=()), train_runs(cfg)[0])["save_strategy"] == "no"


@pytest.mark.parametrize("bad", [[0], [2, 2], [-1]])
def test_save_epochs_are_whole_epochs_each_once(sandbox, bad):
    with pytest.raises(ConfigError, match="save_epochs: whole epochs from 1 on, each once"):
        _cfg(sandbox, save_epochs=bad)


def test_llamafactorys_checkpoints_are_moved_to_their_runs_and_the_rest_deleted(sandbox):
    cfg = _cfg(sandbox)
    run = train_runs(cfg)[0]                     # n50, batch 8: 7 steps an epoch
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "chat_template.jinja").write_text("{{ messages }}")
    for step in (7, 14, 21):
        ck = run.adapter_dir / f"checkpoint-{step}"
        ck.mkdir()
        (ck / "adapter_model.safetensors").write_text(str(step))
    atomic_write_json(run.trained_marker, {})
    kept = keep_checkpoints(cfg, run)
    assert kept == {"1": str(run.checkpoint(1).adapter_dir), "2": str(run.checkpoint(2).adapter_dir)}
    assert (run.checkpoint(2).adapter_weights.read_text() == "14")
    assert (run.checkpoint(1).adapter_dir / "chat_template.jinja").read_text() == "{{ messages }}"
    assert not list(run.adapter_dir.glob("checkpoint-*"))               # the last epoch's copy is the final one
    assert run.checkpoint(1).is_trained() and not run.checkpoint(3).is_trained()


def test_scored_checkpoints_come_back_as_rows_with_their_epoch_and_an_epoch_curve(sandbox):
    cfg = _cfg(sandbox)
    for i, r in enumerate(eval_runs(cfg)):
        atomic_write_json(r.metrics_file("free"), {"decoding": "free", "score_s": 1.0,
                                                  "metrics": {"n": 50, "accuracy": 0.5, "f1_macro": 0.05 * i}})
        if not r.is_base and not r.epoch:
            atomic_write_json(r.trained_marker, {"epochs": 3.0, "steps": 21 if r.size == 50 else 39})
    assert sorted(x.run_id for x, _ in scored_on_disk("x")) == sorted(x.run_id for x in eval_runs(cfg))
    df = R.collect_results(cfg)
    e1 = df[df.run_id == "m1__n50__seed1__e1"].iloc[0]
    assert e1.checkpoint == "e1" and e1.epochs == 1 and e1.steps == 7 and e1["size"] == 50
    assert RunSpec.from_row("x", e1) == RunSpec("x", "m1", 50, 1, epoch=1)
    assert R.series_name(e1) == "m1 / free / e1" and "checkpoint" in R.series_keys(df)
    points = plots.epoch_points(df)
    assert sorted(points[points["size"] == 50]["epochs"]) == [1, 2, 3] and set(points["curve"]) == {"m1 / free"}
    fig = plots.plot_epoch_curves(df)
    assert len(fig.axes[0].lines) == 2                                    # one line per train size
