"""The report and its analyses on a synthetic experiment with known behaviour:
runs get more right with more data, and one model is clearly better than another."""
import random
import shutil
import subprocess

import pytest

from conftest import write_experiment
from lorasweep.analysis import analysis, report
from lorasweep.config import load_config
from lorasweep.data.splits import load_test, prepare_data
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.runspec import RunSpec
from lorasweep.score.runresult import RunResult, write_run_result

SIZES = [20, 40, 80, 160]


def _fake_results(cfg, test):
    labels = cfg.task.labels
    refs = [ex["label"] for ex in test]
    # "good" keeps improving; "weak" levels off at 40% right (its curve plateaus
    # well below the 0.6 target). Seeds are stable across processes (no hash()).
    curves = {"good": lambda n: 0.9 - 2.0 * n ** -0.5, "weak": lambda n: 0.4 - 2.0 / n}
    for model, curve in curves.items():
        for size in [0] + SIZES:
            for seed in ([None] if size == 0 else cfg.seeds):
                rng = random.Random(f"{model}-{size}-{seed}")
                acc = curve(size or 5)
                preds = [r if rng.random() < acc else rng.choice(labels) for r in refs]
                run = RunSpec(cfg.name, model, size, seed)
                res = RunResult(run.run_id, cfg.name, model, size, seed, "free", list(labels), references=refs,
                                raw=preds, predictions=preds, score_s=3.0)
                from lorasweep.tasks.metrics import classification_metrics
                res.metrics = classification_metrics(preds, refs, labels)
                write_run_result(run, res, test)
                if size:
                    atomic_write_json(run.folder() / "train_result.json",
                                      {"train_wall_s": size * 1.5, "train_samples_per_s": 1.3,
                                       "train_tokens_seen": size * 200, "train_peak_rss_gb": 2.5})


@pytest.fixture
def experiment(sandbox):
    cfg = load_config(write_experiment(
        sandbox / "experiments" / "x.yaml", train_sizes=SIZES, seeds=[1, 2, 3],
        data={"source": "generate:people_relations", "generate_size": 600, "test_size": 300},
        models=[{"name": "good", "path": "p", "template": "gemma"}, {"name": "weak", "path": "q", "template": "gemma"}],
        eval={"baselines": []}))
    prepare_data(cfg)
    _fake_results(cfg, load_test(cfg))
    return cfg


def test_intervals_paired_matrix_and_curve_answers(experiment):
    from lorasweep.analysis.results import collect_results

    df = analysis.with_intervals(experiment, collect_results(experiment), n_resamples=200)
    assert ((df.score_low <= df.score) & (df.score <= df.score_high)).all()
    p, d = analysis.paired_matrix(experiment, df, 160, n_resamples=300)
    assert d.loc["good / free", "weak / free"] > 0.1 and p.loc["good / free", "weak / free"] < 0.05
    assert p.attrs["seeds"][("good / free", "weak / free")] == 3           # every seed, not the first
    assert (p.fillna(0) >= p.attrs["raw"].fillna(0)).all().all()             # Holm only raises p-values
    answers = analysis.curve_answers(df, target=0.6, cfg=experiment, n_boot=100)
    assert set(answers) == {"good / free", "weak / free"}
    good = answers["good / free"]["answer"]
    assert good.low80 < good.median < good.high80 and good.p_reachable > 0.5   # test-set + seed resamples
    assert answers["good / free"]["backtest"].held_out == max(SIZES)
    assert answers["good / free"]["suggestion"].train_minutes > 0            # from the runs' wall times
    weak = answers["weak / free"]
    assert "answer" not in weak or weak["answer"].message.startswith("not answered")   # plateau ~0.45 < 0.6


def test_report_is_self_contained_html(experiment):
    out = report.write_report(experiment, target=0.6, n_resamples=200)
    page = out.read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "http" not in page.replace("http-equiv", "")
    for part in ("Learning curves and labels needed", "Results with confidence intervals", "Paired comparisons",
                 "train size 160", "Cost of each point", "training examples", 'class="sig"', "80% interval",
                 "family weights", "The extrapolation", "Suggestion: measure n=", "Holm-corrected"):
        assert part in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (bash shell/setup.sh browser)")
