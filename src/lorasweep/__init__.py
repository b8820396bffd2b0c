"""lorasweep: how much labelled data does LoRA fine-tuning need, and which base model wins."""
__version__ = "0.1.0"
