"""A built-in environment: an in-memory file tree the model manages with four tools.

The task: "Move every file matching PATTERN from folder A to folder B, then write B/manifest.json listing
what you moved." Nothing touches the real disk: the tree is a dict of path -> text, built by `reset`
from the dataset row's `files` column.

The reward, `get_reward()`, is binary: 1.0 exactly when the final tree equals the expected one, where

- the matching files are the files DIRECTLY in A (not in its subfolders) whose base name matches PATTERN
  (a shell glob, case-sensitive: fnmatch.fnmatchcase);
- each matching file is at B/<its name> with its original content, and no longer in A;
- every other file of the starting tree is at its own path with its own content (nothing else moved,
  deleted or overwritten);
- B/manifest.json exists and is a JSON list of strings: the moved files' base names, each once, in any
  order (["a.csv", "b.csv"]; not paths, not an object);
- no other file exists (no scratch files).

Paths are relative to the root, '/'-separated; a leading '/' or './' is ignored; '..' is refused.

Standard library only: this module runs inside an environment worker. `python -m engine.envs.file_manager`
regenerates the committed task files (data/file_manager_train.jsonl, data/file_manager_eval.jsonl).
"""

from __future__ import annotations

import fnmatch
import json
import random
import sys
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SEED = 1234
TRAIN_EASY = 54
TRAIN_HARD = 18
EVAL_EASY = 12
EVAL_HARD = 12


def normalize(path: str) -> str:
    """'./inbox//a.txt' -> 'inbox/a.txt'; '' and '/' are the root (''). Refuses '..'."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"'..' is not allowed in paths: {path!r}")
    return "/".join(parts)


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def base_name(path: str) -> str:
    return path.rpartition("/")[2]


def expected_tree(files: dict[str, str], source: str, destination: str, pattern: str) -> dict[str, str]:
    """The end state that earns the reward, with the manifest's value as the sorted list of names."""
    source, destination = normalize(source), normalize(destination)
    moved = matching(files, source, pattern)
    out = {path: text for path, text in files.items() if path not in moved}
    for path in moved:
        out[_join(destination, base_name(path))] = files[path]
    out[_join(destination, MANIFEST)] = json.dumps(sorted(base_name(p) for p in moved))
    return out


