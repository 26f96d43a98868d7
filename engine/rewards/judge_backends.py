"""Where a judge's answer comes from: an OpenAI-compatible chat completions endpoint (urllib, no SDK), or
a local transformers model folder (imported lazily: only a rubric with a local judge pays for torch)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from engine.rewards.secret_env import scrub

# transformers builds a model's modules under a torch device context ("meta") while it loads; that mode is
# process-wide, so two judges loading at once (judges are asked concurrently) can leave one model's tied
# weights on the meta device ("Cannot copy out of meta tensor"). One load at a time.
_LOAD_LOCK = threading.Lock()

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class JudgeCallError(RuntimeError):
    """A judge request failed. The message never holds a secret: endpoints echo keys in their errors
    (a 401 body quoting the key it refused), so every message is scrubbed as it is made."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class JudgeBackend:
    batched = False
    """True when the backend answers a whole batch in one call (a local model generating in batches)."""

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
        return self.complete_many([messages], sampling)[0]

    def complete_many(self, batch: list[list[dict[str, str]]], sampling: dict[str, Any]) -> list[str]:
        return [self.complete(m, sampling) for m in batch]

    def close(self) -> None:
        pass


class HttpBackend(JudgeBackend):
    """POST {base_url}/chat/completions, OpenAI's wire format (vLLM, llama.cpp, Ollama, OpenAI...)."""

    def __init__(
        self, base_url: str, model: str, api_key_env: str | None, timeout_s: float, retries: int = 2
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.retries = retries

    def identity(self) -> dict[str, Any]:
        return {"kind": "http", "url": self.url, "model": self.model}

    def key_missing(self) -> bool:
        return bool(self.api_key_env) and not os.environ.get(self.api_key_env or "")

    def complete(self, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise JudgeCallError(f"the environment variable {self.api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps({"model": self.model, "messages": messages, **sampling}).encode()
        delay = 0.5
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:200]
                if exc.code in RETRY_STATUS and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise JudgeCallError(f"{self.url} answered HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                reason = getattr(exc, "reason", exc)
                raise JudgeCallError(f"cannot reach {self.url}: {reason}") from None
            except ValueError as exc:
                raise JudgeCallError(f"{self.url} did not answer JSON: {exc}") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeCallError(
                f"{self.url} answered without choices[0].message.content: {str(payload)[:200]}"
            ) from None
        return content if isinstance(content, str) else json.dumps(content)


class LocalBackend(JudgeBackend):
    """A causal LM folder loaded with transformers on first use, generating for a batch at a time."""

    batched = True
    CHUNK = 8

    def __init__(self, path: str, device: str = "cpu") -> None:
        self.path = path
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"kind": "local", "path": self.path}

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with _LOAD_LOCK:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model: Any = AutoModelForCausalLM.from_pretrained(self.path)
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"  # keep the end of a long prompt: the answer and the instructions
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = model.to(self.device)
        model.eval()
        self._tokenizer, self._model = tokenizer, model

    def _text(self, messages: list[dict[str, str]]) -> str:
        if getattr(self._tokenizer, "chat_template", None):
            return str(
                self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def complete_many(self, batch: list[list[dict[str, str]]], sampling: dict[str, Any]) -> list[str]:
        import torch

        with self._lock:
            self._load()
            tokenizer, model = self._tokenizer, self._model
            max_new = int(sampling.get("max_tokens", 256))
            limit = getattr(model.config, "max_position_embeddings", None) or 4096
            max_new = max(1, min(max_new, limit // 2))
            temperature = float(sampling.get("temperature", 0.0))
            answers: list[str] = []
            for start in range(0, len(batch), self.CHUNK):
                texts = [self._text(m) for m in batch[start : start + self.CHUNK]]
                encoded = tokenizer(
                    texts, return_tensors="pt", padding=True, truncation=True, max_length=limit - max_new
                ).to(self.device)
                options: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id}
                if temperature > 0:
                    options.update(do_sample=True, temperature=temperature)
                else:
                    options.update(do_sample=False)
                with torch.inference_mode():
                    output = model.generate(**encoded, **options)
                new_tokens = output[:, encoded["input_ids"].shape[1] :]
                answers += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            return answers

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
