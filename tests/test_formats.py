"""Microscope files with a pixel size, colour and odd pictures (issue 23, parts 2-3)."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest
from conftest import assert_one_line_error, call_main, run_cli
from PIL import Image

from magsr_tf.errors import MagsrError
from magsr_tf.io.formats import read_format, write_gwy, write_tiff
from magsr_tf.io.pictures import picture_spins, read_image, read_picture

SEED = 23
tifffile = pytest.importorskip("tifffile")


def _field(shape=(24, 32)) -> np.ndarray:
    return np.random.default_rng(SEED).normal(size=shape)


def test_tiff_imagej_pixel_size_bit_depths_and_components(tmp_path):
    values = _field().astype(np.float32)
    write_tiff(tmp_path / "f.tif", values[..., None], 0.02, "um")
    picture = read_format(tmp_path / "f.tif")
    assert picture.kind == "tiff" and picture.unit == "um"
    np.testing.assert_allclose(picture.pixel_size, (0.02, 0.02), rtol=1e-6)
    np.testing.assert_array_equal(picture.values[..., 0], values)
    for dtype in (np.uint8, np.uint16):
        raw = np.random.default_rng(SEED).integers(0, np.iinfo(dtype).max, (9, 7)).astype(dtype)
        tifffile.imwrite(tmp_path / "i.tif", raw, imagej=True, resolution=(50, 50),
                         metadata={"unit": "nm"})  # fmt: skip
        picture = read_format(tmp_path / "i.tif")
        np.testing.assert_array_equal(picture.values[..., 0], raw)
        assert picture.unit == "nm" and picture.pixel_size == pytest.approx((0.02, 0.02))
    three = np.stack([values, 2 * values, 3 * values], -1)
    write_tiff(tmp_path / "v.tif", three, 5.0, "nm")  # ImageJ channels
    tifffile.imwrite(tmp_path / "pages.tif", np.moveaxis(three, -1, 0))  # plain pages
    for name in ("v.tif", "pages.tif"):
        spins, info = picture_spins([tmp_path / name])
        assert spins.shape == (24, 32, 3) and spins.dtype == np.float32
        np.testing.assert_array_equal(read_picture(tmp_path / name).values, three)
    assert info.pixel_size is None  # a plain TIFF has no physical pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", values, resolution=(72, 72), resolutionunit=2)
    assert read_format(tmp_path / "dpi.tif").pixel_size is None  # per inch: a print size
    tifffile.imwrite(tmp_path / "cm.tif", values, resolution=(1e5, 1e5), resolutionunit=3)
    picture = read_format(tmp_path / "cm.tif")  # 100,000 px/cm = 0.1 um/px
    assert picture.unit == "um" and picture.pixel_size == pytest.approx((0.1, 0.1))
    tifffile.imwrite(tmp_path / "four.tif", np.stack([values] * 4))
    with pytest.raises(MagsrError, match="give 1"):
        read_format(tmp_path / "four.tif")
    with pytest.raises(MagsrError, match="3 components"):
        read_image(tmp_path / "v.tif")


def test_tiff_ome_pixel_size(tmp_path):
    values = _field().astype(np.float32)
    tifffile.imwrite(
        tmp_path / "o.ome.tif",
        values,
        ome=True,
        metadata={"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeXUnit": "µm"},
    )
    picture = read_format(tmp_path / "o.ome.tif")
    assert picture.unit == "um" and picture.pixel_size == pytest.approx((0.1, 0.1))
    np.testing.assert_array_equal(picture.values[..., 0], values)


def test_gwy_written_by_gwyfile(tmp_path):
    pytest.importorskip("gwyfile")
    from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

    height = _field() * 1e-9  # a height in m
    field = GwyDataField(
        height,
        xreal=32 * 20e-9,
        yreal=24 * 20e-9,
        si_unit_xy=GwySIUnit(unitstr="m"),
        si_unit_z=GwySIUnit(unitstr="m"),
    )
    GwyContainer({"/0/data": field, "/0/data/title": "Height"}).tofile(str(tmp_path / "h.gwy"))
    picture = read_format(tmp_path / "h.gwy")
    assert picture.kind == "gwy" and picture.unit == "nm" and picture.value_unit == "m"
    assert picture.pixel_size == pytest.approx((20.0, 20.0))
    np.testing.assert_allclose(picture.values[..., 0], height)
    spins, _ = picture_spins([tmp_path / "h.gwy"])  # instrument units onto [-1, 1]
    assert spins.min() == -1.0 and spins.max() == 1.0
    write_gwy(tmp_path / "sr.gwy", spins, 5.0, "nm")
    again = read_format(tmp_path / "sr.gwy")
    assert again.pixel_size == pytest.approx((5.0, 5.0)) and again.unit == "nm"
    np.testing.assert_allclose(again.values, spins, atol=1e-7)


def write_ibw(path, wave: np.ndarray, step: float, unit=b"m", data_unit=b"deg") -> None:
    """A minimal Igor binary wave, version 5 (float32, Igor's column-major order), from
    the format's header layout (igor2 has no writer): BinHeader5 (64 bytes),
    WaveHeader5 (320 bytes), the data."""
    data = np.asarray(wave, np.float32)
    dims = [*data.shape, *[0] * (4 - data.ndim)]
    sizes = [0] * 14  # formula, note, units, labels, indices, options: none
    binary = struct.pack("<hhl14l", 5, 0, 320 + data.nbytes, *sizes)
    units = data_unit.ljust(4, b"\0"), unit.ljust(4, b"\0") * 4
    header = struct.pack("<4l2h6sh32s2l4l4d4d4s16s", 0, 0, 0, data.size, 2, 0, b"", 0, b"w",
                         0, 0, *dims, step, step, 1, 1, 0, 0, 0, 0, *units)  # fmt: skip
    path.write_bytes(binary + header.ljust(320, b"\0") + data.tobytes(order="F"))


def test_ibw_written_to_its_specification(tmp_path):
    pytest.importorskip("igor2")
    image = _field().astype(np.float32)
    write_ibw(tmp_path / "a.ibw", np.dstack([image.T, -image.T]), 2e-8)  # 2 layers
    picture = read_format(tmp_path / "a.ibw")
    assert picture.kind == "ibw" and picture.unit == "nm" and picture.value_unit == "deg"
    assert picture.pixel_size == pytest.approx((20.0, 20.0))
    np.testing.assert_array_equal(picture.values[..., 0], image)  # first layer, rows = x


def test_dm_reader_maps_rosettasciio_output(tmp_path, monkeypatch):
    """No DM writer exists: rosettasciio's reader is replaced by what it returns for an
    image (its signal dict)."""
    pytest.importorskip("rsciio")
    import rsciio.digitalmicrograph

    image = _field()
    signal = {
        "data": image,
        "axes": [{"scale": 0.5, "units": "nm"}, {"scale": 0.5, "units": "nm"}],
        "metadata": {"Signal": {"quantity": "Intensity"}},
    }
    monkeypatch.setattr(rsciio.digitalmicrograph, "file_reader", lambda path: [signal])
    (tmp_path / "a.dm4").write_bytes(b"stub")
    picture = read_format(tmp_path / "a.dm4")
    assert picture.kind == "dm" and picture.unit == "nm" and picture.pixel_size == (0.5, 0.5)
    assert picture.value_unit == "Intensity"
    np.testing.assert_array_equal(picture.values[..., 0], image)


def test_missing_reader_and_corrupt_files_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "x.gwy").write_bytes(b"GWYPnot really")
    (tmp_path / "x.dm3").write_bytes(b"\0" * 64)
    (tmp_path / "x.tif").write_bytes(b"II*\0garbage")
    for name in ("x.gwy", "x.dm3", "x.tif"):
        with pytest.raises(MagsrError, match="cannot read") as info:
            read_format(tmp_path / name)
        assert "\n" not in str(info.value)
    for module, suffix in (("gwyfile", "gwy"), ("rsciio.digitalmicrograph", "dm3"),
                           ("igor2", "ibw")):  # fmt: skip
        monkeypatch.setitem(sys.modules, module, None)
        (tmp_path / f"y.{suffix}").write_bytes(b"x")
        with pytest.raises(MagsrError, match=r"install magsr-tf\[formats\]"):
            read_format(tmp_path / f"y.{suffix}")


def test_colour_rule(tmp_path):
    rng = np.random.default_rng(SEED)
    grey = rng.integers(0, 256, (6, 9)).astype(np.uint8)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "grey_rgb.png")
    rgba = np.dstack([grey] * 3 + [np.full_like(grey, 255)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "grey_rgba.png")  # opaque alpha dropped
    for name in ("grey_rgb.png", "grey_rgba.png"):
        np.testing.assert_array_equal(read_image(tmp_path / name), grey)
    Image.fromarray(rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(MagsrError, match="colour .RGB. picture whose channels differ"):
        read_image(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rng.integers(0, 256, (6, 9, 3)).astype(np.uint8),
                     photometric="rgb")  # fmt: skip
    with pytest.raises(MagsrError, match="greyscale"):
        read_picture(tmp_path / "rgb.tif")


def _cli_cases(tmp_path):
    rng = np.random.default_rng(SEED)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((40, 40), 7, np.uint8)).save(tmp_path / "flat.png")
    Image.fromarray(np.full((1, 1), 7, np.uint8)).save(tmp_path / "dot.png")
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((40, 40), np.float32))
    (tmp_path / "cut.tif").write_bytes(b"II*\0\x08\0\0\0")
    return {
        "rgb.png": "channels differ",
        "flat.png": "constant",
        "dot.png": "1x1 pixels",
        "flat.tif": "constant",
        "cut.tif": "cannot read",
    }


def test_bad_pictures_through_the_cli(tmp_path, monkeypatch, capsys):
    cases = _cli_cases(tmp_path)
    for name, fragment in cases.items():
        args = ("fit-image", tmp_path / name, "--no-network", "--prior", "exchange")
        code, captured = call_main(monkeypatch, capsys, *args, "--out", tmp_path / "o")
        lines = captured.err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and fragment in lines[0], (name, captured.err)
    result = run_cli("predict", "typeI_x8", tmp_path / "rgb.png", "--out", tmp_path / "p")
    assert_one_line_error(result, "channels differ")


def test_fit_image_writes_the_sr_with_its_pixel_size(tmp_path):
    from magsr_tf.jobs.fit_image import FitImageConfig, fit_image
    from magsr_tf.priors.image_prior import synthetic_domains

    lr = synthetic_domains((32, 32), 4.0, 2.0, SEED).astype(np.float32)
    write_tiff(tmp_path / "lr.tif", lr[..., None] * 40.0, 0.02, "um")  # in "degrees"
    base = dict(ratio=4, network=False, prior="exchange")
    result = fit_image(
        FitImageConfig(images=(tmp_path / "lr.tif",), out_dir=tmp_path / "t", **base)
    )
    sr = read_format(result.files["sr_tif"])
    assert sr.values.shape == (128, 128, 1) and sr.unit == "um"
    assert sr.pixel_size == pytest.approx((0.005, 0.005))
    np.testing.assert_allclose(sr.values, result.sr, atol=1e-6)
    summary = json.loads(result.files["summary"].read_text())
    assert summary["sr_pixel_size"] == pytest.approx(0.005) and summary["pixel_unit"] == "um"
    assert result.files["scale_figure"].is_file()
    pytest.importorskip("gwyfile")
    write_gwy(tmp_path / "lr.gwy", lr[..., None], 20.0, "nm")
    result = fit_image(
        FitImageConfig(images=(tmp_path / "lr.gwy",), out_dir=tmp_path / "g", **base)
    )
    sr = read_format(result.files["sr_gwy"])
    assert sr.pixel_size == pytest.approx((5.0, 5.0)) and sr.unit == "nm"
    tif = read_format(result.files["sr_tif"])
    assert tif.pixel_size == pytest.approx((5.0, 5.0)) and tif.unit == "nm"
