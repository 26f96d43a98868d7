"""The criteria table of the rubric editor: add, remove, reorder and edit criteria of every kind."""

from __future__ import annotations

import html

from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.contract.rubric_format import KINDS, Field
from studio.models.criteria_model import KIND, NAME, PARAMS, WEIGHT, CriteriaModel
from studio.state import rubric_toml
from studio.state.rubric_session import RubricSession

Index = QModelIndex | QPersistentModelIndex


def field_tip(field: Field) -> str:
    """A field's help with what the rubric format says about its values."""
    facts = ["required"] if field.required else []
    if field.choices:
        facts.append(f"one of {', '.join(field.choices)}")
    if field.default not in (None, [], {}):
        facts.append(f"default {rubric_toml.inline(field.default)}")
    return f"{field.help} ({'; '.join(facts)})" if facts else field.help


class KindDelegate(QStyledItemDelegate):
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        combo = QComboBox(parent)
        for name, kind in KINDS.items():
            combo.addItem(name)
            combo.setItemData(combo.count() - 1, kind.help, Qt.ItemDataRole.ToolTipRole)
        return combo

    def setEditorData(self, editor: QWidget, index: Index) -> None:
        assert isinstance(editor, QComboBox)
        editor.setCurrentText(str(index.data(Qt.ItemDataRole.EditRole)))

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: Index) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)


class WeightDelegate(QStyledItemDelegate):
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        spin = QDoubleSpinBox(parent)
        spin.setRange(-1000.0, 1000.0)
        spin.setDecimals(3)
        spin.setSingleStep(0.1)
        return spin


class CriteriaPanel(QWidget):
    sig_selected = Signal(int)
    """The selected criterion's row (-1: none)."""

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = CriteriaModel(session, self)
        self.table = QTableView()
        self.table.setObjectName("criteriaTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setItemDelegateForColumn(KIND, KindDelegate(self.table))
        self.table.setItemDelegateForColumn(WEIGHT, WeightDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(PARAMS, QHeaderView.ResizeMode.Stretch)
        for col, width in ((NAME, 90), (KIND, 96), (WEIGHT, 52)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._selected(cur.row()))

        self.add_button = QToolButton()
        self.add_button.setText("+ Add")
        self.add_button.setToolTip("Add a criterion (Ctrl+Shift+A)")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.add_button)
        for name, kind in KINDS.items():
            action = menu.addAction(f"{kind.title}  ({name})")
            action.setToolTip(kind.help)
            action.triggered.connect(lambda _=False, k=name: self.add(k))
        menu.setToolTipsVisible(True)
        self.add_button.setMenu(menu)
        self.remove_button = self._tool("−", "Remove the selected criterion (Delete)", self.remove_selected)
        self.up_button = self._tool("↑", "Move up (Alt+Up)", lambda: self.move_selected(-1))
        self.down_button = self._tool("↓", "Move down (Alt+Down)", lambda: self.move_selected(1))
        title = QLabel("CRITERIA")
        title.setObjectName("sectionTitle")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(title)
        bar.addStretch(1)
        for button in (self.add_button, self.remove_button, self.up_button, self.down_button):
            button.setObjectName("controlButton")
            bar.addWidget(button)

        self.fields = QLabel()
        self.fields.setObjectName("muted")
        self.fields.setWordWrap(True)
        self.fields.setTextFormat(Qt.TextFormat.RichText)
        self.fields.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.fields)

        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.remove_selected)
        for keys, delta in (("Alt+Up", -1), ("Alt+Down", 1)):
            s = QShortcut(QKeySequence(keys), self.table)
            s.setContext(Qt.ShortcutContext.WidgetShortcut)
            s.activated.connect(lambda d=delta: self.move_selected(d))
        add = QShortcut(QKeySequence("Ctrl+Shift+A"), self)
        add.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        add.activated.connect(lambda: self.add_button.showMenu())
        self._keep_row = 0
        self.model.modelAboutToBeReset.connect(self.remember_selection)
        self.model.modelReset.connect(self._after_reset)
        self.model.dataChanged.connect(lambda *_: self._describe(self.current_row()))

    def _tool(self, text: str, tip: str, slot: object) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)  # type: ignore[arg-type]
        return button

    # ---- selection -------------------------------------------------------------------------------------
    def current_row(self) -> int:
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    def select(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount():
            self._selected(-1)
            return
        index = self.model.index(row, NAME)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self._selected(row)

    def _selected(self, row: int) -> None:
        self._describe(row)
        self.sig_selected.emit(row)

    def _after_reset(self) -> None:
        rows = self.model.rowCount()
        keep = self._keep_row
        self.select(min(max(keep, 0), rows - 1) if rows else -1)

    def remember_selection(self) -> None:
        self._keep_row = self.current_row()

    def _describe(self, row: int) -> None:
        """The selected kind's fields (what 'key parameters' can hold) and the criterion's problems."""
        criteria = self.session.doc.criteria
        if not 0 <= row < len(criteria):
            self.fields.setText("")
            return
        kind = KINDS.get(str(criteria[row].get("kind")))
        parts = []
        for p in self.model.problems(row):
            colour = "#c53030" if p.is_error else "#b7791f"
            parts.append(f"<span style='color:{colour}'>● {html.escape(p.message)}</span>")
        if kind is not None:
            names = []
            for f in kind.fields:
                label = f"<b>{f.name}</b>" if f.required else f.name
                names.append(f"<span title='{html.escape(field_tip(f), quote=True)}'>{label}</span>")
            parts.append(f"<b>{kind.title}</b>: {html.escape(kind.help)}<br>fields: {', '.join(names)}")
        self.fields.setText("<br>".join(parts))

    # ---- edits -------------------------------------------------------------------------------------------
    def add(self, kind: str) -> int:
        row = self.model.add(kind)
        self.select(row)
        return row

    def remove_selected(self) -> None:
        row = self.current_row()
        if row < 0:
            return
        self.model.remove(row)
        self.select(min(row, self.model.rowCount() - 1))

    def move_selected(self, delta: int) -> None:
        row = self.current_row()
        if row < 0:
            return
        self._keep_row = row + delta
        target = self.model.move(row, delta)
        self.select(target)
