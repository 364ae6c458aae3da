"""A chat as the model's prompt string: its chat template, with the assistant turn opened.

Both backends render with it (the in-process one here, the remote one for the server's completions
endpoint), and LoRA training through ax/client/prompting.py, so every path sees the same prompt.
"""

from __future__ import annotations

from typing import Any


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt string for a chat: the model's chat template with the assistant turn opened."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Base models without a template get a plain transcript that still ends on the assistant turn.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nassistant: "
