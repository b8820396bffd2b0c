"""The chat template, rendered on the client.

Scoring sends prompts to the server's completions endpoint in batches (many
prompts per HTTP request), so the client renders each user message with the
same chat template the server was given: the one LLaMA-Factory saved with
the adapters (or the model's own). The server then tokenizes the text with
add_special_tokens=false, exactly as its chat endpoint tokenizes the text it
renders itself, so both paths feed the model the same token ids; the parity
check asks the live server to prove it (parity.served_completion_ids).

Rendering follows transformers' rules for chat templates: a sandboxed Jinja
environment with trim_blocks and lstrip_blocks, raise_exception, the tojson
filter, and the tokenizer's special tokens as variables.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from ..runspec import CHAT_TEMPLATE as TEMPLATE_FILE  # transformers' and LLaMA-Factory's file name


class TemplateError(RuntimeError):
    pass


def adapters_template(runs) -> Path | None:
    """The chat template a model's server is given: the one LLaMA-Factory saved
    with its trained adapters (every adapter of a model was trained with the
    same template), or None before any is trained."""
    return next((r.chat_template for r in runs if not r.is_base and r.is_trained() and r.chat_template.is_file()),
                None)


def find_template(served: Path | None, model_dir: Path) -> str | None:
    """The chat template text the server uses: the file it was given, else the
    model folder's chat_template.jinja, else tokenizer_config.json's."""
    if served is not None and served.is_file():
        return served.read_text(encoding="utf-8")
    if (model_dir / TEMPLATE_FILE).is_file():
        return (model_dir / TEMPLATE_FILE).read_text(encoding="utf-8")
    tpl = _tokenizer_config(model_dir).get("chat_template")
    return tpl if isinstance(tpl, str) else None


def special_tokens(model_dir: Path) -> dict[str, str]:
    """bos_token, eos_token, ... as strings, from the model's tokenizer_config.json."""
    out = {}
    for key, value in _tokenizer_config(model_dir).items():
        if key.endswith("_token"):
            if isinstance(value, dict):     # {"content": "<bos>", ...} in older files
                value = value.get("content")
            if isinstance(value, str):
                out[key] = value
    return out


def _tokenizer_config(model_dir: Path) -> dict:
    try:
        return json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2 import TemplateError as JinjaError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(f"the chat template refused the conversation: {message}")

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except JinjaError as e:
        raise TemplateError(f"the chat template does not parse: {e}") from e


def render_user_turn(template: str, tokens: dict[str, str], user_message: str) -> str:
    """The text of one user turn followed by the assistant's opening, as the
    server's chat endpoint renders it (add_generation_prompt=true)."""
    return _compile(template).render(messages=[{"role": "user", "content": user_message}],
                                     add_generation_prompt=True, tools=None, documents=None, **tokens)
