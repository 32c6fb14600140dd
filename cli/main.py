"""Entry point of the ``magsr-tf`` console script.

Every sub-command lives in its own module that exposes ``register(app)``; this
module only assembles them and turns user errors into one-line messages.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

# NumPy's BLAS threads fight the annealer's worker processes and TensorFlow's own
# pool on small matrices (measured 6-15x slower LR downsizing with the default
# threads on a busy 2-core machine); set before NumPy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer
from magsr_tf_cli import (
    bench,
    evaluate,
    experiment,
    export,
    fit,
    generate,
    images,
    predict,
    refine,
    reproduce,
    serve,
)

from magsr_tf import MagsrError, __version__

DEBUG_ENV = "MAGSR_DEBUG"
DEBUG_HINT = f"run with --debug or {DEBUG_ENV}=1 for the traceback"
_state = {"debug": False}

app = typer.Typer(
    name="magsr-tf",
    help="Unsupervised super-resolution of magnetic spin textures (Lee et al., Sci. Rep. 2023).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"magsr-tf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    debug: bool = typer.Option(
        False,
        "--debug",
        help=f"Show the traceback of an unexpected error (same as {DEBUG_ENV}=1).",
    ),
) -> None:
    """magsr-tf: train on low-resolution spin images only, get super-resolution ones."""
    if debug:
        _state["debug"] = True
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


class _Escape(BaseException):
    """Carries an exception of a command past Click's and Typer's own handlers.

    Typer turns ``KeyboardInterrupt`` into a silent exit 130 and ``EOFError``
    into a bare ``Aborted!`` inside ``app()``; a ``BaseException`` that is
    neither passes through both, so :func:`main` reports the original.
    """

    def __init__(self, exc: BaseException):
        super().__init__(exc)
        self.exc = exc


# Commands whose --out is a folder: an existing file there is refused before any work.
_FOLDER_OUT = {"fit", "fit-image", "predict", "refine", "reproduce", "crossfeed", "noise"}


def _guard(name: str, callback):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        out = kwargs.get("out")
        if name in _FOLDER_OUT and out is not None and Path(out).exists():
            if not Path(out).is_dir():
                raise MagsrError(f"--out {out} is a file, not a folder; give a folder")
        try:
            return callback(*args, **kwargs)
        except (KeyboardInterrupt, EOFError) as exc:
            raise _Escape(exc) from exc

    return run


def _guard_commands(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.callback = _guard(name, info.callback)
    for group in typer_app.registered_groups:
        _guard_commands(group.typer_instance)


for _module in (
    generate,
    fit,
    refine,
    evaluate,
    experiment,
    export,
    predict,
    serve,
    images,
    bench,
    reproduce,
):
    _module.register(app)
_guard_commands(app)


# Sub-commands that run TensorFlow; it is imported up front, quietly, for them.
_TF_COMMANDS = {
    "fit",
    "calibrate-noise",
    "evaluate",
    "experiment",
    "export",
    "predict",
    "serve",
    "fit-image",
    "bench",
    "report",
    "refine",
    "reproduce",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    # Messages may quote bytes from files or servers: no terminal escape sequences.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


# Commands that continue where an interrupted run stopped.
_RESUME_HINTS = {
    "fit": "run the same command again to resume from the last epoch",
    "generate": "run the same command again to continue",
    "reproduce": "run the same command again to continue",
}
_MAIN_PID = os.getpid()


def _on_signal(signum, frame) -> None:
    """SIGINT and SIGTERM: unwind the stack (``finally`` blocks remove temporary files)."""
    if os.getpid() != _MAIN_PID:
        # A forked worker: die as the signal's default action would.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _state["signal"] = signum
    raise KeyboardInterrupt


def _interrupted() -> None:
    signum = _state.get("signal", signal.SIGINT)
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    hint = _RESUME_HINTS.get(command)
    name = signal.Signals(signum).name
    print(f"Interrupted ({name}){'; ' + hint if hint else ''}.", file=sys.stderr)
    sys.exit(128 + signum)


def _expected(exc: BaseException) -> str | None:
    """The one-line message of a failure that is the input's or the system's, not a bug."""
    import http.client

    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({_first_line(exc)})" if _first_line(exc) else "")
    if isinstance(exc, EOFError):
        return f"a file ended early ({_first_line(exc) or 'no data'})"
    if isinstance(exc, http.client.HTTPException):
        return f"the server's reply is not valid HTTP ({type(exc).__name__}: {_first_line(exc)})"
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(exc, pil.DecompressionBombError):
        return f"picture too large ({_first_line(exc)})"
    return None


def main() -> None:
    """Run the CLI; errors exit with status 1 and one ``Error: ...`` line on stderr.

    User errors (bad input, missing files) and failures of the input or the
    system (out of memory, a truncated file, a reply that is not HTTP, a
    decompression bomb) print their message; anything else is a bug or a
    broken installation and prints its type, message and a hint to see the
    traceback (``--debug`` or ``MAGSR_DEBUG=1``). Ctrl-C and SIGTERM unwind
    the stack (``finally`` blocks remove temporary files) and print one
    ``Interrupted (SIGINT).`` line; the exit status is 128 + the signal number.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _state["debug"] = os.environ.get(DEBUG_ENV) == "1" or "--debug" in sys.argv[1:]
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        try:
            if _TF_COMMANDS.intersection(sys.argv[1:2]) and not _state["debug"]:
                from magsr_tf_cli.tfimport import import_tensorflow_quietly

                import_tensorflow_quietly()
            app()
        except _Escape as escape:
            raise escape.exc from None
    except KeyboardInterrupt:
        _interrupted()
    except (MagsrError, ValueError, OSError) as exc:
        if _state["debug"]:
            raise
        print(f"Error: {_first_line(exc) or type(exc).__name__}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if _state["debug"]:
            raise
        expected = _expected(exc)
        if expected is not None:
            print(f"Error: {expected}", file=sys.stderr)
            sys.exit(1)
        message = _first_line(exc)
        print(f"Error: {type(exc).__name__}{': ' + message if message else ''}", file=sys.stderr)
        print(f"({DEBUG_HINT})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
