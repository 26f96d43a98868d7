"""The rubric TOML format, described once: every criterion kind, its fields, and the checks that need
no code to run.

The engine's loader (engine/rewards) reads each criterion through this description, and the studio's
editor builds its "Add criterion" menu, kind choices, field help and validation-as-you-type from it.
A built-in check added here (with its class in engine/rewards/builtins.py) appears in the editor with
no change to the studio.

What lives here: field names, types, defaults, help, allowed values, bounds, and rules between fields
(exactly one of source | code). What does not: checks that need the engine (a regex compiles, a file
exists, a function fits a convention), which stay with the criterion that runs. Standard library only.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

from engine.contract.reward_signatures import STYLE_ALIASES, STYLES

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A criterion name: it becomes rewards/<name>/mean and a variable of the total expression."""
RESERVED_NAMES = ("total", "reward")
TOP_LEVEL = ("name", "description", "total", "criteria")

FIELD_TYPES = ("str", "number", "int", "bool", "choice", "strings", "table", "range")
"""str: a string; number: int or float; int: a whole number; bool: true/false; choice: one of `choices`;
strings: a string or a list of strings; table: a TOML table; range: [low, high] numbers, low < high."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    help: str
    default: Any = None
    """The value when the field is absent (None: absent means "not set"; the help says what follows)."""
    required: bool = False
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Other accepted spellings of a choice (style = "open-r1" for "conversational")."""
    minimum: float | None = None
    above: float | None = None
    """An exclusive lower bound: the value must be greater."""
    maximum: float | None = None
    pattern: str | None = None
    pattern_hint: str = ""
    """What a string matching `pattern` looks like, for the message when it does not."""
    example: Any = None
    """A valid value other than the default (the editor's tests load every one through the engine)."""


