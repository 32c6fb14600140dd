"""`magsr-tf reproduce`: rebuild every shipped model (generate, fit, TFLite, evaluate, report)."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.output import format_duration, output_console, print_table, progress_bar


class _Display:
    """One progress display per step, and a line when a step starts, is skipped or ends."""

    def __init__(self):
        self.console = output_console()
        self.bar = None
        self.task = None
        self.seconds: dict[str, float | None] = {}
        self.status: dict[str, str] = {}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = self.task = None

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "plan":
            self.console.print(f"{len(event['steps'])} steps: {', '.join(event['steps'])}")
            return
        where = f"[{event.get('index', 0) + 1}/{event.get('total', 0)}] {event.get('step')}"
        if kind == "step_skip":
            reason = event.get("reason", "complete")
            self.status[event["step"]] = f"skipped ({reason})"
            self.seconds[event["step"]] = event.get("seconds")
            what = "already complete" if reason == "complete" else "nothing needs it"
            self.console.print(f"{where}: {what}, skipped", markup=False)
        elif kind == "step_start":
            self.close()
            self.console.print(f"{where} ...", markup=False)
        elif kind == "work":
            if self.task is None:
                self.bar = progress_bar(stderr=False, unit=event["unit"])
                self.bar.start()
                self.task = self.bar.add_task(
                    event["step"], total=event["total"], completed=event["done"]
                )
            self.bar.update(self.task, completed=event["done"], total=event["total"])
        elif kind == "step_done":
            self.close()
            self.status[event["step"]] = "done"
            self.seconds[event["step"]] = event["seconds"]
            self.console.print(
                f"{where}: done in {format_duration(event['seconds'])}", markup=False
            )


def reproduce(
    out: Path = typer.Option(Path("saved_models"), "--out", help="Models root."),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="Where datasets are made."),
    only: str = typer.Option(
        None, "--only", help="Comma-separated model names (default: all shipped models)."
    ),
) -> None:
    """Rebuild every shipped model from nothing; rerun after an interruption to continue."""
    from magsr_tf.jobs.reproduce import STATE_FILE, ReproduceConfig
    from magsr_tf.jobs.reproduce import reproduce as run

    names = tuple(n.strip() for n in only.split(",") if n.strip()) if only is not None else None
    config = ReproduceConfig(out=out, data_dir=data_dir, only=names)
    display = _Display()
    try:
        state = run(config, progress=display)
    finally:
        display.close()
    rows = []
    for name, record in state["steps"].items():
        if name not in display.status:
            continue  # a step of another --only selection
        seconds = record.get("seconds")
        rows.append(
            [
                name,
                display.status[name],
                format_duration(seconds) if seconds is not None else "-",
                record.get("finished", "-"),
            ]
        )
    print_table(
        "Steps (time of the run that did each)", ["step", "this run", "took", "finished"], rows
    )
    display.console.print(f"Ledger: {out / STATE_FILE}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `reproduce` to `app`."""
    app.command("reproduce")(reproduce)
