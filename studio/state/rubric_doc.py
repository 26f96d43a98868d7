"""The rubric being edited: its TOML text, the parsed criteria, and the source files beside it.

Plain Python (no Qt): the criteria table, the TOML pane and the code editor all edit one
RubricDocument. The TOML text is the truth. Edits through the table are written into it with tomlkit
(rubric_toml.update): the user's comments and layout stay, and only the edited lines change. Edits in
the TOML pane are parsed back into the criteria when they are valid TOML. An unchanged rubric saves
byte for byte as the version it came from.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.rubric_format import KINDS, new_criterion
from engine.contract.rubric_versions import content_sha256
from studio.state import rubric_toml

RUBRIC_FILE = "rubric.toml"

NEW_RUBRIC = """# A new rubric: each [[criteria]] is one reward; the total is the weighted sum.
name = "my-rubric"

[[criteria]]
name = "format"
kind = "regex"
pattern = '<answer>.*?</answer>'
weight = 1.0
"""


@dataclass(frozen=True)
class CodeTarget:
    """Where a criterion's Python lives: a source file beside the rubric, inline code, or the source of
    an OpenAI python grader."""

    criterion: str
    where: str  # "file" | "inline" | "grader"
    function: str
    style: str | None
    path: str | None = None

    @property
    def label(self) -> str:
        if self.where == "file":
            return f"{self.path} : {self.function}"
        if self.where == "grader":
            return f"the python grader of '{self.criterion}' : grade"
        return f"the inline code of '{self.criterion}' : {self.function}"


def toml_error_line(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class RubricDocument:
    def __init__(self, text: str = NEW_RUBRIC, sources: dict[str, str] | None = None) -> None:
        self.text = ""
        self.data: dict[str, Any] = {"name": "", "criteria": []}
        self.parse_error: str | None = None
        self.sources: dict[str, str] = dict(sources or {})
        self._written: list[dict[str, Any]] = []
        """The criterion dicts self.text was parsed into or written from, in its [[criteria]] order."""
        self.set_text(text)

    # ---- text <-> data ---------------------------------------------------------------------------------
    def set_text(self, text: str) -> bool:
        """Take new TOML text (the TOML pane, an import). False, with parse_error set, when it does not
        parse; the criteria then keep their last valid state."""
        self.text = text
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.parse_error = f"not valid TOML: {exc}"
            return False
        criteria = data.get("criteria")
        if criteria is None:
            data["criteria"] = []
        elif not isinstance(criteria, list) or not all(isinstance(c, dict) for c in criteria):
            self.parse_error = "criteria must be [[criteria]] tables"
            return False
        self.parse_error = None
        self.data = data
        self._written = list(self.criteria)
        return True

    def regenerate(self) -> None:
        """Write the data into the text (after an edit through the table or the code editor), keeping
        its comments and layout; text that does not parse is rewritten from the last valid data."""
        base = self.text if self.parse_error is None else ""
        self.text = rubric_toml.update(base, self.data, self._written)
        self._written = list(self.criteria)
        self.parse_error = None

    # ---- the rubric ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        value = self.data.get("name")
        return value.strip() if isinstance(value, str) else ""

    @property
    def criteria(self) -> list[dict[str, Any]]:
        criteria = self.data.setdefault("criteria", [])
        assert isinstance(criteria, list)
        return criteria

    def names(self) -> list[str]:
        return [str(c.get("name", "")) for c in self.criteria]

    def set_top(self, key: str, value: Any) -> None:
        if value in (None, ""):
            self.data.pop(key, None)
        else:
            self.data[key] = value
        self.regenerate()

    def unique_name(self, base: str) -> str:
        taken = set(self.names())
        if base not in taken:
            return base
        n = 2
        while f"{base}_{n}" in taken:
            n += 1
        return f"{base}_{n}"

    def add_criterion(self, kind: str, name: str | None = None) -> int:
        self.criteria.append(new_criterion(kind, self.unique_name(name or kind)))
        self.regenerate()
        return len(self.criteria) - 1

    def remove_criterion(self, index: int) -> None:
        del self.criteria[index]
        self.regenerate()

    def move_criterion(self, index: int, delta: int) -> int:
        target = index + delta
        if not (0 <= index < len(self.criteria) and 0 <= target < len(self.criteria)):
            return index
        items = self.criteria
        items[index], items[target] = items[target], items[index]
        self.regenerate()
        return target

    def set_field(self, index: int, key: str, value: Any) -> None:
        """Set one field of a criterion (None removes it)."""
        criterion = self.criteria[index]
        if value is None:
            criterion.pop(key, None)
        else:
            criterion[key] = value
        self.regenerate()

    def set_kind(self, index: int, kind: str) -> None:
        """Change a criterion's kind: its name and weight stay, the fields become the new kind's template."""
        old = self.criteria[index]
        new = new_criterion(kind, str(old.get("name", kind)))
        for key in ("weight", "description"):
            if key in old:
                new[key] = old[key]
        old.clear()  # the same dict: its table in the text (and the comments there) stays
        old.update(new)
        self.regenerate()

    def replace_parameters(self, index: int, params: dict[str, Any]) -> None:
        """Replace the criterion's non-common fields (its key parameters); inline code is kept."""
        old = self.criteria[index]
        kept: dict[str, Any] = {
            k: old[k] for k in ("name", "kind", "description", "weight", "code") if k in old
        }
        new = {**kept, **{k: v for k, v in params.items() if k not in kept}}
        old.clear()  # the same dict: its table in the text (and the comments there) stays
        old.update(new)
        self.regenerate()

    # ---- code --------------------------------------------------------------------------------------------
    def code_target(self, index: int) -> CodeTarget | None:
        if not 0 <= index < len(self.criteria):
            return None
        c = self.criteria[index]
        name = str(c.get("name", f"#{index + 1}"))
        style = c.get("style") if isinstance(c.get("style"), str) else None
        if c.get("kind") == "python":
            source = c.get("source")
            if isinstance(source, str):
                path, sep, function = source.rpartition(":")
                if sep and path:
                    return CodeTarget(name, "file", function, style, path=path)
                return None
            inline_function = c.get("function")
            return CodeTarget(
                name, "inline", inline_function if isinstance(inline_function, str) else "", style
            )
        grader = c.get("grader")
        if c.get("kind") == "openai_grader" and isinstance(grader, dict) and grader.get("type") == "python":
            return CodeTarget(name, "grader", "grade", "openai-python")
        return None

    def code(self, target: CodeTarget) -> str:
        if target.where == "file":
            return self.sources.get(target.path or "", "")
        c = self._criterion(target.criterion)
        if c is None:
            return ""
        if target.where == "grader":
            return str(c.get("grader", {}).get("source", ""))
        return str(c.get("code", ""))

    def set_code(self, target: CodeTarget, text: str) -> None:
        """Edit the code at `target`. A source file changes only `sources`; inline code rewrites the TOML."""
        if target.where == "file":
            self.sources[target.path or ""] = text
            return
        c = self._criterion(target.criterion)
        if c is None:
            return
        if target.where == "grader":
            c["grader"]["source"] = text
        else:
            c["code"] = text
        self.regenerate()

    def _criterion(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.criteria if c.get("name") == name), None)

    # ---- what a version stores ----------------------------------------------------------------------
    def referenced_files(self) -> list[str]:
        """Files the rubric needs beside it: python sources, the sibling modules they import (the
        engine's snapshot records those too), schema and grader files."""
        from engine.contract.reward_signatures import imported_modules

        wanted: list[str] = []
        for c in self.criteria:
            source = c.get("source")
            if c.get("kind") == "python" and isinstance(source, str) and ":" in source:
                wanted.append(_norm(source.rpartition(":")[0]))
            for key in ("schema_file", "grader_file"):
                if isinstance(c.get(key), str):
                    wanted.append(_norm(c[key]))
        seen: list[str] = []
        while wanted:
            path = wanted.pop(0)
            if path in seen:
                continue
            seen.append(path)
            if path.endswith(".py") and path in self.sources:
                folder = path.rpartition("/")[0]
                for module in imported_modules(self.sources[path]):
                    for candidate in (f"{module}.py", f"{module}/__init__.py"):
                        rel = f"{folder}/{candidate}" if folder else candidate
                        if rel in self.sources and rel not in seen:
                            wanted.append(rel)
        return seen

    def snapshot(self) -> tuple[str, dict[str, str]]:
        """(TOML text, {relative path: text}) of exactly the files the rubric uses: what is saved."""
        files = {p: self.sources[p] for p in self.referenced_files() if p in self.sources}
        return self.text, dict(sorted(files.items()))

    @property
    def sha256(self) -> str:
        return content_sha256(*self.snapshot())

    def write_to(self, folder: Path, unreferenced: bool = True) -> Path:
        """Write rubric.toml and its files into `folder` (for `rubric test`, export). Returns the TOML path.
        ``unreferenced``: also the files no criterion names (a referenced module may import them)."""
        folder.mkdir(parents=True, exist_ok=True)
        text, sources = self.snapshot()
        if unreferenced:
            for extra, content in self.sources.items():
                sources.setdefault(extra, content)
        root = folder.resolve()
        for rel, content in sources.items():
            target = (folder / rel).resolve()
            if root not in target.parents:
                raise ValueError(f"the source path {rel!r} points outside the rubric's folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        path = folder / RUBRIC_FILE
        path.write_text(text, encoding="utf-8")
        return path


def _norm(path: str) -> str:
    return Path(path).as_posix().removeprefix("./")


def read_rubric_file(path: Path) -> RubricDocument:
    """Import a rubric TOML file and the files beside it that it uses (sources, imported modules,
    schema and grader files). Raises OSError/UnicodeDecodeError when the file cannot be read."""
    text = path.read_text(encoding="utf-8")
    doc = RubricDocument(text)
    folder = path.resolve().parent
    loaded: set[str] = set()
    while True:  # each pass may find modules imported by the files just read
        missing = [rel for rel in doc.referenced_files() if rel not in loaded]
        if not missing:
            break
        for rel in missing:
            loaded.add(rel)
            file = (folder / rel).resolve()
            if file.is_file():
                doc.sources[rel] = file.read_text(encoding="utf-8")
        # sibling modules are only found once their importer is read: look in the folder too
        for rel in list(doc.sources):
            if rel.endswith(".py"):
                for sibling in folder.glob("*.py"):
                    name = sibling.name
                    if name not in doc.sources and sibling.stem in _imports(doc.sources[rel]):
                        doc.sources[name] = sibling.read_text(encoding="utf-8")
    return doc


def _imports(code: str) -> set[str]:
    from engine.contract.reward_signatures import imported_modules

    return imported_modules(code)


def kind_of(criterion: dict[str, Any]) -> str:
    kind = criterion.get("kind")
    return kind if isinstance(kind, str) and kind in KINDS else str(kind or "?")
