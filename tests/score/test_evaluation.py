"""The eval stage's scoring rounds: which client processes run at once against
one server (fakes for the clients; the real ones run in tests/e2e)."""
import pytest

from conftest import write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import prepare_data
from lorasweep.plan import eval_runs
from lorasweep.score import evaluation


@pytest.mark.parametrize("on_gpu, tune_server, rounds", [
    (True, True, [["base", "adapters"]]),      # GPU kernels give base rows no LoRA term: all at once
    (False, True, [["base", "adapters"]]),     # lorasweep's CPU kernels (cpu_lora.py) too
    (False, False, [["base"], ["adapters"]]),  # vLLM's own CPU kernels: the base model alone, first
])
def test_base_model_shares_the_round_only_where_its_requests_may_share_batches(sandbox, monkeypatch, on_gpu,
                                                                               tune_server, rounds):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", seeds=[1],
                                       eval={"tune_server": tune_server, "baselines": []}))
    prepare_data(cfg)
    events = []

    def start(cfg_, srv, runs, share, split="test"):
        events.append(("start", "base" if all(r.is_base for r in runs) else "adapters", share))
        return events[-1][1]

    def wait(proc):
        events.append(("wait", proc))
        return 0

    monkeypatch.setattr(evaluation, "_start_client", start)
    monkeypatch.setattr(evaluation, "_wait", wait)
    monkeypatch.setattr(evaluation, "client_processes", lambda *a: 1)
    monkeypatch.setattr(evaluation.tools, "has_nvidia_gpu", lambda: on_gpu)

    class Server:
        gpus = ["0"] if on_gpu else []
    assert evaluation._score_with_client(cfg, Server(), list(eval_runs(cfg))) == 0
    # a round's processes all start before any is waited for; `share` = the processes in its round
    expect = [e for r in rounds for e in [*(("start", n, len(r)) for n in r), *(("wait", n) for n in r)]]
    assert events == expect
