"""The criterion kinds a rubric can hold, with their fields, as the engine's loader reads them.

The studio cannot import engine.rewards (it would pull user code paths into the GUI process), so the
editor keeps this description of the TOML format: which fields each kind takes, which are required,
their defaults and help, and a starting template for "Add criterion". tests/studio/test_rubric_kinds.py
loads every template and every field through the real engine loader, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMMON_FIELDS = ("name", "kind", "weight", "description")


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # str | number | int | bool | list | table | choice | range
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    example: Any = None
    """A value that is valid for this field (tests load each one)."""


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    help: str
    fields: tuple[Field, ...]
    template: dict[str, Any]
    key_fields: tuple[str, ...]
    """Fields shown in the table's 'key parameters' column, in this order (then any others set)."""
    one_of: tuple[tuple[str, ...], ...] = ()
    """Groups of fields of which exactly one must be given (source | code)."""
    at_most_one: tuple[tuple[str, ...], ...] = ()
    """Groups of fields of which at most one may be given (tag | extract)."""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> set[str]:
        return {f.name for f in self.fields}


_EXTRACT = (
    Field(
        "tag", "str", "Look for the answer inside the last <tag>...</tag> (e.g. answer).", example="answer"
    ),
    Field(
        "extract",
        "str",
        "A regex whose group 1 (or whole match) holds the answer; the last match counts.",
        example=r"=\s*(\S+)",
    ),
)
_USER_CODE = (
    Field(
        "timeout_s",
        "number",
        "Seconds per call before the worker is killed and the call is an error.",
        30.0,
        example=10,
    ),
    Field(
        "memory_mb",
        "int",
        "Memory limit of the worker process, in MB (0 = none), where the OS enforces it.",
        0,
        example=2048,
    ),
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "python",
            "Python function",
            "Your own reward function, in any convention: TRL batch, open-r1 conversational, verifiers, "
            "OpenAI grade(sample, item).",
            (
                Field(
                    "source",
                    "str",
                    'A file beside the rubric and the function in it: "rewards.py:correct".',
                    example="rewards.py:correct",
                ),
                Field("code", "str", "Inline Python source (instead of a file); goes with 'function'."),
                Field("function", "str", "The function to call in the inline code.", example="reward"),
                Field(
                    "style",
                    "choice",
                    "The convention; detected from the signature when absent.",
                    choices=("trl", "conversational", "verifiers", "openai-python"),
                    example="trl",
                ),
                *_USER_CODE,
            ),
            {
                "kind": "python",
                "weight": 1.0,
                "code": "def reward(completions, **kwargs):\n"
                '    """One float per completion (TRL\'s convention)."""\n'
                "    return [1.0 if c.strip() else 0.0 for c in completions]\n",
                "function": "reward",
            },
            ("source", "function", "style", "timeout_s"),
            one_of=(("source", "code"),),
        ),
        Kind(
            "exact_match",
            "Exact match",
            "1 when the (extracted) answer equals the reference text, else 0.",
            (
                Field(
                    "reference",
                    "str",
                    "The expected text; {{item.COLUMN}} reads a dataset column.",
                    "{{item.answer}}",
                    example="{{item.answer}}",
                ),
                Field("case_sensitive", "bool", "Compare case.", True, example=False),
                Field("strip", "bool", "Collapse whitespace before comparing.", True, example=True),
                *_EXTRACT,
            ),
            {"kind": "exact_match", "weight": 1.0, "reference": "{{item.answer}}", "tag": "answer"},
            ("reference", "tag", "extract", "case_sensitive"),
            at_most_one=(("tag", "extract"),),
        ),
        Kind(
            "numeric_match",
            "Numeric match",
            "1 when the last number (or the one in a tag) equals the reference within a tolerance.",
            (
                Field(
                    "reference",
                    "str",
                    "The expected number; {{item.COLUMN}} reads a dataset column.",
                    "{{item.answer}}",
                    example="{{item.answer}}",
                ),
                Field("tolerance", "number", "Absolute tolerance.", 1e-6, example=0.01),
                Field("relative_tolerance", "number", "Relative tolerance.", 0.0, example=0.001),
                *_EXTRACT,
            ),
            {"kind": "numeric_match", "weight": 1.0, "reference": "{{item.answer}}", "tag": "answer"},
            ("reference", "tag", "extract", "tolerance"),
            at_most_one=(("tag", "extract"),),
        ),
        Kind(
            "regex",
            "Regex",
            "1 when the pattern matches the completion, else 0.",
            (
                Field(
                    "pattern",
                    "str",
                    "A Python regular expression; {{item.COLUMN}} inserts a column, escaped.",
                    required=True,
                    example=r"^<answer>-?\d+</answer>$",
                ),
                Field(
                    "mode",
                    "choice",
                    "search anywhere, match at the start, or fullmatch the whole text.",
                    "search",
                    choices=("search", "fullmatch", "match"),
                    example="fullmatch",
                ),
                Field(
                    "flags",
                    "list",
                    "Any of IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII.",
                    [],
                    example=["IGNORECASE"],
                ),
            ),
            {"kind": "regex", "weight": 1.0, "pattern": r"<answer>.*?</answer>"},
            ("pattern", "mode", "flags"),
        ),
        Kind(
            "contains",
            "Contains",
            "1 when the completion contains any (or all) of the texts.",
            (
                Field(
                    "text",
                    "list",
                    "A string or a list of strings to look for.",
                    required=True,
                    example=["because"],
                ),
                Field(
                    "match",
                    "choice",
                    "any or all of the texts.",
                    "any",
                    choices=("any", "all"),
                    example="all",
                ),
                Field("case_sensitive", "bool", "Compare case.", True, example=False),
            ),
            {"kind": "contains", "weight": 1.0, "text": ["{{item.answer}}"]},
            ("text", "match", "case_sensitive"),
        ),
        Kind(
            "json_valid",
            "JSON valid",
            "1 when the completion is valid JSON.",
            (Field("allow_fence", "bool", "Accept JSON inside a ```json fence.", True, example=False),),
            {"kind": "json_valid", "weight": 1.0},
            ("allow_fence",),
        ),
        Kind(
            "json_schema",
            "JSON schema",
            "1 when the completion is JSON that validates against the schema.",
            (
                Field(
                    "schema",
                    "table",
                    "The JSON schema, as a TOML table.",
                    example={"type": "object", "required": ["answer"]},
                ),
                Field("schema_file", "str", "A JSON schema file beside the rubric (instead of 'schema')."),
                Field("allow_fence", "bool", "Accept JSON inside a ```json fence.", True, example=False),
            ),
            {"kind": "json_schema", "weight": 1.0, "schema": {"type": "object", "required": ["answer"]}},
            ("schema", "schema_file", "allow_fence"),
            one_of=(("schema", "schema_file"),),
        ),
        Kind(
            "length",
            "Length",
            "1.0 at the target length, falling off by shape (soft_overlong: DAPO's overlong penalty).",
            (
                Field("target", "int", "The target length.", required=True, example=200),
                Field(
                    "unit",
                    "choice",
                    "chars, words or tokens.",
                    "chars",
                    choices=("chars", "words", "tokens"),
                    example="words",
                ),
                Field(
                    "shape",
                    "choice",
                    "How the score falls off around the target.",
                    "linear",
                    choices=("linear", "over", "under", "gaussian", "soft_overlong"),
                    example="gaussian",
                ),
                Field(
                    "tolerance",
                    "number",
                    "Distance from the target at which linear shapes reach 0.",
                    example=50,
                ),
                Field(
                    "buffer",
                    "number",
                    "soft_overlong: the length before the target where the penalty starts.",
                    example=20,
                ),
            ),
            {"kind": "length", "weight": 0.0, "target": 200},
            ("target", "unit", "shape", "tolerance"),
        ),
        Kind(
            "think_answer_format",
            "Think/answer format",
            "<think>...</think><answer>...</answer>: 1 or 0, or 0.25 per tag seen once (partial).",
            (
                Field("think_tag", "str", "The reasoning tag.", "think", example="reasoning"),
                Field("answer_tag", "str", "The answer tag.", "answer", example="answer"),
                Field("strict", "bool", "open-r1's strict layout with newlines.", False, example=True),
                Field(
                    "partial", "bool", "0.25 per tag seen exactly once instead of 1/0.", False, example=True
                ),
            ),
            {"kind": "think_answer_format", "weight": 0.2},
            ("think_tag", "answer_tag", "strict", "partial"),
        ),
        Kind(
            "repetition_penalty",
            "Repetition penalty",
            "open-r1's n-gram repetition penalty, between max_penalty and 0.",
            (
                Field("ngram_size", "int", "n of the n-grams.", 3, example=4),
                Field(
                    "max_penalty",
                    "number",
                    "The penalty when everything repeats (0 or negative).",
                    -1.0,
                    example=-0.5,
                ),
            ),
            {"kind": "repetition_penalty", "weight": 1.0},
            ("ngram_size", "max_penalty"),
        ),
        Kind(
            "openai_grader",
            "OpenAI grader",
            "An OpenAI RFT grader object as-is: string_check, text_similarity, python, multi, score_model.",
            (
                Field(
                    "grader",
                    "table",
                    "The grader object ({type, name, ...}).",
                    example={
                        "type": "string_check",
                        "name": "x",
                        "input": "{{sample.output_text}}",
                        "reference": "{{item.answer}}",
                        "operation": "eq",
                    },
                ),
                Field("grader_file", "str", "A JSON file holding the grader object (instead of 'grader')."),
                *_USER_CODE,
            ),
            {
                "kind": "openai_grader",
                "weight": 1.0,
                "grader": {
                    "type": "string_check",
                    "name": "match",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.answer}}",
                    "operation": "like",
                },
            },
            ("grader", "grader_file"),
            one_of=(("grader", "grader_file"),),
        ),
        Kind(
            "judge",
            "LLM judge",
            "An LLM scores the completion from a prompt template; over a local model folder or an "
            "OpenAI-compatible endpoint.",
            (
                Field(
                    "model",
                    "str",
                    "A local model folder (relative to the rubric) or the endpoint's model id.",
                    required=True,
                ),
                Field("base_url", "str", "An OpenAI-compatible endpoint, http://host:port/v1."),
                Field(
                    "api_key_env", "str", "The environment variable holding the key (never the key itself)."
                ),
                Field(
                    "prompt",
                    "str",
                    "The prompt template ({{prompt}}, {{completion}}, {{item.COLUMN}}, "
                    "{{min_score}}, {{max_score}}).",
                ),
                Field(
                    "instructions",
                    "str",
                    "What to judge, inserted into the default prompt.",
                    example="Is the answer correct?",
                ),
                Field("system", "str", "A system message template."),
                Field("range", "range", "[low, high] of the score.", [0, 10], example=[0, 5]),
                Field("normalize", "bool", "Map the score to [0, 1].", False, example=True),
                Field(
                    "score_regex",
                    "str",
                    "A regex with one group around the score in the reply.",
                    example=r"Score: (\d+)",
                ),
                Field("temperature", "number", "Sampling temperature of the judge.", 0.0, example=0.0),
                Field("max_tokens", "int", "Tokens the judge may write.", 256, example=64),
                Field("request_timeout_s", "number", "HTTP timeout per request.", 60.0, example=30),
                Field("concurrency", "int", "Requests in flight.", 4, example=2),
                Field("cache", "bool", "Cache scores by (prompt, completion, judge).", True, example=False),
                Field("device", "str", "Local model folders only: cpu, cuda, ...", "cpu"),
            ),
            {
                "kind": "judge",
                "weight": 1.0,
                "model": "gpt-4o-mini",
                "base_url": "https://api.openai.com/v1",
                "api_key_env": "OPENAI_API_KEY",
                "instructions": "Is the answer correct and clearly stated?",
                "range": [0, 10],
                "normalize": True,
            },
            ("model", "base_url", "range", "normalize"),
        ),
    )
}


def kind_names() -> list[str]:
    return list(KINDS)


def template(kind: str, name: str) -> dict[str, Any]:
    """A new criterion of `kind` named `name`, with the fields a user edits first."""
    base = KINDS[kind].template
    return {"name": name, **{k: (v.copy() if isinstance(v, dict | list) else v) for k, v in base.items()}}


def key_parameters(criterion: dict[str, Any]) -> dict[str, Any]:
    """The criterion's fields other than the common ones and inline code, key fields first."""
    kind = KINDS.get(str(criterion.get("kind")))
    order = list(kind.key_fields) if kind else []
    rest = [k for k in criterion if k not in order]
    return {
        k: criterion[k] for k in [*order, *rest] if k in criterion and k not in COMMON_FIELDS and k != "code"
    }
