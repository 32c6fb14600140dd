"""`magsr-tf bench serve`: runs end to end and reports every figure (no timing asserted)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import call_main

pytest.importorskip("tensorflow")
pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis")


def test_bench_serve_cli_writes_rows(tmp_path, capsys, monkeypatch):
    out = tmp_path / "serve.json"
    args = ["bench", "serve", "--clients", "2", "--seconds", "0.5", "--batches", "1,2"]
    code, captured = call_main(monkeypatch, capsys, *args, "--json", out)
    assert code == 0, captured.err
    rows = json.loads(out.read_text())
    assert [(r["protocol"], r["batch"]) for r in rows] == [
        ("rest", 1),
        ("rest", 2),
        ("grpc", 1),
        ("grpc", 2),
    ]
    for row in rows:
        assert row["errors"] == 0, row  # includes each client's first answer being correct
        assert row["requests"] >= 2 and row["ratio"] == "x8"
        for key in ("sr_images_per_s", "p99_ms", "x_in_process", "x_rest"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["sr_images_per_s"] == pytest.approx(row["requests_per_s"] * row["batch"])
    assert "Serving throughput" in captured.out and "x_in_process" in captured.out


def test_bench_serve_bad_arguments_are_one_line_errors(capsys, monkeypatch):
    for args in (["--protocols", "smtp"], ["--clients", "0"], ["--batches", "0"]):
        code, captured = call_main(monkeypatch, capsys, "bench", "serve", *args)
        err = captured.err.strip()
        assert code == 1 and err.startswith("Error:"), (args, err)
        assert len(err.splitlines()) == 1
