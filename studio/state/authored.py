"""Authored things in a workspace: datasets and rubric versions, and the bundled demo.

The default workspace is seeded on first start so a new user finds something to look at and can run
the demo with one click. Seeding is idempotent; it writes only authored things, through the functions
the engine uses too (engine.contract.datasets, engine.contract.rubric_versions), so a demo run reuses them.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from engine.contract import datasets
from engine.contract.config import ConfigError, load_run_config
from engine.contract.paths import AGENT_DEMO_CONFIG, AGENT_DEMO_DIR, DEMO_CONFIG, DEMO_DIR
from engine.contract.rubric_versions import store_version
from studio.state.workspace import WorkspaceDB

SEEDED_KEY = "studio/demo_seeded"
DEMO_CONFIG_NAME = "demo.toml"


def demo_available() -> bool:
    return DEMO_CONFIG.is_file() and (DEMO_DIR / "model").is_dir()


def agent_demo_available() -> bool:
    return AGENT_DEMO_CONFIG.is_file() and (AGENT_DEMO_DIR / "model").is_dir()


def agent_demo_config_path() -> Path:
    """The bundled agent demo's config (its paths are relative to it; the file manager is built in)."""
    return AGENT_DEMO_CONFIG


def demo_config_path(db: WorkspaceDB) -> Path:
    """The workspace's copy of the demo config (absolute paths), or the bundled one."""
    copy = db.configs_dir / DEMO_CONFIG_NAME
    return copy if copy.is_file() else DEMO_CONFIG


def jsonl_summary(path: Path, sample: int = 50) -> tuple[int, list[str]]:
    """Row count and the columns seen in the first rows of a JSONL file."""
    rows, columns = 0, {}
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            if rows < sample:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = {}
                if isinstance(obj, dict):
                    columns.update(dict.fromkeys(obj))
            rows += 1
    return rows, list(columns)


def _rubric_sources(rubric_path: Path, text: str) -> dict[str, str]:
    """The files a rubric's python criteria name (``source = "file.py:function"``), by relative path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    sources = {}
    for criterion in data.get("criteria", []):
        source = criterion.get("source") if isinstance(criterion, dict) else None
        if isinstance(source, str) and ":" in source:
            rel = source.rsplit(":", 1)[0]
            file = rubric_path.parent / rel
            if file.is_file():
                sources[rel] = file.read_text(encoding="utf-8")
    return sources


def register_dataset(db: WorkspaceDB, path: Path, name: str) -> int:
    """Register a JSONL file as a dataset (engine.contract.datasets: the engine's own rule)."""
    rows, columns = jsonl_summary(path)
    with db.writer() as c:
        return datasets.register_dataset(c, path, rows, columns, name)


def register_rubric(db: WorkspaceDB, path: Path, note: str) -> int:
    """Store a rubric file and the sources it names as a version (reused when identical)."""
    text = path.read_text(encoding="utf-8")
    sources = _rubric_sources(path, text)
    try:
        name = str(tomllib.loads(text).get("name") or path.stem)
    except tomllib.TOMLDecodeError:
        name = path.stem
    with db.writer() as c:
        return store_version(c, name, text, sources, note).version_id


def seed_demo(db: WorkspaceDB) -> bool:
    """Register the demo's datasets and rubric and write its run config. True when fully seeded."""
    if db.meta(SEEDED_KEY) == "1":
        return True
    train, evals, rubric = (
        DEMO_DIR / "data" / "train.jsonl",
        DEMO_DIR / "data" / "eval.jsonl",
        DEMO_DIR / "rubric.toml",
    )
    config_ok = False
    if DEMO_CONFIG.is_file():
        try:
            cfg = load_run_config(DEMO_CONFIG)
        except ConfigError:
            cfg = None
        if cfg is not None:
            train, rubric = cfg.resolve(cfg.data.train), cfg.resolve(cfg.rubric.path)
            evals = cfg.resolve(cfg.data.eval) if cfg.data.eval else evals
            db.configs_dir.mkdir(parents=True, exist_ok=True)
            (db.configs_dir / DEMO_CONFIG_NAME).write_text(cfg.to_toml(absolute_paths=True), encoding="utf-8")
            config_ok = True
    for path, name in ((train, "demo-train"), (evals, "demo-eval")):
        if path.is_file():
            register_dataset(db, path, name)
    if rubric.is_file():
        register_rubric(db, rubric, note=f"Bundled demo rubric ({rubric})")
    done = config_ok and train.is_file() and rubric.is_file()
    if done:
        with db.writer() as c:
            c.execute(
                "INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET value = '1'",
                (SEEDED_KEY,),
            )
    return done


def materialize_rubric_version(db: WorkspaceDB, version_id: int) -> Path:
    """Write a stored rubric version (TOML and its source files) to disk, for a run config to name."""
    text, sources = db.rubric_version_text(version_id)
    row = db.conn.execute(
        "SELECT r.name, v.version FROM rubric_versions v JOIN rubrics r ON r.id = v.rubric_id WHERE v.id = ?",
        (version_id,),
    ).fetchone()
    name, version = (row[0], row[1]) if row else ("rubric", version_id)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    folder = db.files_dir / "rubrics" / f"{safe}-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in sources.items():
        target = (folder / rel).resolve()
        if folder.resolve() in target.parents:  # never write outside the folder
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    path = folder / "rubric.toml"
    path.write_text(text, encoding="utf-8")
    return path
