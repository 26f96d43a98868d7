"""Turning prompts and completions of either format (standard strings, conversational message lists) into
the text a check reads, and back into the message lists conversational reward code expects.

Stdlib only: reward workers import this module.
"""

from __future__ import annotations

import json
from typing import Any


def message_content(message: Any) -> str:
    """The text of one chat message; content may be a string or a list of typed parts."""
    if not isinstance(message, dict):
        return str(message)
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(content)


def completion_text(completion: Any) -> str:
    """What a completion says: the string itself, or its assistant messages joined by newlines."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        messages = [
            m for m in completion if not isinstance(m, dict) or m.get("role", "assistant") == "assistant"
        ]
        return "\n".join(message_content(m) for m in messages or completion)
    if completion is None:
        return ""
    return str(completion)


def prompt_text(prompt: Any) -> str:
    """A prompt as text: the string itself, the single message's content, or 'role: content' lines."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        if len(prompt) == 1:
            return message_content(prompt[0])
        return "\n".join(
            f"{m.get('role', 'user') if isinstance(m, dict) else 'user'}: {message_content(m)}"
            for m in prompt
        )
    if prompt is None:
        return ""
    return str(prompt)


def last_user_text(prompt: Any) -> str:
    """The question itself: the last user message of a conversation, or the whole string prompt."""
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_content(message)
    return prompt_text(prompt)


def as_completion_messages(completion: Any) -> list[dict[str, Any]]:
    """A completion in TRL's conversational shape: [{"role": "assistant", "content": text}]."""
    if isinstance(completion, list):
        return completion
    return [{"role": "assistant", "content": completion_text(completion)}]


def as_prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    if isinstance(prompt, list):
        return prompt
    return [{"role": "user", "content": prompt_text(prompt)}]


def parse_json_output(text: str) -> Any:
    """`sample.output_json` for OpenAI graders: the completion parsed as JSON, or None.

    A fenced ```json block is accepted too, because models write one more often than not.
    """
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        if stripped.lower().startswith("json"):
            stripped = stripped[4:]
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None
