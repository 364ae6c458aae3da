"""The LM client: DSPy programs talk to a local (LoRA-adapted) model or a remote server through it."""
