"""The rubric editor's state, without widgets: the document, the version it came from, whether it has
changed since, and the dataset whose columns validation checks against.

Views take this object and subscribe to its signals; every edit goes through it, so the criteria
table, the TOML pane and the code editor stay in step.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.state import rubric_store
from studio.state.rubric_doc import NEW_RUBRIC, RubricDocument, read_rubric_file
from studio.state.rubric_store import SaveResult, VersionInfo
from studio.state.studio_state import StudioState
from studio.state.workspace import DatasetRow


class RubricSession(QObject):
    sig_loaded = Signal()
    """A different rubric (or version) replaced the document: every view resets."""
    sig_changed = Signal(str)
    """The document changed; the argument names the origin ('table', 'toml', 'code') so that view
    does not reload what the user is typing."""
    sig_dirty_changed = Signal(bool)
    sig_versions_changed = Signal()
    """A version was saved (or the workspace changed): version lists reload."""
    sig_dataset_changed = Signal(object)
    """The dataset used for column checks and tests (DatasetRow or None)."""

    def __init__(self, state: StudioState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.doc = RubricDocument(NEW_RUBRIC)
        self.base: VersionInfo | None = None
        """The stored version the document was loaded from or last saved as."""
        self.origin = "new rubric"
        self._base_sha: str | None = None
        self._dirty = False
        self.dataset: DatasetRow | None = None

    # ---- loading ---------------------------------------------------------------------------------------
    def load_document(
        self, doc: RubricDocument, base: VersionInfo | None, origin: str, pristine: bool = False
    ) -> None:
        """Replace the document. It is dirty (has something to save) unless it came from a stored
        version, or is `pristine` (a new rubric nobody has typed into yet)."""
        self.doc = doc
        self.base = base
        self.origin = origin
        self._base_sha = doc.sha256 if base is not None or pristine else None
        self.sig_loaded.emit()
        self._update_dirty(self._base_sha is None)

    def load_version(self, version_id: int) -> bool:
        db = self.state.db
        stored = rubric_store.load(db, version_id) if db else None
        if stored is None:
            return False
        self.load_document(stored.document(), stored.info, stored.info.label)
        return True

    def load_latest(self) -> None:
        """Open the newest stored version of the workspace, or a new rubric when there is none."""
        db = self.state.db
        version_id = rubric_store.latest_version_id(db) if db else None
        if version_id is None or not self.load_version(version_id):
            self.new_rubric()
        self.sig_versions_changed.emit()

    def new_rubric(self) -> None:
        self.load_document(RubricDocument(NEW_RUBRIC), None, "new rubric", pristine=True)

    def import_file(self, path: Path) -> None:
        """Load a rubric TOML file and the files it uses. Raises OSError/UnicodeDecodeError."""
        doc = read_rubric_file(path)
        db = self.state.db
        stored = rubric_store.find_version(db, doc) if db else None
        self.load_document(doc, stored, f"imported from {path}")

    # ---- editing ---------------------------------------------------------------------------------------
    def changed(self, origin: str) -> None:
        """Call after editing self.doc."""
        self.sig_changed.emit(origin)
        self._update_dirty(self._base_sha is None or self.doc.sha256 != self._base_sha)

    def set_toml(self, text: str) -> bool:
        ok = self.doc.set_text(text)
        self.changed("toml")
        return ok

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _update_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
        self.sig_dirty_changed.emit(dirty)

    # ---- versions --------------------------------------------------------------------------------------
    def save(self, note: str = "") -> SaveResult:
        """Save the document as a version (identical content reuses the stored one). Raises ValueError
        when the rubric has no name; the caller checks for errors first."""
        db = self.state.db
        if db is None:
            raise ValueError("no workspace is open")
        result = rubric_store.save_version(db, self.doc, note)
        stored = rubric_store.load(db, result.version_id)
        self.base = stored.info if stored else None
        self.origin = self.base.label if self.base else self.origin
        self._base_sha = self.doc.sha256
        self._update_dirty(False)
        self.sig_versions_changed.emit()
        if result.created:
            self.state.sig_authored_changed.emit()
        return result

    def refresh_base(self) -> None:
        """Re-read the base version (its runs change as runs start)."""
        db = self.state.db
        if db is not None and self.base is not None:
            stored = rubric_store.load(db, self.base.id)
            self.base = stored.info if stored else self.base

    def versions(self) -> list[VersionInfo]:
        db = self.state.db
        return rubric_store.versions(db, self.doc.name) if db and self.doc.name else []

    def diff_with(self, version_id: int, against_current: bool = True) -> list[str]:
        """The diff from a stored version to the current document."""
        db = self.state.db
        stored = rubric_store.load(db, version_id) if db else None
        if stored is None:
            return []
        return rubric_store.diff(
            (stored.toml, stored.sources), self.doc.snapshot(), stored.info.label, "current"
        )

    # ---- dataset ---------------------------------------------------------------------------------------
    def datasets(self) -> list[DatasetRow]:
        return self.state.db.datasets() if self.state.db else []

    def set_dataset(self, dataset: DatasetRow | None) -> None:
        if dataset != self.dataset:
            self.dataset = dataset
            self.sig_dataset_changed.emit(dataset)

    @property
    def columns(self) -> set[str] | None:
        return set(self.dataset.columns) if self.dataset is not None else None

    @property
    def dataset_label(self) -> str:
        return f"dataset '{self.dataset.name}'" if self.dataset else "the dataset"