def test_report_renders_in_a_real_headless_browser(experiment, tmp_path):
    """Chromium loads the file, decodes both figures and lays out the tables."""
    out = report.write_report(experiment, target=0.6, n_resamples=100)
    probe = tmp_path / "probe.html"
    # The report inside an iframe of a probe page that writes what rendered into the DOM.
    probe.write_text(f"""<!doctype html><html><body><iframe id=f src="{out.as_uri()}" width=1200 height=800></iframe>
<pre id=out>pending</pre><script>
document.getElementById('f').onload = () => {{
  const d = document.getElementById('f').contentDocument;
  const imgs = [...d.images].map(i => i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 100);
  const tables = [...d.querySelectorAll('table')].filter(t => t.getBoundingClientRect().height > 20).length;
  document.getElementById('out').textContent = 'IMAGES=' + imgs.join(',') + ' TABLES=' + tables;
}};</script></body></html>""")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    line = dom.split('<pre id="out">')[1].split("</pre>")[0]
    assert line.startswith("IMAGES=true,true"), line
    assert int(line.split("TABLES=")[1]) >= 4, line


def test_which_wins_names_every_series_and_when_a_model_passes_the_best_baseline(sandbox):
    """A baseline that leads at small sizes is named the winner there, and the
    report says from which size on a fine-tuned model is ahead of it."""
    from lorasweep.runspec import BASELINE_MODELS
    from lorasweep.score.baselines import DECODING as BASELINE
    from lorasweep.tasks.metrics import classification_metrics

    cfg = load_config(write_experiment(
        sandbox / "experiments" / "x.yaml", train_sizes=SIZES, seeds=[1],
        data={"source": "generate:people_relations", "generate_size": 600, "test_size": 300},
        models=[{"name": "good", "path": "p", "template": "gemma"}], eval={"baselines": ["tfidf"]}))
    prepare_data(cfg)
    test = load_test(cfg)
    refs, labels = [ex["label"] for ex in test], cfg.task.labels
    # the model: 0.2 right at n=20 and 0.95 at n=160; the baseline: 0.7 at every size
    for model, decoding, acc in (("good", "free", {0: 0.0, 20: 0.2, 40: 0.4, 80: 0.9, 160: 0.95}),
                                 (BASELINE_MODELS["tfidf"], BASELINE, {n: 0.7 for n in SIZES})):
        for size in acc:
            rng = random.Random(f"{model}-{size}")
            preds = [r if rng.random() < acc[size] else rng.choice(labels) for r in refs]
            run = RunSpec(cfg.name, model, size, None if size == 0 else 1)
            res = RunResult(run.run_id, cfg.name, model, size, run.seed, decoding, list(labels), references=refs,
                            raw=preds, predictions=preds, metrics=classification_metrics(preds, refs, labels))
            write_run_result(run, res, test)
    page = report.write_report(cfg, target=0.6, n_resamples=100).read_text()
    answers = page.split("<ul class='answers'>", 1)[1].split("</ul>", 1)[0]
    assert "20 examples: <b>baseline-tfidf-logreg</b> (a baseline)" in answers
    assert "160 examples: <b>good / free</b>" in answers
    assert "A fine-tuned model is ahead of the best baseline from 80 examples on (n=20: good / free" in answers


def test_a_model_ahead_of_the_baselines_only_at_small_sizes_is_said_so():
    import pandas as pd

    series = ["good / free", "baseline-tfidf-logreg / classifier"]
    rows = [(40, 0.67, 0.55), (80, 0.66, 0.68), (160, 0.67, 0.84)]
    df = pd.DataFrame([{"size": n, "series": s, "score": v} for n, a, b in rows for s, v in zip(series, (a, b), strict=True)])
    p = pd.DataFrame(0.01, index=series, columns=series)
    text = report._ahead_of_baselines(df, {n: (p, None) for n, _, _ in rows})
    assert text.startswith("A fine-tuned model is ahead of the best baseline at 40 examples, but not at the largest")
    behind = df.assign(score=[0.1, 0.9] * 3)
    assert report._ahead_of_baselines(behind, {n: (p, None) for n, _, _ in rows}).startswith(
        "No fine-tuned model is ahead of the best baseline at any size measured")
