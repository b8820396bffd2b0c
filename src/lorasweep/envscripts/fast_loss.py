"""`llamafactory-cli train`, with the output layer computed only where the loss needs it.

    <training-env python> fast_loss.py train <run>/train.yaml

This file runs in the training environment (LLaMA-Factory, transformers,
torch; lorasweep is not installed there), so it imports nothing from lorasweep.

Why: a causal LM computes logits = lm_head(hidden) at every position of every
row, then the loss keeps only the positions whose next token is labelled (the
answer; the prompt is masked with -100). For a classification answer of a few
tokens that is nearly all waste: Gemma-3-270M's output layer (262,144 x 640)
is 63% of its forward FLOPs, and a batch of 8 rows x 110 positions carries
about 8 x 5 = 40 labelled tokens, so 840 of 880 rows of logits (each 262,144
floats, plus their softmax and gradient) are computed for nothing.

How: LLaMA-Factory's SFT trainer computes the loss through transformers'
Trainer.compute_loss -> model(**inputs) -> lm_head(hidden[:, positions]) ->
loss_function(logits, labels, shift_labels=...). Around each training step
this file
  1. marks, per row, the positions whose next token is labelled,
  2. gathers exactly those hidden states before the output layer (a forward
     pre-hook on lm_head: [B, T, H] -> [1, N, H], N = labelled tokens),
  3. passes their targets as `shift_labels` ([1, N]), which transformers'
     ForCausalLMLoss takes instead of shifting `labels` itself.
Everything else is untouched: the same cross-entropy (sum / num_items_in_batch
across gradient accumulation, or the mean), Gemma's logit soft-capping (it is
elementwise, applied by the model between the two), the same optimiser and
schedule. Only the order of a sum changes, so losses agree to float rounding
(tests/e2e/test_fast_loss.py).

On a CPU it also keeps the activations of the forward pass for the backward
pass instead of recomputing them (LLaMA-Factory turns gradient checkpointing on
by default to save GPU memory; on a CPU the model's activations are a few GB of
RAM at most for the models trained there, and recomputing them costs a whole
extra forward pass through the body: measured 1.35x on the demo). The
arithmetic is the same, so is the loss. A `disable_gradient_checkpointing` key
in the run's YAML (set through train.args) is respected; GPUs keep
LLaMA-Factory's choice.

It patches only what it was written against: LLaMA-Factory's
CustomSeq2SeqTrainer.compute_loss(self, model, inputs, *args, **kwargs),
transformers' ForCausalLMLoss with a `shift_labels` parameter, and, per model
class, a forward whose source applies `self.lm_head(hidden_states[:,
slice_indices, :])` and then `self.loss_function(` with only elementwise work
between them. Anything else (another version, a custom loss such as DFT/ASFT,
label smoothing, evaluation steps, a distributed run started through torchrun)
runs LLaMA-Factory unchanged. One line on stderr (the run's train.log) says
which: "lorasweep: fast loss on ..." or "lorasweep: fast loss off: <why>".
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping

ON = "lorasweep: fast loss on"
OFF = "lorasweep: fast loss off"
IGNORE_INDEX = -100   # LLaMA-Factory's label for positions without loss (prompt, padding)

LM_HEAD_CALL = "self.lm_head(hidden_states[:, slice_indices, :])"
LOSS_CALL = "self.loss_function("
RESHAPES = ("logits[", ".view(", ".reshape(", ".permute(", ".transpose(", "torch.cat(", "torch.stack(")
TRAINER_PARAMETERS = ["self", "model", "inputs", "args", "kwargs"]
PREPARE_PARAMETERS = ["model", "model_args"]
CHECKPOINTING_KEY = "disable_gradient_checkpointing"

_mask = None          # [B, T] bool while a training step's forward runs, else None
_hooked: set = set()  # ids of the lm_head modules that carry the pre-hook
_verdicts: dict = {}  # model class -> None (fits) or why it does not
_said: set = set()    # the lines already printed
_extras: list = []    # what else is on, for the one line


def _say(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr, flush=True)


def _select_labelled(module, args):
    """lm_head's forward pre-hook: keep the hidden states whose next token is labelled."""
    if _mask is None:
        return None
    hidden = args[0]
    if hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(_mask.shape):
        raise _Mismatch(f"lm_head got hidden states of shape {tuple(hidden.shape)} for labels "
                        f"{tuple(_mask.shape)}")
    return (hidden[_mask].unsqueeze(0), *args[1:])


class _Mismatch(RuntimeError):
    pass


