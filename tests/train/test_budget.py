"""The training budget: each run's epochs and optimizer steps from train.budget,
in its train.yaml, the plan and the fingerprint."""
import pytest

from conftest import write_experiment
from lorasweep.check.trainargs import resolved_train_yaml
from lorasweep.config import ConfigError, load_config
from lorasweep.plan import plan_text, train_runs
from lorasweep.train.budget import budget, run_keys, steps_per_epoch
from lorasweep.train.train import fingerprint


def _cfg(sandbox, budget_=None, **train):
    t = {"args": {"num_train_epochs": 2, "per_device_train_batch_size": 8}, **train}
    if budget_ is not None:
        t["budget"] = budget_
    return load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[50, 100, 500], train=t,
                                        data={"source": "generate:people_relations", "generate_size": 800,
                                              "test_size": 100}))


@pytest.mark.parametrize("size, batch, gpus, accum, expect", [
    (50, 8, 1, 1, 7),      # ceil(50 / 8)
    (500, 8, 1, 1, 63),    # the demo's largest: ceil(500 / 8)
    (50, 8, 2, 1, 4),      # two data-parallel GPUs: ceil(50 / 16)
    (100, 4, 1, 4, 7),     # ceil(ceil(100 / 4) / 4) = ceil(25 / 4)
    (3, 8, 1, 1, 1),       # a set smaller than a batch is still one step
])
def test_steps_per_epoch_arithmetic(size, batch, gpus, accum, expect):
    args = {"per_device_train_batch_size": batch, "gradient_accumulation_steps": accum}
    assert steps_per_epoch(size, args, gpus) == expect


def test_epochs_budget_is_todays_behaviour(sandbox):
    cfg = _cfg(sandbox)
    b = {r.size: budget(cfg, r) for r in train_runs(cfg)}
    assert (b[50].epochs, b[50].steps) == (2.0, 14) and (b[500].epochs, b[500].steps) == (2.0, 126)
    run = train_runs(cfg)[0]
    assert run_keys(cfg, run) == cfg.train_args(run.model) and "max_steps" not in resolved_train_yaml(cfg, run)


def test_min_steps_raises_the_epochs_of_small_sets_in_whole_epochs(sandbox):
    cfg = _cfg(sandbox, {"min_steps": 100})
    by_size = {r.size: r for r in train_runs(cfg)}
    # n50: 7 steps an epoch, ceil(100 / 7) = 15 epochs = 105 steps; n100: 13 an epoch -> 8 epochs = 104;
    # n500: 63 an epoch x 2 epochs = 126 >= 100, left as it is
    assert [(budget(cfg, by_size[n]).epochs, budget(cfg, by_size[n]).steps) for n in (50, 100, 500)] == \
        [(15.0, 105), (8.0, 104), (2.0, 126)]
    assert resolved_train_yaml(cfg, by_size[50])["num_train_epochs"] == 15.0
    assert resolved_train_yaml(cfg, by_size[500])["num_train_epochs"] == 2.0
    text = plan_text(cfg)
    assert "15 ep x 7 = 105 steps" in text and "budget: at least 100 optimizer steps per run" in text


def test_steps_budget_gives_every_size_the_same_steps_through_max_steps(sandbox):
    cfg = _cfg(sandbox, {"steps": 60})
    for r in train_runs(cfg):
        assert resolved_train_yaml(cfg, r)["max_steps"] == 60 and budget(cfg, r).steps == 60
    assert budget(cfg, next(r for r in train_runs(cfg) if r.size == 50)).epochs == round(60 / 7, 4)


def test_the_budget_is_part_of_a_runs_fingerprint(sandbox):
    plain, raised = _cfg(sandbox), _cfg(sandbox, {"min_steps": 100})
    small = [r for r in train_runs(plain) if r.size == 50][0]
    big = [r for r in train_runs(plain) if r.size == 500][0]
    assert fingerprint(plain, small) != fingerprint(raised, small)
    assert fingerprint(plain, big) == fingerprint(raised, big)   # already over 100 steps: unchanged


@pytest.mark.parametrize("value, msg", [
    ({"min_step": 10}, "unknown budget 'min_step'"),
    ("min_steps", "needs a number of steps"),
    ({"steps": 0}, "greater than or equal to 1"),
])
def test_bad_budgets_are_explained(sandbox, value, msg):
    with pytest.raises(ConfigError, match=msg):
        _cfg(sandbox, value)


def test_epochs_of_the_wrong_type_leave_the_keys_for_check_to_report(sandbox):
    cfg = _cfg(sandbox, {"min_steps": 100}, args={"num_train_epochs": "abc"})
    run = train_runs(cfg)[0]
    assert budget(cfg, run).steps == 0 and run_keys(cfg, run)["num_train_epochs"] == "abc"


def test_a_model_may_have_its_own_budget_and_the_plan_names_each(sandbox):
    # m1 keeps train.budget (epochs); m2 gets at least 40 steps: n50 at batch 8 is 7 steps an epoch,
    # 2 epochs = 14 < 40, so ceil(40 / 7) = 6 epochs = 42 steps
    models = [{"name": "m1", "path": "embedded:gemma-3-270m", "template": "gemma"},
              {"name": "m2", "path": "embedded:gemma-3-270m", "template": "gemma", "budget": {"min_steps": 40}}]
    cfg = load_config(write_experiment(
        sandbox / "experiments" / "x.yaml", train_sizes=[50, 100, 500], models=models,
        train={"args": {"num_train_epochs": 2, "per_device_train_batch_size": 8}},
        data={"source": "generate:people_relations", "generate_size": 800, "test_size": 100}))
    small = {r.model: r for r in train_runs(cfg) if r.size == 50}
    assert (budget(cfg, small["m1"]).steps, budget(cfg, small["m2"]).steps) == (14, 42)
    assert resolved_train_yaml(cfg, small["m2"])["num_train_epochs"] == 6.0
    assert resolved_train_yaml(cfg, small["m1"])["num_train_epochs"] == 2
    assert "budget: m1: the same epochs for every size; m2: at least 40 optimizer steps" in plan_text(cfg)
