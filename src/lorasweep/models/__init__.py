"""Base models and their chat templates: the embedded models and path resolution (embedded.py), the template
rendered on the client (chat.py), train/serve parity and the answer-end token (parity.py)."""
