"""Terminal output shared by every command: progress displays and result tables.

On a terminal, progress is a live Rich bar and tables fit the window. Anywhere
else (a log file, CI, ``| tee``) Rich would draw a single final frame into 80
columns and clip it (``anneal ━━━━ 60…   0:0…``), so there progress becomes
plain lines printed every few percent or seconds, with rate and ETA, and tables
and text are printed at their full width.

Usage::

    with progress_bar(unit="conf") as bar:
        task = bar.add_task("anneal", total=n)
        bar.update(task, completed=done, info="epoch 1/6")

    print_table("Results", ["method", "MSE"], [["sr", "0.017"]])

The display offers the part of :class:`rich.progress.Progress` that the
commands use (``add_task``, ``update``, ``advance``, ``start``, ``stop``,
context manager) plus ``is_started``, whichever form it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

PLAIN_EVERY_PERCENT = 5.0
"""Plain progress prints a line each time another 5 % is done (20 lines per task) ..."""
PLAIN_EVERY_SECONDS = 30.0
"""... or after 30 s without a line, so that a slow task still shows it is alive."""
FULL_WIDTH = 1000
"""Console width off a terminal: wide enough that no table cell or line is wrapped or clipped."""


def output_console(stderr: bool = False, **options) -> Console:
    """Console for results (``stderr=False``) or progress and notes (``stderr=True``).

    On a terminal: Rich's usual console. Elsewhere: no wrapping and tables at
    their natural width instead of 80 columns.

    Args:
        stderr: print on stderr instead of stdout.
        **options: more :class:`rich.console.Console` options (``markup=False``, ...).
    """
    console = Console(stderr=stderr, **options)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=FULL_WIDTH, soft_wrap=True, **options)


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS``, or ``-:--:--`` when unknown."""
    if seconds is None:
        return "-:--:--"
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _rate(start: float, t0: float, completed: float, now: float) -> float | None:
    """Units per second since the task's baseline (Rich's windowed speed would be
    blank between chunks that finish minutes apart)."""
    done = completed - start
    elapsed = now - t0
    return done / elapsed if done > 0 and elapsed > 0 else None


def _eta(rate: float | None, completed: float, total: float | None) -> float | None:
    if not rate or total is None:
        return None
    return max(0.0, (total - completed) / rate)


