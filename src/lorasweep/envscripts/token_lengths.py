"""Token lengths of an experiment's examples as LLaMA-Factory builds them for
training, run in the training environment (its template, its tokenizer, its
truncation rule).

    <training-env python> token_lengths.py <model dir> <template> <cutoff_len>
        < {"train": [[prompt, answer], ...], "test": [prompt, ...]}

Prints one JSON line: train: [[prompt_len, answer_len, kept_prompt, kept_answer], ...]
(kept_*: what is left after LLaMA-Factory cuts the pair to cutoff_len), test:
[prompt_len, ...] (the prompt as the server receives it: the same ids, which
the parity check proves).
"""
from __future__ import annotations

import json
import sys


def lengths(model_path: str, template: str, cutoff_len: int, train: list, test: list,
            trust_remote_code: bool = False) -> dict:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.processor.processor_utils import infer_seqlen
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    tpl = get_template_and_fix_tokenizer(tok, DataArguments(template=template))

    def encode(prompt: str, answer: str) -> tuple[int, int]:
        p, a = tpl.encode_oneturn(tok, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
        return len(p), len(a)

    # LLaMA-Factory's supervised processor keeps one position for the eos of
    # templates with efficient_eos, then cuts the pair to what is left.
    budget = cutoff_len - (1 if tpl.efficient_eos else 0)
    out_train = []
    for prompt, answer in train:
        p, a = encode(prompt, answer)
        kept_p, kept_a = infer_seqlen(p, a, budget)
        out_train.append([p, a, kept_p, kept_a])
    return {"train": out_train, "test": [encode(prompt, "")[0] for prompt in test]}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--trust-remote-code"]
    if len(args) != 3:
        sys.exit("usage: token_lengths.py <model dir> <template> <cutoff_len> [--trust-remote-code]  "
                 "(JSON train/test on stdin)")
    data = json.loads(sys.stdin.read())
    print(json.dumps(lengths(args[0], args[1], int(args[2]), data["train"], data["test"],
                             "--trust-remote-code" in sys.argv)))
