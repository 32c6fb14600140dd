"""Type II physics of the numba annealer against the dipolar-field refresh (docs/annealer.md).

Anneals `--count` configurations (seeds [BENCH_SEED, i], as `schedule_study`) for every
``REFRESH:SWEEPS`` pair given and prints one JSON row each: energy per spin, S_z
structure-factor peak, wall fraction (means, spreads) and CPU seconds per configuration.
``field_refresh = 0`` is the scheme before issue 25 (the whole dipolar field before every
half-sweep); ``0:4000`` is that annealer with a four-times-longer schedule, the reference.

    python docs/scripts/type2_field_refresh.py 0:4000 0:1000 1:1000 4:1000 --count 20
"""

from __future__ import annotations

import argparse
import json

from magsr_tf.benchmarks.anneal import schedule_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="REFRESH:SWEEPS pairs")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--lattice", type=int, default=128)
    args = parser.parse_args()
    for run in args.runs:
        refresh, sweeps = (int(v) for v in run.split(":"))
        (row,) = schedule_study(
            "typeII", (sweeps,), count=args.count, lattice=args.lattice, field_refresh=refresh
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
