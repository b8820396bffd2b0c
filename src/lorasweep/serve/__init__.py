"""The vLLM OpenAI servers (serve.py)."""
