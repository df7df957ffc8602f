"""Image data: codec, sources (embedded sets, folders, .npz, saved Hugging Face datasets), ImageData, pictures.

Every file is written in tmp_path; the embedded sets ship inside scikit-learn and scikit-image (no network).
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from plume.images import (IMAGE_SETS, ImageData, ImageSet, image_data_from_info, image_grid, images_to_tensor,
                          load_image_data, load_images, save_image_grid, tensor_to_images, trajectory_strip)
from plume.images.grid import PAD_VALUE
from plume.errors import PlumeError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _solid(w: int, h: int, colour=RED) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (h, w, 3)).copy()  # (h, w, 3)


def _write_mixed_folder(root):
    """Two class folders holding every mode and format the loader must read; returns {file name: expected pixel}."""
    (root / "cats").mkdir(parents=True)
    (root / "dogs" / "deeper").mkdir(parents=True)
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)  # (H, W, 4): left half opaque red, right half transparent
    rgba[:, :20] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(root / "cats" / "a_rgba.png")
    Image.fromarray(_solid(24, 24, BLUE)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "cats" / "b_p.png")
    Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16)).save(root / "cats" / "c_16bit.png")  # 32896 / 257 = 128
    Image.fromarray(np.full((50, 30), 200, dtype=np.uint8), "L").save(root / "dogs" / "d_gray.jpg", quality=95)
    la = np.zeros((16, 16, 2), dtype=np.uint8)  # (H, W, 2): black but fully transparent -> white
    Image.fromarray(la, "LA").save(root / "dogs" / "e_la.png")
    Image.fromarray(_solid(48, 64, GREEN)).save(root / "dogs" / "f.bmp")
    Image.fromarray(_solid(20, 20, RED)).save(root / "dogs" / "deeper" / "g.webp", lossless=True)
    frames = [Image.fromarray(_solid(10, 10, c)).convert("P") for c in (BLUE, GREEN)]
    frames[0].save(root / "dogs" / "h.gif", save_all=True, append_images=frames[1:])
    (root / "dogs" / "notes.txt").write_text("not an image")
    return {"a_rgba": None, "b_p": BLUE, "c_16bit": (128,) * 3, "d_gray": (200,) * 3, "e_la": (255,) * 3,
            "f": GREEN, "g": RED, "h": BLUE}


def test_codec_round_trip_is_exact():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)  # (1, 16, 16, 3) every value
    x = images_to_tensor(pixels)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    np.testing.assert_array_equal(tensor_to_images(x), pixels)
    np.testing.assert_array_equal(tensor_to_images(torch.tensor([-3.0, 3.0]).view(1, 1, 1, 2))[0, 0, :, 0], [0, 255])
    with pytest.raises(PlumeError, match="uint8"):
        images_to_tensor(pixels.astype(np.float32))


def test_folder_reads_every_mode_with_class_labels(tmp_path):
    expected = _write_mixed_folder(tmp_path)
    images = load_images(str(tmp_path), image_size=8, progress=False)
    assert images.pixels.shape == (8, 8, 8, 3) and images.pixels.dtype == np.uint8
    assert images.class_names == ["cats", "dogs"]
    np.testing.assert_array_equal(images.labels, [0, 0, 0, 1, 1, 1, 1, 1])
    names = ["a_rgba", "b_p", "c_16bit", "d_gray", "g", "e_la", "f", "h"]  # sorted relative paths: deeper/g.webp 5th
    for name, pixels in zip(names, images.pixels):
        if expected[name] is not None:
            np.testing.assert_allclose(pixels[4, 4], expected[name], atol=3, err_msg=name)
    rgba = images.pixels[0].astype(int)  # alpha composited on white: red left, white right
    np.testing.assert_allclose(rgba[4, :3], [RED] * 3, atol=4)  # Lanczos rings by a unit or two
    np.testing.assert_allclose(rgba[4, -3:], [(255, 255, 255)] * 3, atol=4)
    assert images.loader["source"] == str(tmp_path.resolve()) and images.loader["channels"] == "rgb"
    gray = load_images(str(tmp_path / "cats"), image_size=8, channels="gray", progress=False)
    assert gray.pixels.shape == (3, 8, 8, 1) and gray.labels is None


def test_folder_default_size_and_gray(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((12, 12), 50 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    images = load_images(str(tmp_path), progress=False)
    assert images.pixels.shape == (3, 12, 12, 1) and images.labels is None and images.loader["image_size"] == 12
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "wide.png")
    assert load_images(str(tmp_path), progress=False).pixels.shape == (4, 64, 64, 1)


def test_folder_labels_need_two_class_subfolders(tmp_path):
    for folder in ("only", "only/inner"):
        (tmp_path / folder).mkdir()
        Image.fromarray(_solid(4, 4)).save(tmp_path / folder / "x.png")
    assert load_images(str(tmp_path), progress=False).labels is None  # one first-level subfolder: no classes
    (tmp_path / "other").mkdir()
    Image.fromarray(_solid(4, 4)).save(tmp_path / "other" / "y.png")
    Image.fromarray(_solid(4, 4)).save(tmp_path / "loose.png")
    with pytest.warns(UserWarning, match="ignoring 1 image files.*loose.png"):
        images = load_images(str(tmp_path), progress=False)
    assert images.class_names == ["only", "other"] and images.labels.tolist() == [0, 0, 1]


def test_resize_keeps_proportions_and_crops_the_centre(tmp_path):
    half = np.zeros((32, 32), dtype=np.uint8)  # (H, W) left half black, right half white
    half[:, 16:] = 255
    Image.fromarray(half).save(tmp_path / "half.png")
    stripes = np.concatenate([_solid(20, 20, RED), _solid(20, 20, GREEN), _solid(20, 20, BLUE)], axis=1)  # (20, 60, 3)
    Image.fromarray(stripes).save(tmp_path / "wide.png")
    Image.fromarray(stripes.transpose(1, 0, 2).copy()).save(tmp_path / "tall.png")  # (60, 20, 3)
    half8, tall, wide = load_images(str(tmp_path), image_size=8, progress=False).pixels.astype(int)
    assert (half8[:, :3] < 10).all() and (half8[:, 5:] > 245).all()
    for centred in (tall, wide):  # only the green middle third survives
        np.testing.assert_allclose(centred[2:6, 2:6], np.broadcast_to(GREEN, (4, 4, 3)), atol=8)


@pytest.mark.parametrize("bad_name", ["corrupt.png", "truncated.jpg"])
@pytest.mark.parametrize("image_size", [None, 8])
def test_unreadable_files_stop_or_skip(tmp_path, bad_name, image_size):
    for i in range(3):
        Image.fromarray(_solid(16, 16, (40 * i, 0, 0))).save(tmp_path / f"good{i}.png")
    if bad_name == "corrupt.png":
        (tmp_path / bad_name).write_bytes(np.random.default_rng(0).bytes(300))
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / "full.jpg")
        data = (tmp_path / "full.jpg").read_bytes()
        (tmp_path / "full.jpg").unlink()
        (tmp_path / bad_name).write_bytes(data[: len(data) // 2])
    with pytest.raises(PlumeError, match=rf"{bad_name}.*on_error='skip'.*--on-error skip"):
        load_images(str(tmp_path), image_size=image_size, progress=False)
    with pytest.warns(UserWarning) as caught:
        images = load_images(str(tmp_path), image_size=image_size, on_error="skip", progress=False)
    messages = [str(w.message) for w in caught]
    assert any(bad_name in m for m in messages) and any("skipped 1 of 4" in m for m in messages)
    assert images.pixels.shape == (3, 16 if image_size is None else 8, 16 if image_size is None else 8, 3)


def test_folder_errors_name_the_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images")
    with pytest.raises(PlumeError, match=rf"{tmp_path.name}.*\.png.*\.webp"):
        load_images(str(tmp_path), progress=False)
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning), pytest.raises(PlumeError, match="no readable image"):
        load_images(str(tmp_path), on_error="skip", progress=False)
    with pytest.raises(PlumeError, match="digits.*lfw.*photos.*folder.*npz.*hf:"):
        load_images("no-such-set")
    with pytest.raises(PlumeError, match="not a .npz"):
        load_images(str(tmp_path / "readme.txt"))
    with pytest.raises(PlumeError, match="on_error"):
        load_images("digits", on_error="ignore")
    with pytest.raises(PlumeError, match="channels"):
        load_images("digits", channels="cmyk")


def test_npz_good_and_bad(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)  # (5, 6, 6, 3)
    np.savez(tmp_path / "good.npz", pixels, labels=np.arange(5) % 2)
    images = load_images(str(tmp_path / "good.npz"))
    np.testing.assert_array_equal(images.pixels, pixels)
    np.testing.assert_array_equal(images.labels, [0, 1, 0, 1, 0])
    assert images.name == "good" and images.loader["source"] == str((tmp_path / "good.npz").resolve())
    np.savez(tmp_path / "gray.npz", images=pixels[..., 0])  # (N, H, W)
    assert load_images(str(tmp_path / "gray.npz"), image_size=3).pixels.shape == (5, 3, 3, 1)
    cases = {"keys": ({"x": pixels}, r"'arr_0' or 'images', found \['x'\]"),
             "dtype": ({"arr_0": pixels / 255.0}, r"float64.*uint8.*np.rint"),
             "dims": ({"arr_0": np.zeros((5, 6, 6, 4), np.uint8)}, r"shape \(5, 6, 6, 4\).*NHWC"),
             "count": ({"arr_0": pixels, "labels": np.arange(4)}, r"4 labels for 5 images"),
             "label type": ({"arr_0": pixels, "labels": np.zeros(5)}, r"'labels'.*float64.*integer")}
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(PlumeError, match=rf"{name}\.npz.*{message}"):
            load_images(str(tmp_path / f"{name}.npz"))


def test_digits():
    from sklearn.datasets import load_digits

    images = load_images("digits")
    assert images.pixels.shape == (1797, 8, 8, 1) and images.pixels.dtype == np.uint8
    assert images.pixels.min() == 0 and images.pixels.max() == 255
    assert set(np.unique(images.pixels)) <= {round(v * 255 / 16) for v in range(17)}
    np.testing.assert_array_equal(images.labels, load_digits().target)
    assert "digits" in IMAGE_SETS and images.class_names == [str(d) for d in range(10)]
    subset = load_images("digits", limit=100, seed=3, channels="rgb", image_size=16)
    assert subset.pixels.shape == (100, 16, 16, 3)
    np.testing.assert_array_equal(subset.pixels, load_images("digits", limit=100, seed=3, channels="rgb",
                                                             image_size=16).pixels)


def test_lfw_and_photos_offline():
    lfw = load_images("lfw")
    assert lfw.pixels.shape == (200, 25, 25, 1) and lfw.class_names == ["face", "non-face"]
    np.testing.assert_array_equal(lfw.labels, [0] * 100 + [1] * 100)
    photos = load_images("photos")
    assert photos.pixels.shape == (4096, 32, 32, 3) and set(np.unique(photos.labels)) == set(range(5))
    small = load_images("photos", image_size=16, limit=50, seed=1)
    assert small.pixels.shape == (50, 16, 16, 3) and small.loader["limit"] == 50
    np.testing.assert_array_equal(small.pixels, load_images("photos", image_size=16, limit=50, seed=1).pixels)
    assert not np.array_equal(small.pixels, load_images("photos", image_size=16, limit=50, seed=2).pixels)
    assert load_images("photos", limit=4, channels="gray").pixels.shape == (4, 32, 32, 1)


def test_missing_optional_libraries(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(PlumeError, match=r"pip install 'plume\[images\]'"):
        load_images("lfw")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(PlumeError, match=r"pip install 'plume\[hf\]'"):
        load_images(f"hf:{tmp_path}")


def test_hugging_face_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    pictures = [Image.fromarray(_solid(12 + 4 * i, 12, c)) for i, c in enumerate((RED, GREEN, BLUE))]
    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=["warm", "cold"])})
    ds = datasets.Dataset.from_dict({"picture": pictures, "kind": [0, 1, 1]}, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "tiny"))
    images = load_images(f"hf:{tmp_path / 'tiny'}", image_size=6, progress=False)
    assert images.pixels.shape == (3, 6, 6, 3) and images.class_names == ["warm", "cold"]
    np.testing.assert_array_equal(images.labels, [0, 1, 1])
    np.testing.assert_allclose(images.pixels[:, 3, 3], [RED, GREEN, BLUE], atol=2)
    assert images.loader["source"] == f"hf:{(tmp_path / 'tiny').resolve()}"
    with pytest.raises(PlumeError, match="no-such"):
        load_images(f"hf:{tmp_path / 'no-such'}")


def _asymmetric(n: int) -> ImageSet:
    """n gray 4 x 4 images, each unlike its mirror (a bright left column), labelled 0, 1, 2, 0, ..."""
    pixels = np.zeros((n, 4, 4, 1), dtype=np.uint8)  # (n, 4, 4, 1): a bright left column
    pixels[:, :, 0] = 255
    pixels[:, :, 1:] = (np.arange(n) % 200)[:, None, None, None]
    return ImageSet(pixels, np.arange(n) % 3, None, "asym")


def test_image_data_batch_is_deterministic_and_flips_half():
    index = torch.arange(0, 1000, 3)  # (334,)
    plain = ImageData(_asymmetric(1000))
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert torch.equal(plain.batch(index, g), plain.data[index])
    assert torch.equal(g.get_state(), state)  # no generator use without flip
    assert plain.shape == (1, 4, 4) and len(plain) == 1000 and plain.num_classes == 3
    assert plain.labels.dtype == torch.long and plain.labels.shape == (1000,)
    flip = ImageData(_asymmetric(1000), flip=True)
    a = flip.batch(index, torch.Generator().manual_seed(7))
    b = flip.batch(index, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == torch.float32
    mirrored = (a != plain.data[index]).flatten(1).any(1)  # (B,)
    torch.testing.assert_close(a[mirrored], plain.data[index][mirrored].flip(-1))
    assert 0.4 < mirrored.float().mean() < 0.6


def test_info_rebuilds_identical_data(tmp_path):
    _write_mixed_folder(tmp_path)
    data = load_image_data(str(tmp_path), flip=True, limit=5, seed=2, progress=False)
    info = json.loads(json.dumps(data.info()))
    assert info["kind"] == "images" and info["num_classes"] == 2 and info["flip"] is True
    again = image_data_from_info(info)
    assert torch.equal(again.data, data.data) and torch.equal(again.labels, data.labels) and again.flip
    photos = load_image_data("photos", limit=20, image_size=8)
    assert torch.equal(image_data_from_info(json.loads(json.dumps(photos.info()))).data, photos.data)
    with pytest.raises(PlumeError, match="loader"):
        image_data_from_info({"kind": "images", "loader": {"source": "digits", "size": 3}})


def test_image_grid_layout_and_tiles(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)  # (5, 8, 8, 1)
    grid = image_grid(images)  # 3 columns, 2 rows, scale 6 -> 48 px tiles, 2 px padding
    assert grid.shape == (2 * 50 + 2, 3 * 50 + 2, 3) and grid.dtype == np.uint8
    tile = grid[52:100, 52:100]  # images[4]: row 1, column 1
    np.testing.assert_array_equal(tile, np.repeat(np.repeat(images[4], 6, 0), 6, 1).repeat(3, -1))
    assert (grid[:2] == PAD_VALUE).all() and (grid[52:100, 102:150] == PAD_VALUE).all()  # border, empty cell
    assert image_grid(images, columns=5, padding=0, scale=1).shape == (8, 40, 3)
    path = save_image_grid(images, tmp_path / "a" / "grid.png", title="digits")
    saved = np.asarray(Image.open(path))
    assert saved.shape[1] == grid.shape[1] and saved.shape[0] > grid.shape[0]
    data = ImageData(_asymmetric(4))
    assert data.render(data.data, "title").shape[0] > data.render(data.data).shape[0]
    np.testing.assert_array_equal(data.to_uint8(data.data), data.images.pixels)


def test_trajectory_strip_layout():
    rng = np.random.default_rng(0)
    xt = [rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8) for _ in range(3)]  # 3 steps of 2 samples
    x0 = [rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8) for _ in range(3)]
    strip = trajectory_strip(xt, x0)  # rows: sample 0 x_t, sample 0 x0_hat, sample 1 x_t, sample 1 x0_hat
    assert strip.shape[0] == 4 * 50 + 2 and strip.shape[1] > 3 * 50 + 2
    left = strip.shape[1] - (3 * 50 + 2)  # row names stand left of the tiles
    big = lambda im: np.repeat(np.repeat(im, 6, 0), 6, 1)  # noqa: E731
    np.testing.assert_array_equal(strip[2 + 2 * 50: 50 + 2 * 50, left + 2 + 100: left + 150], big(xt[2][1]))
    np.testing.assert_array_equal(strip[2 + 3 * 50: 50 + 3 * 50, left + 2: left + 50], big(x0[0][1]))
    titled = trajectory_strip(xt, x0, labels=["sigma=80.0", "sigma=1.0", "sigma=0.002"])
    assert titled.shape[0] > strip.shape[0]
    with pytest.raises(PlumeError, match="labels"):
        trajectory_strip(xt, x0, labels=["one"])
