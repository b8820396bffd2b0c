"""LLaMA-Factory's side of the train/serve parity check, run in the training
environment: the token ids its template builds for a prompt and its answer.

    <training-env python> parity_encode.py <model dir> <template>   < {"prompt": ..., "answer": ...}

Prints one JSON line: prompt_ids, answer_ids (the answer as trained, with the
turn's end), label_ids (the answer's own tokens), and chat_template_prompt_ids:
the prompt as the chat template LLaMA-Factory leaves on the tokenizer (the one
it saves with the adapters, which the server is given) renders it;
added_tokens: tokens the template added to the tokenizer; embedding_rows:
the checkpoint's vocab_size.
"""
from __future__ import annotations

import json
import sys


def encode(model_path: str, template: str, prompt: str, answer: str, trust_remote_code: bool = False) -> dict:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    own_vocab = len(tok)
    tpl = get_template_and_fix_tokenizer(tok, DataArguments(template=template))
    # A template of another model family adds its own turn tokens: LLaMA-Factory
    # then resizes the embeddings and saves them with every adapter.
    added = tok.convert_ids_to_tokens(list(range(own_vocab, len(tok))))
    prompt_ids, answer_ids = tpl.encode_oneturn(
        tok, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    label_ids = tok.encode(answer, add_special_tokens=False)
    rendered = None
    if tok.chat_template:
        out = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      tokenize=True)
        rendered = list(out["input_ids"] if hasattr(out, "keys") else out)
    return {"prompt_ids": prompt_ids, "answer_ids": answer_ids, "label_ids": label_ids,
            "chat_template_prompt_ids": rendered, "added_tokens": added, "embedding_rows": _embedding_rows(model_path)}


def _embedding_rows(model_path: str) -> int | None:
    """The checkpoint's vocab_size: the rows of its embedding matrix (a token id at or above it has none)."""
    try:
        with open(f"{model_path}/config.json", encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    size = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    return int(size) if isinstance(size, int) else None


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--trust-remote-code"]
    if len(args) != 2:
        sys.exit("usage: parity_encode.py <model dir> <template> [--trust-remote-code]  (JSON prompt/answer on stdin)")
    data = json.loads(sys.stdin.read())
    print(json.dumps(encode(args[0], args[1], data["prompt"], data["answer"], "--trust-remote-code" in sys.argv)))
