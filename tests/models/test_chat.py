"""Client-side rendering of the chat template (the real templates are proven
token for token against the live server by the e2e parity checks)."""
import json

import pytest

from lorasweep.models.chat import TemplateError, find_template, render_user_turn, special_tokens

# The shape of Qwen2.5's template: a default system turn when none is given.
QWEN_LIKE = (
    "{%- for message in messages %}\n{%- if loop.first and message['role'] != 'system' %}\n"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
    "{%- endfor %}\n{%- if add_generation_prompt %}\n{{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n")
GEMMA_LIKE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>user\n{{ m['content'] | trim }}<end_of_turn>\n"
              "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def test_renders_like_the_servers_chat_endpoint():
    assert render_user_turn(QWEN_LIKE, {}, "关系：") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n关系：<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert render_user_turn(GEMMA_LIKE, {"bos_token": "<bos>"}, " 句子 ") == (
        "<bos><start_of_turn>user\n句子<end_of_turn>\n<start_of_turn>model\n")


def test_template_errors_are_named():
    with pytest.raises(TemplateError, match="refused"):
        render_user_turn("{{ raise_exception('only system and user roles') }}", {}, "x")
    with pytest.raises(TemplateError, match="does not parse"):
        render_user_turn("{% for %}", {}, "x")


def test_where_the_template_and_tokens_come_from(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>", "unk_token": None,
         "chat_template": "from-config", "model_max_length": 5}))
    assert special_tokens(model) == {"bos_token": "<s>", "eos_token": "</s>"}
    assert find_template(None, model) == "from-config"
    (model / "chat_template.jinja").write_text("from-file")
    assert find_template(None, model) == "from-file"
    served = tmp_path / "adapter.jinja"
    served.write_text("served")
    assert find_template(served, model) == "served"
    assert find_template(None, tmp_path / "none") is None