def matching(files: dict[str, str], folder: str, pattern: str) -> list[str]:
    """Paths of the files directly in `folder` whose base name matches the glob `pattern`."""
    folder = normalize(folder)
    return sorted(p for p in files if parent(p) == folder and fnmatch.fnmatchcase(base_name(p), pattern))


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class FileManagerEnv:
    """Files in folders, in memory. Move files with the tools, then write a manifest."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.initial: dict[str, str] = {}
        self.source = ""
        self.destination = ""
        self.pattern = ""

    def reset(
        self,
        files: list[dict[str, str]] | None = None,
        source: str = "",
        destination: str = "",
        pattern: str = "",
        **row: Any,
    ) -> str | None:
        """Build the tree from the row's `files` ([{"path", "content"}]); the row's prompt states the task."""
        self.files = {normalize(f["path"]): f["content"] for f in files or []}
        self.initial = dict(self.files)
        self.source, self.destination, self.pattern = normalize(source), normalize(destination), pattern
        return None

    # ---- tools ---------------------------------------------------------------------------------------

    def list_files(self, folder: str, pattern: str = "*") -> str:
        """List the files and subfolders directly inside a folder, or those whose name matches a pattern.

        Args:
            folder: The folder to list, relative to the root ("" or "/" for the root itself).
            pattern: A shell glob the names must match ("*.csv", "report.*"); "*", the default, lists all.

        Returns:
            One entry per line: file names, and subfolder names ending with "/".
        """
        folder = normalize(folder)
        prefix = f"{folder}/" if folder else ""
        entries = set()
        for path in self.files:
            if path.startswith(prefix):
                head, sep, _ = path[len(prefix) :].partition("/")
                entries.add(head + "/" if sep else head)
        if not entries and folder:
            raise FileNotFoundError(f"no folder '{folder}'")
        if not entries:
            return "(empty)"
        shown = sorted(e for e in entries if fnmatch.fnmatchcase(e.rstrip("/"), str(pattern or "*")))
        return "\n".join(shown) if shown else f"(no entry matches {pattern})"

    def read_file(self, path: str) -> str:
        """Read a file's text.

        Args:
            path: The file's path, relative to the root (for example "inbox/notes.txt").

        Returns:
            The file's content.
        """
        path = normalize(path)
        if path not in self.files:
            raise FileNotFoundError(f"no file '{path}'")
        return self.files[path]

    def write_file(self, path: str, content: str) -> str:
        """Create a file, or replace the content of an existing one. Folders are created as needed.

        Args:
            path: The file's path, relative to the root (for example "archive/manifest.json").
            content: The complete text to write.

        Returns:
            A confirmation with the number of characters written.
        """
        path = normalize(path)
        if not path:
            raise ValueError("write_file needs a file path, not the root")
        if any(p.startswith(path + "/") for p in self.files):
            raise IsADirectoryError(f"'{path}' is a folder")
        self.files[path] = content
        return f"wrote {len(content)} characters to {path}"

    def move_file(self, source: str, destination: str) -> str:
        """Move a file. Refuses to overwrite an existing file.

        Args:
            source: The path of the file to move (for example "inbox/a.csv").
            destination: The new path of the file (for example "archive/a.csv"), or an existing folder
                to move it into, keeping its name (for example "archive" or "archive/").

        Returns:
            A confirmation naming the new path.
        """
        source = normalize(source)
        if source not in self.files:
            raise FileNotFoundError(f"no file '{source}'")
        target = normalize(destination)
        is_folder = any(p.startswith(target + "/") for p in self.files) or str(destination).endswith("/")
        if is_folder or not target:
            target = _join(target, base_name(source))
        if target == source:
            return f"{source} is already there"
        if target in self.files:
            raise FileExistsError(f"'{target}' already exists; move_file does not overwrite")
        self.files[target] = self.files.pop(source)
        return f"moved {source} to {target}"

    # ---- reward ---------------------------------------------------------------------------------------

    def get_reward(self) -> float:
        """1.0 when the tree is exactly the expected end state (see the module's docstring), else 0.0."""
        return float(reward_for(self.initial, self.files, self.source, self.destination, self.pattern))


def reward_for(
    initial: dict[str, str], final: dict[str, str], source: str, destination: str, pattern: str
) -> bool:
    expected = expected_tree(initial, source, destination, pattern)
    manifest_path = _join(normalize(destination), MANIFEST)
    if set(final) != set(expected):
        return False
    for path, text in expected.items():
        if path == manifest_path:
            try:
                names = json.loads(final[path])
            except ValueError:
                return False
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return False
            if len(names) != len(set(names)) or sorted(names) != json.loads(text):
                return False
        elif final[path] != text:
            return False
    return True


# ---- tasks -------------------------------------------------------------------------------------------------

_FOLDERS = ["inbox", "downloads", "projects", "archive", "reports", "backup", "shared", "drafts"]
_STEMS = ["report", "notes", "budget", "summary", "invoice", "draft", "photo", "data", "log", "plan", "todo"]
_EXTENSIONS = ["csv", "txt", "md", "log", "json", "pdf"]


def _file_name(rng: random.Random, stem: str | None = None, ext: str | None = None) -> str:
    return f"{stem or rng.choice(_STEMS)}.{ext or rng.choice(_EXTENSIONS)}"


def _content(rng: random.Random, name: str) -> str:
    return f"{name}: {rng.choice(['q1', 'q2', 'q3', 'q4'])} {rng.randint(100, 999)}\n"


def make_task(rng: random.Random, tier: str, task_id: str, pattern: str | None = None) -> dict[str, Any]:
    """One task: a starting tree, a source, a destination and a pattern (by extension, "*.csv", or by
    name, "report.*") that matches 1-3 (easy) or 3-6 (hard) files of the source. File names are a stem and
    an extension ("budget.csv"). Hard tasks add decoys: a matching file in a subfolder of the source (which
    stays), a name that nearly matches (budget.csv.bak, old_report.md), a destination that already holds
    files, and more files overall. `pattern` ("*": move everything) replaces the drawn one."""
    hard = tier == "hard"
    source, destination = rng.sample(_FOLDERS, 2)
    ext, stem = rng.choice(_EXTENSIONS), rng.choice(_STEMS)
    if pattern is None:
        pattern = f"*.{ext}" if rng.random() < 0.6 else f"{stem}.*"
    by_ext, by_stem = pattern == f"*.{ext}", pattern == f"{stem}.*"
    match_stem, match_ext = (stem if by_stem else None), (ext if by_ext else None)
    files: dict[str, str] = {}

    def add(path: str) -> None:
        if path not in files and base_name(path) != MANIFEST:
            files[path] = _content(rng, base_name(path))

    wanted = rng.randint(3, 6) if hard else rng.randint(1, 3)
    while len(matching(files, source, pattern)) < wanted:
        add(f"{source}/{_file_name(rng, match_stem, match_ext)}")
    others = rng.randint(10, 16) if hard else rng.randint(3, 6)
    for _ in range(others):
        folder = rng.choice([source, source, *[f for f in _FOLDERS if f != destination][:3]])
        other_stem = rng.choice([s for s in _STEMS if s != stem]) if by_stem else None
        other_ext = rng.choice([e for e in _EXTENSIONS if e != ext]) if by_ext else None
        add(f"{folder}/{_file_name(rng, other_stem, other_ext)}")
    if hard:
        # a match that is not directly in the source, and a near miss (both stay where they are)
        add(f"{source}/old/{_file_name(rng, match_stem, match_ext)}")
        near = base_name(sorted(matching(files, source, pattern))[0])
        add(f"{source}/{near}.bak" if by_ext else f"{source}/old_{near}")
        for _ in range(rng.randint(1, 3)):  # the destination exists and holds files that must stay
            add(f"{destination}/{_file_name(rng)}")
    # A moved file must not collide with one already in the destination.
    for path in matching(files, source, pattern):
        if f"{destination}/{base_name(path)}" in files:
            del files[f"{destination}/{base_name(path)}"]
    moved = [base_name(p) for p in matching(files, source, pattern)]
    prompt = (
        f"Move every file matching {pattern} from the folder {source} to the folder {destination} "
        f"(only files directly in {source}, not in its subfolders). Then write {destination}/{MANIFEST} "
        f"containing a JSON list of the names of the files you moved, for example "
        f'["a.{ext if by_ext else "txt"}", "b.{ext if by_ext else "txt"}"]. Do not move, change or delete anything else. Use the tools.'
    )
    return {
        "task_id": task_id,
        "tier": tier,
        "prompt": [{"role": "user", "content": prompt}],
        "files": [{"path": p, "content": files[p]} for p in sorted(files)],
        "source": source,
        "destination": destination,
        "pattern": pattern,
        "answer": sorted(moved),
    }


def make_tasks(seed: int = SEED) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval): 72 training tasks (54 easy, 18 hard); a held-out set of 12 easy and 12 hard tasks,
    none of them among the training ones. Deterministic."""
    rng = random.Random(seed)
    train = [make_task(rng, "easy", f"train-easy-{i:02d}") for i in range(TRAIN_EASY)]
    train += [make_task(rng, "hard", f"train-hard-{i:02d}") for i in range(TRAIN_HARD)]
    held_out = [make_task(rng, "easy", f"eval-easy-{i:02d}") for i in range(EVAL_EASY)]
    held_out += [make_task(rng, "hard", f"eval-hard-{i:02d}") for i in range(EVAL_HARD)]
    return train, held_out


def solution(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A correct sequence of tool calls for a task: what a scripted policy for `env check` looks like."""
    calls: list[dict[str, Any]] = [{"name": "list_files", "arguments": {"folder": task["source"]}}]
    for name in task["answer"]:
        calls.append(
            {
                "name": "move_file",
                "arguments": {
                    "source": f"{task['source']}/{name}",
                    "destination": f"{task['destination']}/{name}",
                },
            }
        )
    calls.append(
        {
            "name": "write_file",
            "arguments": {"path": f"{task['destination']}/{MANIFEST}", "content": json.dumps(task["answer"])},
        }
    )
    return calls


def write_tasks(folder: Path, seed: int = SEED) -> list[Path]:
    train, held_out = make_tasks(seed)
    paths = []
    for name, rows in (("file_manager_train.jsonl", train), ("file_manager_eval.jsonl", held_out)):
        path = folder / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_tasks(Path(__file__).resolve().parent / "data"):
        print(written, file=sys.stderr)
