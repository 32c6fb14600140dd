"""Entry point of the ``magsr-tf`` console script.

Every sub-command lives in its own module that exposes ``register(app)``; this
module only assembles them and turns user errors into one-line messages.
"""

from __future__ import annotations

import logging
import os
import sys

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


# Sub-commands that run TensorFlow; it is imported up front, quietly, for them.
_TF_COMMANDS = {
    "fit",
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
    return text.splitlines()[0] if text else ""


def main() -> None:
    """Run the CLI; errors exit with status 1 and one ``Error: ...`` line on stderr.

    User errors (bad input, missing files) print their message; anything else
    is a bug or a broken installation and prints its type, message and a hint
    to see the traceback (``--debug`` or ``MAGSR_DEBUG=1``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _state["debug"] = os.environ.get(DEBUG_ENV) == "1" or "--debug" in sys.argv[1:]
    if _TF_COMMANDS.intersection(sys.argv[1:2]) and not _state["debug"]:
        from magsr_tf_cli.tfimport import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        app()
    except (MagsrError, ValueError, OSError) as exc:
        if _state["debug"]:
            raise
        print(f"Error: {_first_line(exc) or type(exc).__name__}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("Interrupted; run the same command again to continue.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        message = _first_line(exc)
        print(f"Error: {type(exc).__name__}{': ' + message if message else ''}", file=sys.stderr)
        print(f"({DEBUG_HINT})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