@dataclass(frozen=True)
class Rule:
    """A constraint between fields of one criterion.

    exactly_one: one of `fields` must be given, not more; at_most_one: not two of them;
    needs: when fields[0] is given, fields[1:] must be too."""

    kind: str
    fields: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    help: str
    fields: tuple[Field, ...]
    template: dict[str, Any]
    """The fields of a new criterion of this kind (besides its name): what "Add criterion" writes."""
    key_fields: tuple[str, ...] = ()
    """Fields the editor's table shows first, in this order (then any others that are set)."""
    rules: tuple[Rule, ...] = ()
    builtin: bool = True
    """An in-process check of engine/rewards/builtins.py (False: user code, OpenAI grader, judge)."""

    def field(self, name: str) -> Field | None:
        return next((f for f in (*self.fields, *COMMON_FIELDS) if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


COMMON_FIELDS = (
    Field(
        "name",
        "str",
        "A word of letters, digits and _: it names the curve rewards/<name>/mean and the criterion in "
        "the total expression.",
        required=True,
        pattern=NAME.pattern,
        pattern_hint="a word of letters, digits and _",
    ),
    Field("kind", "str", "What checks the completion: one of the kinds.", required=True),
    Field("weight", "number", "Its weight in the total; 0 = logged, not optimised.", 1.0, example=0.5),
    Field("description", "str", "A note for people reading the rubric.", example="Is the answer right?"),
)
COMMON_NAMES = tuple(f.name for f in COMMON_FIELDS)

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
_TAG_OR_EXTRACT = Rule("at_most_one", ("tag", "extract"), "give either 'tag' or 'extract', not both")
_REFERENCE_HELP = "{{item.COLUMN}} reads a dataset column."
_USER_CODE = (
    Field(
        "timeout_s",
        "number",
        "Seconds per call before the worker is killed and the call is an error.",
        30.0,
        minimum=0.001,
        example=10,
    ),
    Field(
        "memory_mb",
        "int",
        "Memory limit of each worker process, in MB (0 = none), where the OS enforces it (Linux).",
        4096,
        minimum=0,
        example=2048,
    ),
    Field(
        "env",
        "strings",
        "Secret environment variables the code needs (names like *KEY*, *TOKEN*, *SECRET*, *PASSWORD*, "
        "*CREDENTIAL*, and judges' api_key_env are kept from reward workers unless listed here).",
        [],
        example=["MY_API_KEY"],
    ),
)
_ALLOW_FENCE = Field("allow_fence", "bool", "Accept JSON inside a ```json fence.", True, example=False)
_CASE = Field("case_sensitive", "bool", "Compare case.", True, example=False)
_REQUEST_TIMEOUT = Field(
    "request_timeout_s", "number", "HTTP timeout per request.", 60.0, minimum=0.1, example=30
)
_DEVICE = Field("device", "str", "Local model folders only: cpu, cuda, ...", "cpu")

_KIND_LIST = (
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
                pattern=r"^.+:[^:]+$",
                pattern_hint='"path/to/file.py:function_name" (relative to the rubric file)',
                example="rewards.py:correct",
            ),
            Field("code", "str", "Inline Python source (instead of a file); goes with 'function'."),
            Field("function", "str", "The function to call in the inline code.", example="reward"),
            Field(
                "style",
                "choice",
                "The convention; detected from the signature when absent.",
                choices=STYLES,
                aliases=tuple(STYLE_ALIASES),
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
        (
            Rule(
                "exactly_one",
                ("source", "code"),
                'give either source = "file.py:function" or code = "..." with function',
            ),
            Rule(
                "needs",
                ("code", "function"),
                "inline 'code' needs 'function' = the name of the function to call",
            ),
            Rule(
                "at_most_one",
                ("source", "function"),
                "'function' goes with inline 'code'; with 'source' write \"file.py:function\"",
            ),
        ),
        builtin=False,
    ),
    Kind(
        "exact_match",
        "Exact match",
        "1 when the (extracted) answer equals the reference text, else 0.",
        (
            Field(
                "reference",
                "str",
                f"The expected text; {_REFERENCE_HELP}",
                "{{item.answer}}",
                example="{{item.answer}}",
            ),
            _CASE,
            Field("strip", "bool", "Collapse whitespace before comparing.", True, example=False),
            *_EXTRACT,
        ),
        {"kind": "exact_match", "weight": 1.0, "reference": "{{item.answer}}", "tag": "answer"},
        ("reference", "tag", "extract", "case_sensitive"),
        (_TAG_OR_EXTRACT,),
    ),
    Kind(
        "numeric_match",
        "Numeric match",
        "1 when the last number (or the one in a tag) equals the reference within a tolerance.",
        (
            Field(
                "reference",
                "str",
                f"The expected number; {_REFERENCE_HELP}",
                "{{item.answer}}",
                example="{{item.answer}}",
            ),
            Field("tolerance", "number", "Absolute tolerance.", 1e-6, minimum=0, example=0.01),
            Field("relative_tolerance", "number", "Relative tolerance.", 0.0, minimum=0, example=0.001),
            *_EXTRACT,
        ),
        {"kind": "numeric_match", "weight": 1.0, "reference": "{{item.answer}}", "tag": "answer"},
        ("reference", "tag", "extract", "tolerance"),
        (_TAG_OR_EXTRACT,),
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
                "strings",
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
                "strings",
                "A string or a list of strings to look for.",
                required=True,
                example=["because"],
            ),
            Field(
                "match", "choice", "any or all of the texts.", "any", choices=("any", "all"), example="all"
            ),
            _CASE,
        ),
        {"kind": "contains", "weight": 1.0, "text": ["{{item.answer}}"]},
        ("text", "match", "case_sensitive"),
    ),
    Kind(
        "json_valid",
        "JSON valid",
        "1 when the completion is valid JSON.",
        (_ALLOW_FENCE,),
        {"kind": "json_valid", "weight": 1.0},
        ("allow_fence",),
    ),
    Kind(
        "json_schema",
        "JSON schema",
        "1 when the completion is JSON that validates against the schema (JSON Schema Draft 2020-12, "
        "or the draft its $schema names).",
        (
            Field(
                "schema",
                "table",
                "The JSON schema, as a TOML table.",
                example={"type": "object", "required": ["answer"]},
            ),
            Field("schema_file", "str", "A JSON schema file beside the rubric (instead of 'schema')."),
            _ALLOW_FENCE,
        ),
        {"kind": "json_schema", "weight": 1.0, "schema": {"type": "object", "required": ["answer"]}},
        ("schema", "schema_file", "allow_fence"),
        (
            Rule(
                "exactly_one",
                ("schema", "schema_file"),
                "give the JSON schema as 'schema' (a table) or 'schema_file' (a path), one of them",
            ),
        ),
    ),
    Kind(
        "length",
        "Length",
        "1.0 at the target length, falling off by shape (soft_overlong: DAPO's overlong penalty).",
        (
            Field("target", "int", "The target length.", required=True, minimum=1, example=200),
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
                "Distance from the target at which linear shapes reach 0 (default: the target).",
                above=0,
                example=50,
            ),
            Field(
                "buffer",
                "number",
                "soft_overlong: the length before the target where the penalty starts (default: a "
                "quarter of the target, at least 1).",
                above=0,
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
            Field("answer_tag", "str", "The answer tag.", "answer", example="final"),
            Field("strict", "bool", "open-r1's strict layout with newlines.", False, example=True),
            Field("partial", "bool", "0.25 per tag seen exactly once instead of 1/0.", False, example=True),
        ),
        {"kind": "think_answer_format", "weight": 0.2},
        ("think_tag", "answer_tag", "strict", "partial"),
    ),
    Kind(
        "repetition_penalty",
        "Repetition penalty",
        "open-r1's n-gram repetition penalty, between max_penalty and 0.",
        (
            Field("ngram_size", "int", "n of the n-grams.", 3, minimum=1, example=4),
            Field(
                "max_penalty",
                "number",
                "The penalty when everything repeats (0 or negative).",
                -1.0,
                maximum=0,
                example=-0.5,
            ),
        ),
        {"kind": "repetition_penalty", "weight": 1.0},
        ("ngram_size", "max_penalty"),
    ),
    # Trajectory checks of agent runs ([environment]): engine/envs/criteria.py, docs/agents.md.
    Kind(
        "env_reward",
        "Environment reward",
        "Agent runs: the environment's own get_reward() for the episode (null, with the reason, if it "
        "failed).",
        (),
        {"kind": "env_reward", "weight": 1.0},
    ),
    Kind(
        "valid_tool_calls",
        "Valid tool calls",
        "Agent runs: the fraction of the rollout's tool calls that were well formed (a known tool, JSON "
        "that parses, arguments that fit the signature).",
        (
            Field(
                "count_tool_errors",
                "bool",
                "Also count a call whose tool raised or timed out as not valid.",
                False,
                example=True,
            ),
            Field("no_calls", "number", "The score of a rollout that made no tool call.", 0.0, example=1.0),
        ),
        {"kind": "valid_tool_calls", "weight": 0.2},
        ("count_tool_errors", "no_calls"),
    ),
    Kind(
        "turn_budget",
        "Turn budget",
        "Agent runs: 1 when the rollout took at most max_turns turns (assistant messages), else 0.",
        (
            Field(
                "max_turns", "int", "The most turns that still score 1.", required=True, minimum=1, example=6
            ),
        ),
        {"kind": "turn_budget", "weight": 0.2, "max_turns": 8},
        ("max_turns",),
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
            Field(
                "base_url",
                "str",
                "score_model and label_model graders: an OpenAI-compatible endpoint, http://host:port/v1 "
                "(default: OpenAI's API; a local model folder as the grader's model needs none).",
                example="http://127.0.0.1:8000/v1",
            ),
            Field(
                "api_key_env",
                "str",
                "The environment variable holding the endpoint's key (default: OPENAI_API_KEY with "
                "OpenAI's API).",
            ),
            _REQUEST_TIMEOUT,
            _DEVICE,
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
        (
            Rule(
                "exactly_one",
                ("grader", "grader_file"),
                'give the grader object as grader = {...} or grader_file = "grader.json", one of them',
            ),
        ),
        builtin=False,
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
            Field("api_key_env", "str", "The environment variable holding the key (never the key itself)."),
            Field(
                "prompt",
                "str",
                "The prompt template ({{prompt}}, {{completion}}, {{item.COLUMN}}, {{min_score}}, "
                "{{max_score}}, {{instructions}}).",
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
            Field("temperature", "number", "Sampling temperature of the judge.", 0.0, minimum=0, example=0.5),
            Field("max_tokens", "int", "Tokens the judge may write.", 256, minimum=1, example=64),
            _REQUEST_TIMEOUT,
            Field("concurrency", "int", "Requests in flight.", 4, minimum=1, example=2),
            Field("cache", "bool", "Cache scores by (prompt, completion, judge).", True, example=False),
            _DEVICE,
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
        builtin=False,
    ),
)

