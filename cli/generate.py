"""`magsr-tf generate typeI|typeII`: anneal spin configurations into an HDF5 dataset."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import typer
from magsr_tf_cli.options import Lattice, Workers
from magsr_tf_cli.output import output_console, progress_bar

# Same values as magsr_tf.data.generation; repeated so that `magsr-tf --help` does not import h5py.
_DEFAULT_N = 40_100
_DEFAULT_SEED = 11526


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # `kill PID` then closes the HDF5 file cleanly, exactly like Ctrl-C.
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add `generate` to `app`."""

    @app.command("generate")
    def generate(
        kind: str = typer.Argument(..., help="Hamiltonian type: typeI or typeII."),
        n: int = typer.Option(_DEFAULT_N, "--n", help="Configurations in total (train + test)."),
        out: Path = typer.Option(None, "--out", help="HDF5 file (default: data/KIND.h5)."),
        seed: int = typer.Option(_DEFAULT_SEED, "--seed", help="Base seed."),
        test: int = typer.Option(100, "--test", help="Test configurations (the last rows)."),
        lattice: Lattice = 128,
        workers: Workers = 0,
        phases: int = typer.Option(
            0, "--phases", help="Extra LR images per ratio of the state shifted by HR pixels."
        ),
        cluster: str = typer.Option(
            None,
            "--cluster",
            help="Anneal on a Dask cluster: its scheduler address (tcp://HOST:8786), or local:N "
            "for N worker processes here. Same data; needs the cluster extra (distributed).",
        ),
        cluster_timeout: float = typer.Option(
            10.0, "--cluster-timeout", help="Seconds to wait for the Dask scheduler to answer."
        ),
    ) -> None:
        """Anneal spin configurations and write HR and LR images to an HDF5 file.

        Interrupted runs (Ctrl-C, kill) leave OUT.partial; the same command
        continues it. An existing dataset is never overwritten. With --cluster
        the file is the same, bit for bit (docs/cluster.md).
        """
        if cluster is not None and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # Dask logs every worker start and stop at INFO on stderr, also in the
            # local cluster's worker processes (which inherit the environment);
            # keep its warnings. Set before distributed is first imported.
            os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")
        from magsr_tf.data.format import open_info, partial_path
        from magsr_tf.data.generation import GenerateConfig
        from magsr_tf.data.generation import generate as generate_dataset

        config = GenerateConfig(
            kind=kind,
            n=n,
            out=out,
            seed=seed,
            n_test=test,
            lattice=lattice,
            workers=workers or None,
            phases=phases,
            cluster=cluster,
            cluster_timeout=cluster_timeout,
        )
        console = output_console(stderr=True)
        # The bar appears with the first progress report, so that parameter
        # errors print alone and a complete file prints no bar at all.
        bar = progress_bar(unit="conf")
        task = bar.add_task(f"{kind} L={config.lattice}", total=config.n)
        state: dict[str, int] = {}

        def on_progress(done: int, total: int) -> None:
            if "start" not in state:
                state["start"] = done
                if done >= total:
                    return
                # Rate and ETA count this run's configurations only.
                bar.update(task, rate_from=done, rate_t0=time.monotonic())
                bar.start()
            bar.update(task, completed=done, total=total)

        def on_workers(count: int) -> None:
            bar.update(task, info=f"{count} worker{'s' if count != 1 else ''}")

        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        try:
            path = generate_dataset(config, progress=on_progress, on_workers=on_workers)
        except KeyboardInterrupt:
            # Typer turns KeyboardInterrupt into a silent exit 130: say what is kept.
            if bar.is_started:
                bar.stop()
            console.print(
                f"Interrupted; the configurations finished so far are kept in "
                f"{partial_path(config.out)}: run the same command again to continue.",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(130) from None
        finally:
            if bar.is_started:
                bar.stop()
        info = open_info(path)
        made = info.n - state.get("start", 0)
        what = "already complete" if made == 0 else f"{made} configurations annealed"
        size_mb = path.stat().st_size / 2**20
        output_console().print(
            f"{path}: {info.kind}, {info.n_train} train + {info.n_test} test configurations, "
            f"L={info.lattice}, LR ratios {', '.join(f'x{r}' for r in info.ratios)}, "
            f"{info.phases} extra phases, {size_mb:.1f} MiB ({what})"
        )
