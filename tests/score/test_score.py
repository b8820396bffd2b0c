"""The scoring client against a small stand-in OpenAI-compatible server
(the real vLLM server is exercised in tests/e2e)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import prepare_data
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.infra.paths import template_file
from lorasweep.plan import eval_runs
from lorasweep.score.score import score_runs
from lorasweep.tasks.metrics import INVALID

# The chat template of the stand-in model: the fake server reads the user's
# message back out of the rendered text between <u> and </u>.
TEMPLATE = "{{ bos_token }}<u>{{ messages[0]['content'] }}</u>{% if add_generation_prompt %}<a>{% endif %}"


class FakeServer:
    """Answers chat requests, and completions requests of prompts rendered with TEMPLATE
    (a list of prompts per request); `requests` holds one chat-shaped body per prompt."""

    def __init__(self, answer):
        self.requests = []
        self.http_requests = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if "prompt" in body:   # a completions request: one chat-shaped body per prompt
                    rest = {k: v for k, v in body.items() if k != "prompt"}
                    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                    assert all(p.startswith("<s><u>") and p.endswith("</u><a>") for p in prompts), prompts
                    bodies = [{**rest, "messages": [{"role": "user", "content": p[len("<s><u>"):-len("</u><a>")]}]}
                              for p in prompts]
                else:
                    bodies = [body]
                try:
                    texts = [answer(b) for b in bodies]
                except RuntimeError:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.http_requests += 1
                outer.requests += [(self.headers.get("Authorization"), b) for b in bodies]
                if "prompt" in body:
                    out = {"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
                           "choices": [{"index": i, "finish_reason": "stop", "text": t, "logprobs": None}
                                       for i, t in enumerate(texts)]}
                else:
                    out = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": texts[0]}}]}
                out["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                out = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(params=["completions", "chat"])
def cfg(sandbox, request):
    model = sandbox / "model"
    model.mkdir()
    (model / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    (model / "chat_template.jinja").write_text(TEMPLATE)
    c = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10],
                                     models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                     eval={"api": request.param, "batch_size": 7}))
    prepare_data(c)
    # What `check` / eval record from LLaMA-Factory's gemma template: answers end at <end_of_turn> (106).
    m = c.models[0]
    atomic_write_json(template_file(c.name, m.name), {"key": {"template": m.template, "model": m.path},
                                                      "prompt_ids": [2, 105], "answer_ids": [9, 106, 107],
                                                      "label_ids": [9]})
    return c


def _test(cfg):
    return json.loads((cfg.path.parent.parent / "data" / "x" / "test.json").read_text())


def test_scores_every_example_with_stop_ids_and_key(cfg, monkeypatch):
    # A proxy in the environment must not be used for 127.0.0.1.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    test = _test(cfg)
    gold = {ex["text"]: ex["label"] for ex in test}

    def answer(body):
        text = body["messages"][0]["content"]
        hit = next(lab for t, lab in gold.items() if t in text)
        # Adapter answers right with trailing noise; the base model rambles.
        return hit + "。" if body["model"] != "m1" else "我不知道"

    srv = FakeServer(answer)
    try:
        runs = eval_runs(cfg)
        res = score_runs(cfg, runs, test, srv.url, "secret")
    finally:
        srv.close()
    assert len(srv.requests) == 2 * len(test)
    if cfg.eval.api == "completions":   # 7 prompts a request, the template's own <s> not doubled
        assert srv.http_requests == 2 * -(-len(test) // 7)
        assert all(b["add_special_tokens"] is False for _, b in srv.requests)
    else:
        assert srv.http_requests == 2 * len(test)
    auth, body = srv.requests[0]
    assert auth == "Bearer secret"
    assert body["temperature"] == 0 and body["stop_token_ids"] == [106]
    assert "structured_outputs" not in body
    assert body.get("max_completion_tokens", body.get("max_tokens")) == max(len(x) for x in cfg.task.labels) + 4
    base, tuned = res[("m1__n0__base", "free")], res[("m1__n10__seed1", "free")]
    assert base.metrics["invalid"] == len(test) and set(base.predictions) == {INVALID}
    assert tuned.metrics["accuracy"] == 1.0 and tuned.metrics["invalid"] == 0
    assert all(r.is_scored("free") for r in runs)
    lines = (runs[1].folder() / "predictions.free.jsonl").read_text().splitlines()
    assert len(lines) == len(test) and json.loads(lines[0])["raw"].endswith("。")


def test_both_decodings_in_one_pass(cfg):
    cfg.eval.decoding = ["free", "constrained"]
    srv = FakeServer(lambda body: body["structured_outputs"]["choice"][0] if "structured_outputs" in body else "??")
    try:
        res = score_runs(cfg, eval_runs(cfg)[:1], _test(cfg)[:5], srv.url, "k")
    finally:
        srv.close()
    constrained = [b for _, b in srv.requests if "structured_outputs" in b]
    assert len(constrained) == 5 and len(srv.requests) == 10
    assert constrained[0]["structured_outputs"] == {"choice": cfg.task.labels}
    assert res[("m1__n0__base", "constrained")].metrics["invalid"] == 0
    assert res[("m1__n0__base", "free")].metrics["invalid"] == 5
    folder = eval_runs(cfg)[0].folder()
    assert (folder / "metrics.free.json").is_file() and (folder / "metrics.constrained.json").is_file()
    # Scored modes are skipped next time.
    assert score_runs(cfg, eval_runs(cfg)[:1], _test(cfg)[:5], srv.url, "k") == {}


def test_scoring_resumes_where_it_stopped(cfg):
    """A server that fails mid-scoring: answers received are kept; the rerun asks only for the rest,
    and the result equals an uninterrupted run."""
    import threading

    test = _test(cfg)[:12]
    run = eval_runs(cfg)[1]
    lock = threading.Lock()
    served = {"n": 0}

    def answer(body):
        return body["messages"][0]["content"][-6:]   # deterministic per prompt

    def flaky_answer(body):
        with lock:
            served["n"] += 1
            if served["n"] > 5:
                raise RuntimeError("server died")
        return answer(body)

    srv = FakeServer(flaky_answer)
    cfg.eval.concurrency = 1
    cfg.eval.batch_size = 5   # completions: the first request's 5 answers come back, the second's do not
    try:
        with pytest.raises(Exception):   # noqa: B017 - whatever the client raises when the server dies
            score_runs(cfg, [run], test, srv.url, "k")
    finally:
        srv.close()
    partial = (run.folder() / "answers.free.partial.jsonl").read_text().splitlines()
    assert len(partial) == 5 and not run.is_scored("free")
    srv2 = FakeServer(answer)
    try:
        res = score_runs(cfg, [run], test, srv2.url, "k")
    finally:
        srv2.close()
    assert len(srv2.requests) == len(test) - 5
    assert res[(run.run_id, "free")].raw == [render(cfg, ex)[-6:] for ex in test]
    assert not (run.folder() / "answers.free.partial.jsonl").exists()
    lines = (run.folder() / "predictions.free.jsonl").read_text().splitlines()
    assert [json.loads(x)["i"] for x in lines] == list(range(len(test)))


def render(cfg, ex):
    from lorasweep.tasks.prompts import render_prompt
    return render_prompt(cfg.task, ex)


def test_auto_concurrency_follows_the_servers_kv_cache(sandbox, monkeypatch):
    import lorasweep.infra.tools as tools
    from lorasweep.score.score import MAX_AUTO_CONCURRENCY, choose_concurrency, compute_cap, max_answer_tokens

    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: True)

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    assert cfg.eval.concurrency == "auto"
    per = 100 + 32 + max_answer_tokens(cfg)
    assert choose_concurrency(cfg, 1000, 100, kv_cache_tokens=10 * per) == 10      # what the cache holds
    assert choose_concurrency(cfg, 7, 100, kv_cache_tokens=10 * per) == 7          # never more than asked
    assert choose_concurrency(cfg, 5000, 100, kv_cache_tokens=10 ** 7) == MAX_AUTO_CONCURRENCY
    assert choose_concurrency(cfg, 1000, 100, kv_cache_tokens=None) == 16          # capacity unknown
    assert choose_concurrency(cfg, 1000, 10 ** 6, kv_cache_tokens=10 * per) == 1   # a prompt larger than the cache
    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: False)   # a CPU: compute, not memory, limits
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert compute_cap() == 32 and choose_concurrency(cfg, 5000, 100, kv_cache_tokens=10 ** 7) == 32
    fixed = load_config(cfg.path, set_args=["eval.concurrency=3"])
    assert choose_concurrency(fixed, 1000, 100, kv_cache_tokens=10 ** 7) == 3


def test_client_processes_and_their_share_of_concurrency(sandbox):
    from lorasweep.score.score import choose_concurrency, client_processes

    c = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    assert client_processes(c, 8, on_gpu=False) == 1
    assert client_processes(c, 8, on_gpu=True) == 4 and client_processes(c, 2, on_gpu=True) == 2
    c.eval.client_processes = 3
    assert client_processes(c, 8, on_gpu=False) == 3 and client_processes(c, 1, on_gpu=True) == 1
    c.eval.concurrency = 64
    assert choose_concurrency(c, 1000, 100, None, share=4) == 16
    assert choose_concurrency(c, 10, 100, None, share=4) == 10