def causal_lm(model):
    """The transformers causal LM inside the (PEFT / accelerate) wrappers."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


def model_verdict(lm) -> str | None:
    """None when this model class computes logits and loss the way this file relies on; else why not."""
    cls = type(lm)
    if cls not in _verdicts:
        _verdicts[cls] = _judge(lm)
    return _verdicts[cls]


def _judge(lm) -> str | None:
    from transformers.loss import loss_utils

    name = type(lm).__name__
    try:
        source = inspect.getsource(type(lm).forward)
    except (OSError, TypeError):
        return f"{name}.forward has no readable source"
    if LM_HEAD_CALL not in source or LOSS_CALL not in source:
        return f"{name}.forward does not compute logits and loss the way fast_loss.py expects"
    between = source.split(LM_HEAD_CALL, 1)[1].split(LOSS_CALL, 1)[0]
    if any(r in between for r in RESHAPES):
        return f"{name}.forward reshapes the logits before its loss"
    if getattr(lm, "loss_function", None) is not loss_utils.ForCausalLMLoss:
        return f"{name} does not use transformers' ForCausalLMLoss"
    if not hasattr(lm, "lm_head"):
        return f"{name} has no lm_head"
    return None


def labelled_positions(labels):
    """mask[b, t]: the token after position t is labelled; and those tokens, as [1, N] targets."""
    import torch

    following = labels[:, 1:] != IGNORE_INDEX
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = following
    return mask, labels[:, 1:][following].unsqueeze(0)


def _why_not(trainer, model, inputs, args, kwargs) -> str | None:
    """None when this step can take the fast path; else why it runs unchanged."""
    import torch

    if args or kwargs.get("return_outputs"):
        return "outputs requested (an evaluation step)"
    if not (model.training and torch.is_grad_enabled()):
        return "not a training step"
    if not isinstance(inputs, Mapping) or "labels" not in inputs or "shift_labels" in inputs:
        return "no labels in the batch"
    if getattr(trainer, "compute_loss_func", None) is not None or getattr(trainer, "label_smoother", None):
        return "a custom loss or label smoothing is configured"
    if getattr(getattr(trainer, "finetuning_args", None), "use_asft_loss", False):
        return "the ASFT loss is configured"
    return model_verdict(causal_lm(model))


def install() -> str | None:
    """Patch LLaMA-Factory's SFT trainer; None when done, else why not."""
    try:
        from llamafactory.train.sft import trainer as sft
        from transformers.loss import loss_utils
    except ImportError as e:
        return f"cannot import LLaMA-Factory's SFT trainer ({e})"
    cls = sft.CustomSeq2SeqTrainer
    original = cls.compute_loss
    if list(inspect.signature(original).parameters) != TRAINER_PARAMETERS:
        return "CustomSeq2SeqTrainer.compute_loss is not the one fast_loss.py was written against"
    loss_params = inspect.signature(loss_utils.ForCausalLMLoss).parameters
    if "shift_labels" not in loss_params or "num_items_in_batch" not in loss_params:
        return "transformers' ForCausalLMLoss takes no shift_labels"

    def compute_loss(self, model, inputs, *args, **kwargs):
        global _mask
        why = _why_not(self, model, inputs, args, kwargs)
        if why is not None:
            if model.training:
                _say(f"{OFF}: {why}; LLaMA-Factory's own loss")
            return original(self, model, inputs, *args, **kwargs)
        lm = causal_lm(model)
        if id(lm.lm_head) not in _hooked:
            lm.lm_head.register_forward_pre_hook(_select_labelled)
            _hooked.add(id(lm.lm_head))
        mask, targets = labelled_positions(inputs["labels"])
        if ON not in _said:   # once, with the first batch's numbers
            _said.add(ON)
            print(f"{ON} ({type(lm).__name__}): logits at the {targets.shape[1]} labelled of {mask.numel()} "
                  f"positions of the first batch{''.join('; ' + e for e in _extras)}", file=sys.stderr, flush=True)
        _mask = mask
        try:
            return original(self, model, {**inputs, "shift_labels": targets}, *args, **kwargs)
        except _Mismatch as e:   # this model does not fit after all: its own loss, from now on
            _verdicts[type(lm)] = str(e)
            _mask = None
            _say(f"{OFF}: {e}; LLaMA-Factory's own loss")
            return original(self, model, inputs, *args, **kwargs)
        finally:
            _mask = None

    cls.compute_loss = compute_loss
    return None


def keep_activations_on_cpu(train_yaml: str | None) -> None:
    """On a CPU, and unless the run's YAML sets it: no gradient checkpointing."""
    try:
        import torch
        import yaml
        from llamafactory.model import patcher
    except ImportError:
        return
    if torch.cuda.is_available() or not hasattr(patcher, "prepare_model_for_training"):
        return
    if train_yaml is not None:
        try:
            with open(train_yaml, encoding="utf-8") as f:
                if CHECKPOINTING_KEY in (yaml.safe_load(f) or {}):
                    return   # the user's choice
        except (OSError, yaml.YAMLError):
            return
    original = patcher.prepare_model_for_training
    if list(inspect.signature(original).parameters) != PREPARE_PARAMETERS:
        return

    def prepare_model_for_training(model, model_args):
        if hasattr(model_args, CHECKPOINTING_KEY):
            setattr(model_args, CHECKPOINTING_KEY, True)
            if "activations kept on the CPU (no gradient checkpointing)" not in _extras:
                _extras.append("activations kept on the CPU (no gradient checkpointing)")
        return original(model, model_args)

    patcher.prepare_model_for_training = prepare_model_for_training


def distributed() -> bool:
    """Whether llamafactory-cli will hand the run to torchrun (its workers would not carry the patch)."""
    try:
        from llamafactory.extras.misc import get_device_count, is_env_enabled
    except ImportError:
        return False
    return is_env_enabled("FORCE_TORCHRUN") or get_device_count() > 1


def main(argv: list[str]) -> int:
    if distributed():
        _say(f"{OFF}: a distributed run (torchrun); LLaMA-Factory runs unchanged")
    else:
        why = install()
        if why is not None:
            _say(f"{OFF}: {why}; LLaMA-Factory runs unchanged")
        else:
            keep_activations_on_cpu(argv[1] if len(argv) > 1 and argv[0] == "train" else None)
    from llamafactory.cli import main as llamafactory_main

    sys.argv = ["llamafactory-cli", *argv]
    llamafactory_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
