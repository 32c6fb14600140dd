"""The ``magsr-tf`` command line: a thin Typer shell over :mod:`magsr_tf`."""
