import json

from conftest import write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import load_test
from lorasweep.plan import baseline_runs
from lorasweep.score.baselines import run_baselines


def test_tfidf_baseline_learns_the_demo_task_and_improves_with_data(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[20, 300],
                                       data={"source": "generate:people_relations", "generate_size": 600,
                                             "test_size": 150}, eval={"baselines": ["tfidf"]}))
    test = load_test(cfg)
    done = run_baselines(cfg, test)
    assert done == ["baseline-tfidf-logreg__n20__seed1", "baseline-tfidf-logreg__n300__seed1"]
    runs = baseline_runs(cfg)
    assert all(r.is_scored("classifier") for r in runs)
    small, big = (json.loads((r.folder() / "metrics.classifier.json").read_text())["metrics"] for r in runs)
    assert big["f1_macro"] > small["f1_macro"]
    assert big["invalid"] == 0 and big["n"] == 150
    assert run_baselines(cfg, test) == []   # finished runs are skipped


def test_embedding_baseline_plumbing_and_cache(sandbox, monkeypatch):
    """The embedding model itself runs in tests/e2e; here a stand-in embeds."""
    import numpy as np

    import lorasweep.score.baselines as embed

    calls = []

    def fake_embed(texts, python, work):
        calls.append(len(texts))
        v = np.zeros((len(texts), 16), dtype="float32")
        for i, t in enumerate(texts):
            for ch in t:
                v[i, ord(ch) % 16] += 1
        return v

    monkeypatch.setattr(embed, "embed_texts", fake_embed)
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[40],
                                       data={"source": "generate:people_relations", "generate_size": 200,
                                             "test_size": 50}, eval={"baselines": ["embedding"]}))
    test = load_test(cfg)
    assert run_baselines(cfg, test) == ["baseline-minilm-logreg__n40__seed1"]
    assert calls == [200]   # every distinct input once
    (r,) = baseline_runs(cfg)
    m = json.loads((r.folder() / "metrics.classifier.json").read_text())["metrics"]
    assert m["n"] == 50 and m["invalid"] == 0
    # A new size reuses the cached embeddings.
    cfg2 = load_config(cfg.path, set_args=["train_sizes=[40,80]"])
    assert run_baselines(cfg2, test) == ["baseline-minilm-logreg__n80__seed1"]
    assert calls == [200]