KINDS: dict[str, Kind] = {k.name: k for k in _KIND_LIST}
"""Every criterion kind a rubric can hold, by name, in the order the editor offers them."""


# ---- messages shared by the engine's loader and the studio's checks ----------------------------------


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """ " (did you mean 'source'?)" when a known word is close (difflib), else ""."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_kind_message(kind: object) -> str:
    hint = did_you_mean(kind, list(KINDS)) if isinstance(kind, str) else ""
    return f"unknown kind {kind!r}{hint}; use one of {', '.join(KINDS)}"


def unknown_field_message(kind: Kind, key: str) -> str:
    known = [*COMMON_NAMES, *kind.field_names]
    return (
        f"unknown field '{key}' for kind '{kind.name}'{did_you_mean(key, known)}; "
        f"its fields: {', '.join(sorted(known))}"
    )


def value_problem(field: Field, value: Any) -> str | None:
    """What is wrong with `value` for `field` ("'target' must be a whole number, not 'long'"), or None."""
    problem = _type_problem(field, value)
    if problem is None and field.type in ("number", "int"):
        if field.minimum is not None and value < field.minimum:
            problem = f"must be at least {field.minimum:g}"
        elif field.above is not None and value <= field.above:
            problem = f"must be more than {field.above:g}"
        elif field.maximum is not None and value > field.maximum:
            problem = f"must be {field.maximum:g} or less"
        if problem:
            problem += f", not {value!r}"
    if problem is None and field.pattern is not None and not re.match(field.pattern, value):
        problem = f"must be {field.pattern_hint}, not {value!r}"
    return f"'{field.name}' {problem}" if problem else None


def _type_problem(field: Field, value: Any) -> str | None:
    t = field.type
    if t == "str" and not isinstance(value, str):
        return f"must be a string (in quotes), not {value!r}"
    if t == "number" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        return f"must be a number, not {value!r}"
    if t == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"must be a whole number, not {value!r}"
    if t == "bool" and not isinstance(value, bool):
        return f"must be true or false, not {value!r}"
    if t == "choice" and value not in field.choices and value not in field.aliases:
        return f"must be one of {', '.join(field.choices)}, not {value!r}"
    if t == "strings" and not (
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        return f"must be a string or a list of strings, not {value!r}"
    if t == "table" and not isinstance(value, dict):
        return f"must be a table (key = value pairs), not {value!r}"
    if t == "range" and not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    ):
        return f"must be [low, high] with low < high, like [0, 10], not {value!r}"
    return None


def criterion_problems(table: dict[str, Any], index: int = 0) -> list[str]:
    """Everything wrong with one [[criteria]] table that can be seen without running anything, most
    fundamental first: the engine refuses the first, the editor shows them all."""
    problems: list[str] = []
    name = table.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f'criterion #{index + 1} needs a name = "..." (a word: letters, digits, _)')
    elif not NAME.match(name):
        problems.append(
            f"the name '{name}' must be a word of letters, digits and _ (it becomes rewards/<name>/mean "
            "and can be used in the total expression)"
        )
    elif name in RESERVED_NAMES:
        problems.append(f"'{name}' is reserved (it names the rubric's total reward); choose another name")
    if "kind" not in table:
        problems.append(f"needs kind = one of {', '.join(KINDS)}")
        return problems
    kind = KINDS.get(table["kind"]) if isinstance(table["kind"], str) else None
    if kind is None:
        problems.append(unknown_kind_message(table["kind"]))
        return problems
    unknown = [unknown_field_message(kind, key) for key in table if kind.field(key) is None]
    problems += unknown
    for field in kind.fields:
        if field.required and field.name not in table and not unknown:
            problems.append(f"a {kind.name} criterion needs '{field.name}'")
    for field in (*COMMON_FIELDS[2:], *kind.fields):
        if field.name in table:
            problem = value_problem(field, table[field.name])
            if problem:
                problems.append(problem)
    # A field missing next to an unknown one is most likely that one misspelt: say only the spelling.
    for rule in () if unknown else kind.rules:
        given = [f for f in rule.fields if f in table]
        broken = (
            (rule.kind == "exactly_one" and len(given) != 1)
            or (rule.kind == "at_most_one" and len(given) > 1)
            or (rule.kind == "needs" and rule.fields[0] in table and len(given) < len(rule.fields))
        )
        if broken:
            problems.append(rule.message)
    return problems


def top_level_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with the rubric outside its criteria (unknown keys, no name, no criteria)."""
    problems: list[str] = []
    for key in data:
        if key not in TOP_LEVEL:
            hint = did_you_mean(key, TOP_LEVEL)
            if not hint and any(k.field(key) for k in KINDS.values()):
                hint = " (criterion fields go in a [[criteria]] table)"
            problems.append(f"unknown top-level key '{key}'{hint}; allowed: {', '.join(TOP_LEVEL)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append('the rubric needs name = "..." at the top')
    criteria = data.get("criteria")
    if not isinstance(criteria, list) or not criteria or not all(isinstance(c, dict) for c in criteria):
        problems.append("the rubric needs at least one [[criteria]] table")
    return problems


# ---- what the editor writes and shows -----------------------------------------------------------------


def new_criterion(kind: str, name: str) -> dict[str, Any]:
    """A new criterion of `kind` named `name`, with the fields a user edits first."""
    return {"name": name, **_copy(KINDS[kind].template)}


def key_parameters(criterion: dict[str, Any]) -> dict[str, Any]:
    """The criterion's fields other than the common ones and inline code, key fields first."""
    kind = KINDS.get(str(criterion.get("kind")))
    order = list(kind.key_fields or kind.field_names) if kind else []
    rest = [k for k in criterion if k not in order]
    return {
        k: criterion[k] for k in [*order, *rest] if k in criterion and k not in COMMON_NAMES and k != "code"
    }


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
