"""CLI output off a terminal (plain progress, full-width tables) and the last-resort error line."""

import io
import os
import subprocess
import sys

import pytest
from conftest import call_main
from magsr_tf_cli import output
from magsr_tf_cli.output import PlainProgress, RichProgress, print_table, progress_bar
from rich.console import Console

CLIPPED = "…"
LONG_CELL = "6.283185307179586e+00 (a cell far wider than an 80-column terminal would keep)"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(output.time, "monotonic", fake)
    return fake


def _plain(every_percent=5.0, every_seconds=30.0):
    console = Console(file=io.StringIO(), width=80)
    return PlainProgress(
        console, unit="conf", every_percent=every_percent, every_seconds=every_seconds
    ), console.file


def test_plain_progress_prints_every_5_percent_with_rate_and_eta(clock):
    bar, out = _plain()
    with bar:
        task = bar.add_task("anneal", total=200)
        for done in range(1, 201):
            clock.now += 1.0  # one configuration per second: 10 s per 5 %
            bar.update(task, completed=done, info="epoch 1/6")
    lines = out.getvalue().splitlines()
    assert len(lines) == 21  # the first report, then 5 %, 10 %, ..., 100 %
    assert lines[0].startswith("anneal: 1/200 (0%), 1 conf/s, elapsed 0:00:01, ETA 0:03:19")
    assert lines[10] == ("anneal: 100/200 (50%), 1 conf/s, elapsed 0:01:40, ETA 0:01:40, epoch 1/6")
    assert lines[-1].startswith("anneal: 200/200 (100%), 1 conf/s, elapsed 0:03:20, ETA 0:00:00")
    assert CLIPPED not in out.getvalue()


def test_plain_progress_prints_every_30_seconds_when_percent_steps_are_slow(clock):
    bar, out = _plain(every_percent=50)
    task = bar.add_task("train", total=1000, rate_from=0)
    for done in range(1, 10):
        clock.now += 10.0
        bar.update(task, completed=done)
    lines = out.getvalue().splitlines()
    # After the first report no 50 % step is crossed: lines come from the 30 s timer.
    assert [line.split(",")[0] for line in lines] == [
        "train: 1/1000 (0%)",
        "train: 4/1000 (0%)",
        "train: 7/1000 (1%)",
    ]
    assert "0.1 conf/s" in lines[1] and "ETA 2:46:00" in lines[1]


def test_plain_progress_rate_counts_this_run_only(clock):
    bar, out = _plain()
    task = bar.add_task("generate", total=100)
    bar.update(task, rate_from=60, rate_t0=clock.now)  # resumed at 60: no line, nothing done
    assert out.getvalue() == ""
    clock.now += 20.0
    bar.update(task, completed=70)
    assert out.getvalue().startswith(
        "generate: 70/100 (70%), 0.5 conf/s, elapsed 0:00:20, ETA 0:01:00"
    )


def test_progress_bar_form_follows_the_terminal():
    assert isinstance(progress_bar(console=Console(file=io.StringIO())), PlainProgress)
    rich_bar = progress_bar(console=Console(file=io.StringIO(), force_terminal=True), unit="conf")
    assert isinstance(rich_bar, RichProgress)
    task = rich_bar.add_task("x", total=4)
    rich_bar.update(task, completed=2, info="note")
    assert not rich_bar.is_started


def test_tables_are_full_width_off_a_terminal(capsys):
    rows = [["bicubic_paper_misaligned", LONG_CELL, "0.4290"]]
    print_table("Methods", ["method", "MSE", "Corr"], rows)
    out = capsys.readouterr().out
    assert LONG_CELL in out and CLIPPED not in out
    # What a plain 80-column Rich console makes of the same table (the bug this avoids):
    narrow = Console(file=io.StringIO(), width=80)
    print_table("Methods", ["method", "MSE", "Corr"], rows, console=narrow)
    assert CLIPPED in narrow.file.getvalue() or LONG_CELL not in narrow.file.getvalue()


def _cli_to_files(tmp_path, *args, timeout=600):
    """Runs `magsr-tf ARGS` with stdout and stderr redirected to files, as in CI or `| tee`."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.run(
            [sys.executable, "-m", "magsr_tf_cli.main", *args],
            stdout=fo,
            stderr=fe,
            cwd=tmp_path,
            timeout=timeout,
            env={**env, "COLUMNS": "80"},
        )
    return proc.returncode, out.read_text(), err.read_text()


def test_generate_output_to_a_file_is_not_clipped(tmp_path):
    code, out, err = _cli_to_files(
        tmp_path,
        "generate",
        "typeI",
        "--n",
        "4",
        "--test",
        "2",
        "--lattice",
        "16",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "deep" / "folder" / "with_a_long_name.h5"),
    )
    assert code == 0, err
    assert CLIPPED not in out + err
    assert "with_a_long_name.h5: typeI, 2 train + 2 test configurations" in out
    progress = [line for line in err.splitlines() if line.startswith("typeI L=16: 4/4 (100%)")]
    assert len(progress) == 1 and "conf/s" in progress[0] and "ETA" in progress[0]


def test_bench_anneal_output_to_a_file_is_not_clipped(tmp_path):
    code, out, err = _cli_to_files(
        tmp_path, "bench", "anneal", "--lattice", "16", "--sweeps", "2", "--workers", "1"
    )
    assert code == 0, err
    assert CLIPPED not in out + err
    assert "reference" in out and "ratio_to_reference" in out and "paper_set_hours_wall" in out
    assert "e+" in out  # throughputs printed in full, e.g. 2.355e+05


def _inject_failure(monkeypatch):
    import magsr_tf.data.generation

    def fail(*args, **kwargs):
        raise RuntimeError("injected failure\nwith a second line")

    monkeypatch.setattr(magsr_tf.data.generation, "generate", fail)


GENERATE = ["generate", "typeI", "--n", "4", "--test", "2", "--lattice", "16"]


def test_unexpected_exception_is_one_error_line_and_a_hint(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("MAGSR_DEBUG", raising=False)
    _inject_failure(monkeypatch)
    code, captured = call_main(monkeypatch, capsys, *GENERATE, "--out", str(tmp_path / "d.h5"))
    assert code == 1
    assert captured.err.splitlines() == [
        "Error: RuntimeError: injected failure",
        "(run with --debug or MAGSR_DEBUG=1 for the traceback)",
    ]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("how", ["option", "environment"])
def test_debug_shows_the_traceback(monkeypatch, tmp_path, how):
    from magsr_tf_cli import main as cli_main

    _inject_failure(monkeypatch)
    args = [*GENERATE, "--out", str(tmp_path / "d.h5")]
    if how == "option":
        monkeypatch.delenv("MAGSR_DEBUG", raising=False)
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("MAGSR_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["magsr-tf", *args])
    with pytest.raises(RuntimeError, match="injected failure"):
        cli_main.main()


def test_user_errors_stay_one_line_without_hint(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("MAGSR_DEBUG", raising=False)
    code, captured = call_main(
        monkeypatch, capsys, "generate", "typeIII", "--out", str(tmp_path / "d.h5")
    )
    assert code == 1
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("Error: ")