def _task_rate(task: Task) -> float | None:
    fields = task.fields
    return _rate(fields["rate_from"], fields["rate_t0"], task.completed, time.monotonic())


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        rate = _task_rate(task)
        text = f"{rate:.3g} {self.unit}/s" if rate else f"- {self.unit}/s"
        return Text(text, style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = _task_rate(task)
        eta = _eta(rate, task.completed, task.total)
        return Text(f"ETA {format_duration(eta)}", style="progress.remaining")


class RichProgress(Progress):
    """Rich's live bar with description, bar, M/N, info, rate over this run, ETA, elapsed.

    Each task carries the fields ``info`` (free text, default empty), and
    ``rate_from``/``rate_t0``: the rate is ``(completed - rate_from) / (now -
    rate_t0)``. They default to the task's creation; pass new values to
    ``update`` to move the baseline (e.g. at the first report of a resumed job).
    """

    def __init__(self, console: Console, unit: str = "it", transient: bool = False):
        super().__init__(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            _RateColumn(unit),
            _EtaColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=transient,
        )

    @property
    def is_started(self) -> bool:
        """Whether the live display is drawing."""
        return self.live.is_started

    def add_task(self, description: str, total: float | None = None, **kwargs) -> TaskID:
        kwargs.setdefault("info", "")
        kwargs.setdefault("rate_from", kwargs.get("completed", 0))
        kwargs.setdefault("rate_t0", time.monotonic())
        return super().add_task(description, total=total, **kwargs)


@dataclass
class _PlainTask:
    description: str
    total: float | None
    completed: float = 0
    info: str = ""
    rate_from: float = 0
    rate_t0: float = field(default_factory=time.monotonic)
    last_line_at: float | None = None
    last_percent_step: int = -1
    last_printed: float | None = None


class PlainProgress:
    """Progress as plain lines: ``anneal: 120/600 (20%), 3.1 conf/s, elapsed 0:00:39, ETA ...``.

    A line is printed when the task crosses another ``every_percent`` of its
    total, when ``every_seconds`` passed since the last line and something
    changed, and once at completion. Same interface as :class:`RichProgress`.
    """

    def __init__(
        self,
        console: Console,
        unit: str = "it",
        every_percent: float = PLAIN_EVERY_PERCENT,
        every_seconds: float = PLAIN_EVERY_SECONDS,
    ):
        self.console = console
        self.unit = unit
        self.every_percent = every_percent
        self.every_seconds = every_seconds
        self._tasks: dict[int, _PlainTask] = {}
        self._started = False

    @property
    def is_started(self) -> bool:
        """Whether :meth:`start` was called (and :meth:`stop` not yet)."""
        return self._started

    def start(self) -> None:
        self._started = True

    def stop(self) -> None:
        self._started = False

    def __enter__(self) -> PlainProgress:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_task(
        self,
        description: str,
        total: float | None = None,
        completed: float = 0,
        info: str = "",
        rate_from: float | None = None,
        rate_t0: float | None = None,
        **_fields,
    ) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = _PlainTask(
            description,
            total,
            completed,
            info,
            completed if rate_from is None else rate_from,
            time.monotonic() if rate_t0 is None else rate_t0,
        )
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        info: str | None = None,
        rate_from: float | None = None,
        rate_t0: float | None = None,
        **_fields,
    ) -> None:
        task = self._tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if description is not None:
            task.description = description
        if info is not None:
            task.info = info
        if rate_from is not None:
            task.rate_from = rate_from
        if rate_t0 is not None:
            task.rate_t0 = rate_t0
        if completed is not None or advance is not None:
            self._maybe_print(task)

    def _maybe_print(self, task: _PlainTask) -> None:
        now = time.monotonic()
        if task.completed == task.last_printed:
            return
        done = task.total is not None and task.completed >= task.total
        step = -1
        if task.total:
            step = int(100.0 * task.completed / task.total // self.every_percent)
        due = (
            done
            or step > task.last_percent_step
            or (task.last_line_at is not None and now - task.last_line_at >= self.every_seconds)
            or (task.last_line_at is None and now - task.rate_t0 >= self.every_seconds)
        )
        if not due:
            return
        task.last_line_at = now
        task.last_percent_step = max(step, task.last_percent_step)
        task.last_printed = task.completed
        self.console.file.write(self.line(task, now) + "\n")
        self.console.file.flush()

    def line(self, task: _PlainTask, now: float) -> str:
        """One progress line of ``task`` at time ``now``."""
        parts = [f"{task.description}: {task.completed:g}"]
        if task.total is not None:
            pct = 100.0 * task.completed / task.total if task.total else 100.0
            parts = [f"{task.description}: {task.completed:g}/{task.total:g} ({pct:.0f}%)"]
        rate = _rate(task.rate_from, task.rate_t0, task.completed, now)
        parts.append(f"{rate:.3g} {self.unit}/s" if rate else f"- {self.unit}/s")
        parts.append(f"elapsed {format_duration(now - task.rate_t0)}")
        if task.total is not None:
            parts.append(f"ETA {format_duration(_eta(rate, task.completed, task.total))}")
        if task.info:
            parts.append(task.info)
        return ", ".join(parts)


def progress_bar(
    *,
    stderr: bool = True,
    unit: str = "it",
    transient: bool = False,
    console: Console | None = None,
) -> RichProgress | PlainProgress:
    """A progress display: a Rich bar on a terminal, plain lines anywhere else.

    Args:
        stderr: draw on stderr (default; results go to stdout) or stdout.
        unit: what the counts count, for the rate (``conf`` -> ``3.1 conf/s``).
        transient: on a terminal, remove the bar when it stops.
        console: draw on this console instead (its ``is_terminal`` decides the form).
    """
    if console is None:
        console = Console(stderr=stderr)
    if console.is_terminal:
        return RichProgress(console, unit=unit, transient=transient)
    return PlainProgress(console, unit=unit)


def counting_progress(
    description: str, *, unit: str = "it", transient: bool = True
) -> tuple[RichProgress | PlainProgress, Callable[[int, int], None]]:
    """A progress display on stderr and the ``progress(done, total)`` callback feeding it.

    The display starts with the first report, so that errors before any work
    print alone. Call ``display.stop()`` when the work ends (``finally``).
    """
    bar = progress_bar(unit=unit, transient=transient)
    task = bar.add_task(description, total=None)

    def on_progress(done: int, total: int) -> None:
        if not bar.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    return bar, on_progress


def make_table(
    title: str | None,
    header: Sequence[str],
    justify: Sequence[str] | None = None,
) -> Table:
    """A Rich table: first column left-aligned and never wrapped, the others right-aligned."""
    table = Table(title=title, title_justify="left")
    for k, name in enumerate(header):
        align = justify[k] if justify is not None else ("left" if k == 0 else "right")
        table.add_column(name, justify=align, no_wrap=k == 0)
    return table


def print_table(
    title: str | None,
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    console: Console | None = None,
    justify: Sequence[str] | None = None,
    styles: Sequence[str | None] | None = None,
) -> None:
    """Prints a table; at full width when not on a terminal (never clipped with "…").

    Args:
        title: shown above the table (left-aligned).
        header: column names.
        rows: rows of cell strings.
        console: where to print (default: :func:`output_console` on stdout).
        justify: per-column alignment (default: first left, others right).
        styles: per-row Rich style (e.g. ``"bold"`` for a total row), or None.
    """
    table = make_table(title, header, justify)
    for k, row in enumerate(rows):
        style = styles[k] if styles is not None and k < len(styles) else None
        table.add_row(*(str(cell) for cell in row), style=style)
    print_rich_table(table, console)


def print_rich_table(table: Table, console: Console | None = None) -> None:
    """Prints an already built Rich table like :func:`print_table` does."""
    (console or output_console()).print(table)
