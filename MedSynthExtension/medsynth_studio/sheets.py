"""Teaching sheets from the studio's module panels, downloaded by the browser.

A panel that mixes in :class:`TeachingSheet` gets a "Teaching sheet" area after its action buttons: one or two
``NAME=v1,v2,...`` fields (columns, then rows; the names and values a module's ``medsynth sheet`` command takes,
checked by the module's ``Param`` declarations through :func:`medsynth.sheets.parse_vary`), PNG or PDF, and a
*Download teaching sheet* button.  The sheet uses the panel's current image, point and other settings.

How it travels (the studio adds no HTTP route):

1. the button calls :meth:`TeachingSheet.start_sheet` over the studio's websocket; the request (the two texts and
   the format) and the panel's values are checked on the event loop, where the panel also reads what it needs from
   MRML (an error is shown in the panel and nothing starts);
2. a background task (progress bar, *Cancel*, as the panels' other long actions) writes the sheet with the module's
   own sheet code into a new private temporary folder, reads its bytes and removes the folder;
3. the bytes stay in the panel (one sheet per panel, in memory) and the state key ``<id>_sheet_ready`` is bumped;
4. the page sees the change and asks for the sheet with a trame trigger over the same authenticated websocket
   (:meth:`TeachingSheet.fetch_sheet`: it takes no argument from the page and hands the stored sheet out once); the
   answer ``{name, content, type}`` is saved by ``utils.download``, as the Volumes panel's downloads are.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from medsynth.errors import Cancelled, InputError

from .tasks import error_text

log = logging.getLogger("medsynth.studio")

#: Formats offered (the engine's ``SHEET_SUFFIXES``), with the type the page gives the downloaded file.
SHEET_TYPES = {"png": "image/png", "pdf": "application/pdf"}
SHEET_LABEL = "Teaching sheet"

#: ``write(path, progress) -> facts``: writes the sheet file (worker thread: no MRML, no VTK).
SheetWriter = Callable[[Path, Callable[[float, str], None]], Dict[str, Any]]


def safe_stem(text: str) -> str:
    """A file name stem for the download: letters, digits, ``_ . -`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "sheet"


def _page_words(text: str) -> str:
    # the engine's messages name the command-line options; the page has fields
    return text.replace("--vary ", "").replace("--set ", "").replace("--ras", "the point")


def parse_request(texts: Sequence[str], params: Sequence[Any], aliases: Optional[Mapping[str, str]] = None,
                  fixed: Optional[Mapping[str, Any]] = None) -> List[Tuple[str, List[Any]]]:
    """The non-empty ``NAME=v1,v2,...`` texts as (name, checked values), the grid checked (one or two names, not
    twice, not too many tiles) against ``fixed`` less the varied names. :class:`InputError` saying what is wrong."""
    from medsynth.sheets import grid_of, parse_vary

    try:
        items = [parse_vary(t, params, aliases) for t in texts if str(t or "").strip()]
        if not items:
            raise InputError("give NAME=v1,v2,... in the first field (and optionally another in the second)")
        varied = {name for name, _ in items}
        grid_of(items, {k: v for k, v in dict(fixed or {}).items() if k not in varied})
    except InputError as exc:
        raise InputError(f"{SHEET_LABEL}: {_page_words(str(exc))}") from None
    return items


class TeachingSheet:
    """Mixin for a :class:`~medsynth_studio.panel.StudioPanel` (put it first among the bases).

    The panel sets :attr:`SHEET_EXAMPLES` (the two fields' first texts) and implements :meth:`sheet_job`.
    """

    SHEET_EXAMPLES: Tuple[str, str] = ("", "")
    SHEET_HELP = "one or two NAME=v1,v2,... (columns, then rows); the other settings are the panel's"

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self._sheet: Optional[Dict[str, Any]] = None  # the last sheet made, until the page fetches it
        self.last_sheet: Dict[str, Any] = {}  # its facts (tests, the status line)
        for name, value in (("sheet_columns", self.SHEET_EXAMPLES[0]), ("sheet_rows", self.SHEET_EXAMPLES[1]),
                            ("sheet_format", "png"), ("sheet_ready", 0), ("sheet_status", "")):
            self.state.setdefault(self.key(name), value)

    # ------------------------------------------------------------------ what each panel gives
    def sheet_job(self, values: Dict[str, Any], texts: Sequence[str]) -> Tuple[str, SheetWriter]:
        """(file name stem, writer) for the request ``texts`` with the panel's ``values``.  Runs on the event
        loop: read MRML here and check the request (raise :class:`InputError`); the writer runs in a thread."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the request
    def sheet_texts(self) -> List[str]:
        return [str(self.state[self.key("sheet_columns")] or ""), str(self.state[self.key("sheet_rows")] or "")]

    def sheet_format(self) -> str:
        fmt = str(self.state[self.key("sheet_format")] or "png").lower().lstrip(".")
        if fmt not in SHEET_TYPES:
            raise InputError(f"{SHEET_LABEL}: format '{fmt}' is not one of {', '.join(SHEET_TYPES)}")
        return fmt

    def start_sheet(self):
        """What the *Download teaching sheet* button does: check, then make the sheet in a background task.
        Returns the task (None when the request was refused: the error is in the panel)."""
        self.show_error("")
        if self.tasks.busy:
            self.show_error("Another action of this panel is still running; cancel it first.")
            return None
        try:
            fmt = self.sheet_format()
            stem, write = self.sheet_job(self.values(), self.sheet_texts())
        except Exception as exc:  # noqa: BLE001 - shown in the page
            if not isinstance(exc, InputError):
                log.exception("%s: teaching sheet refused", self.id)
            self.show_error(error_text(exc))
            return None
        name = f"{safe_stem(stem)}.{fmt}"
        self._sheet = None
        with self.state:
            self.state[self.key("sheet_status")] = ""

        def compute(progress, cancel):
            folder = Path(tempfile.mkdtemp(prefix="medsynth_sheet_"))  # private (0700), removed below
            try:
                def report(fraction: float, message: str) -> None:
                    if cancel.cancelled:
                        raise Cancelled("operation cancelled")
                    progress(fraction, message)

                facts = write(folder / name, report)
                return facts, (folder / name).read_bytes()
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        def on_done(result) -> None:
            facts, content = result
            self._sheet = {"name": name, "content": content, "type": SHEET_TYPES[fmt]}
            self.last_sheet = {**facts, "name": name, "bytes": len(content)}
            tiles = len(facts.get("tiles", []))
            with self.state:
                self.state[self.key("sheet_status")] = (f"{name}: {tiles} tiles, {len(content) / 1024:.0f} kB"
                                                        + (f"; {facts['note']}" if facts.get("note") else ""))
                self.state[self.key("sheet_ready")] = int(self.state[self.key("sheet_ready")] or 0) + 1

        return self.tasks.start(compute, on_done, SHEET_LABEL)

    def fetch_sheet(self) -> Optional[Dict[str, Any]]:
        """The sheet just made, ``{"name", "content", "type"}``, handed out once (None when there is none)."""
        sheet, self._sheet = self._sheet, None
        return sheet

    # ------------------------------------------------------------------ UI
    def build_footer(self, busy: str) -> None:
        from trame.widgets import client, html
        from trame.widgets import vuetify3 as v3

        fmt = self.key("sheet_format")
        fetch = self.studio.server.controller.trigger_name(self._fetch_callback())
        with html.Div(classes=f"mt-3 medsynth-sheet medsynth-sheet-{self.id}"):
            v3.VDivider(classes="mb-2")
            html.Div(SHEET_LABEL, classes="text-subtitle-2", title=self.SHEET_HELP)
            for name, label in (("sheet_columns", "Columns: NAME=v1,v2,..."), ("sheet_rows", "Rows (optional)")):
                v3.VTextField(
                    label=label, v_model=(self.key(name),), density="compact", hide_details="auto",
                    disabled=(busy,), classes=f"mb-1 medsynth-{name.replace('_', '-')}", title=self.SHEET_HELP,
                )
            with html.Div(classes="d-flex flex-wrap align-center ga-2 mt-1"):
                with v3.VBtnToggle(v_model=(fmt,), mandatory=True, density="compact", variant="outlined",
                                   divided=True, disabled=(busy,), classes="medsynth-sheet-format"):
                    for kind in SHEET_TYPES:
                        v3.VBtn(kind.upper(), value=kind, size="small", classes=f"medsynth-sheet-format-{kind}")
                v3.VBtn(
                    "Download teaching sheet ({{ (%s || 'png').toUpperCase() }})" % fmt,
                    click=self.start_sheet, disabled=(busy,), prepend_icon="mdi-download", size="small",
                    variant="flat", color="primary", classes="medsynth-action medsynth-action-sheet",
                    title="make the sheet in the background, then save it",
                )
            html.Div("{{ %s }}" % self.key("sheet_status"), v_if=(self.key("sheet_status"),),
                     classes="text-caption mt-1 medsynth-sheet-status")
            # a new sheet is ready: fetch it over the websocket (a trigger) and save it
            client.ClientStateChange(
                value=self.key("sheet_ready"),
                change=(f"trigger('{fetch}', []).then((r) => {{ if (r) {{ "
                        f"utils.download(r.name, r.content, r.type); }} }})"),
            )

    def _fetch_callback(self) -> Callable[[], Optional[Dict[str, Any]]]:
        def fetch() -> Optional[Dict[str, Any]]:
            return self.fetch_sheet()

        fetch.__name__ = f"{self.id}_fetch_sheet"
        return fetch
