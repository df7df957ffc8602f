"""Checkpoints: round trip, readable errors for every kind of damage, atomic saves, and no pickle anywhere."""
import json
import re
import shutil
from pathlib import Path

import pytest
import safetensors
import torch

from plume import Denoiser, PlumeError, backbone
from plume.backbones import BACKBONES
from plume.train import EMA, load_checkpoint, load_denoiser, read_config, save_checkpoint
from plume.train import checkpoint as ckpt_module
from plume.train.checkpoint import FORMAT_VERSION, build_denoiser, denoiser_config



def trained_parts(seed: int = 0):
    """A small denoiser after two AdamW steps (so the optimizer has state), its EMA and optimizer."""
    torch.manual_seed(seed)
    den = Denoiser(backbone("mlp", dim=3, width=16, depth=2, num_classes=4), "vp", "v", "min-snr", "logsnr")
    opt = torch.optim.AdamW(den.backbone.parameters(), lr=1e-2)
    ema = EMA(den.backbone, 0.9)
    g = torch.Generator().manual_seed(seed)
    for step in range(2):
        den.loss(torch.randn(8, 3, generator=g), generator=g, cond=torch.randint(0, 4, (8,), generator=g)).mean().backward()
        opt.step()
        opt.zero_grad()
        ema.update(den.backbone, step)
    return den, ema, opt


def save(directory: Path, seed: int = 0, step: int = 2):
    den, ema, opt = trained_parts(seed)
    save_checkpoint(directory, {**denoiser_config(den), "step": step}, den.backbone, ema, opt)
    return den, ema, opt


def test_round_trip(tmp_path):
    den, ema, opt = save(tmp_path / "run" / "checkpoint")
    ck = load_checkpoint(tmp_path / "run")  # a run directory or the checkpoint directory itself
    assert ck.step == 2 and ck.path == tmp_path / "run" / "checkpoint"
    for key, value in den.backbone.state_dict().items():
        assert torch.equal(ck.model[key], value)
        assert torch.equal(ck.ema[key], ema.shadow[key])
    twin = Denoiser(backbone("mlp", **den.backbone.options()))
    twin.backbone.load_state_dict(ck.model)
    opt2 = torch.optim.AdamW(twin.backbone.parameters(), lr=1.0)
    opt2.load_state_dict(ck.optimizer)
    a, b = opt.state_dict(), opt2.state_dict()
    assert json.dumps(a["param_groups"]) == json.dumps(b["param_groups"])
    for index, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(b["state"][index][name], value), (index, name)

    x, t, c = torch.randn(5, 3), torch.rand(5) * 0.9 + 0.05, torch.tensor([0, 1, 2, 3, 0])
    for use_ema, weights in ((True, ema.shadow), (False, den.backbone.state_dict())):
        loaded = load_denoiser(tmp_path / "run", ema=use_ema)
        reference = Denoiser(backbone("mlp", **den.backbone.options()), den.process, "v", "min-snr", "logsnr")
        reference.backbone.load_state_dict(weights)
        assert loaded.options() == den.options()
        assert torch.equal(loaded(x, t, c), reference(x, t, c))

    for model, optimizer in ((den.backbone, opt), (twin.backbone, opt2)):  # the restored optimizer steps alike
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
    assert all(torch.equal(p, q) for p, q in zip(den.backbone.parameters(), twin.backbone.parameters()))


def test_build_denoiser_inverts_denoiser_config():
    den = Denoiser(backbone("mlp", dim=2, width=8, depth=1), "edm", "edm", "edm", "lognormal", sigma_data=0.5)
    again = build_denoiser(json.loads(json.dumps(denoiser_config(den))))
    assert denoiser_config(again) == denoiser_config(den)
    shifted = Denoiser(backbone("mlp", dim=2, width=8, depth=1), "edm", "edm", "edm", "lognormal", sigma_data=0.1,
                       lognormal_mean=-2.8)
    assert build_denoiser(json.loads(json.dumps(denoiser_config(shifted)))).lognormal_mean == -2.8
    old = json.loads(json.dumps(denoiser_config(den)))
    del old["denoiser"]["lognormal_mean"]  # a config from before the option: EDM's P_mean
    assert build_denoiser(old).lognormal_mean == -1.2


def test_lognormal_time_sampling_is_centred_on_the_denoisers_mean():
    for mean in (-1.2, -2.8):
        den = Denoiser(backbone("mlp", dim=2, width=8, depth=1), "edm", "edm", "edm", "lognormal", sigma_data=0.5,
                       lognormal_mean=mean)
        s = den.process.sigma_ratio(den.draw_times(20000, torch.Generator().manual_seed(0)))  # (20000,) levels
        assert s.log().median().item() == pytest.approx(mean, abs=0.05)
        assert s.log().std().item() == pytest.approx(1.2, abs=0.05)


def test_files_are_safetensors_and_json_only_and_no_pickle_in_the_source(tmp_path):
    save(tmp_path / "ck")
    for path in (tmp_path / "ck").iterdir():
        assert path.suffix in (".json", ".safetensors"), path
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80") and head != b"PK\x03\x04", f"{path} looks like a pickle or torch zip"
        if path.suffix == ".safetensors":
            with safetensors.safe_open(str(path), framework="pt") as f:
                assert len(list(f.keys())) > 0
        else:
            json.loads(path.read_text())
    source = Path(ckpt_module.__file__).parents[1]
    # Plume writes no pickle; it reads third-party .pth weights (FID Inception) only with torch's restricted
    # weights_only unpickler, which runs no code.
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.|(?<![\w.])torch\.save\(|"
                         r"(?<![\w.])torch\.load\((?![^)]*weights_only=True)")  # not safetensors.torch
    offenders = [str(p) for p in source.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders, f"pickle-based serialisation in {offenders}"


def test_missing_directory_and_missing_files(tmp_path):
    with pytest.raises(PlumeError, match="does not exist"):
        load_denoiser(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlumeError, match="no Plume checkpoint"):
        load_denoiser(tmp_path / "empty")
    save(tmp_path / "ck")
    (tmp_path / "ck" / "ema.safetensors").unlink()
    with pytest.raises(PlumeError, match=r"ema\.safetensors is missing; the checkpoint is incomplete"):
        load_denoiser(tmp_path / "ck")


def test_corrupt_or_truncated_safetensors(tmp_path):
    save(tmp_path / "ck")
    path = tmp_path / "ck" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(PlumeError, match=r"model\.safetensors is corrupt"):
        load_denoiser(tmp_path / "ck", ema=False)
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(PlumeError, match=r"model\.safetensors is truncated or corrupt: \d+ bytes"):
        load_denoiser(tmp_path / "ck", ema=False)
    # without the recorded size and hash, safetensors' own header check still turns into one readable error
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["files"]["model.safetensors"] = {}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PlumeError, match=r"model\.safetensors is not a readable safetensors file"):
        load_denoiser(tmp_path / "ck", ema=False)


def test_bad_json_other_version_and_missing_fields(tmp_path):
    save(tmp_path / "ck")
    config_path = tmp_path / "ck" / "config.json"
    good = json.loads(config_path.read_text())
    config_path.write_text('{"format_version": 1, "step": ')
    with pytest.raises(PlumeError, match=r"config\.json is not valid JSON \(line 1, column"):
        load_denoiser(tmp_path / "ck")
    config_path.write_text(json.dumps({**good, "format_version": FORMAT_VERSION + 1, "plume_version": "9.9"}))
    with pytest.raises(PlumeError) as info:
        load_denoiser(tmp_path / "ck")
    message = str(info.value)
    assert f"format version {FORMAT_VERSION + 1} (written by Plume 9.9)" in message
    assert f"reads format version {FORMAT_VERSION}" in message
    config_path.write_text(json.dumps({k: v for k, v in good.items() if k != "backbone"}))
    with pytest.raises(PlumeError, match=r"has no field 'backbone\.name'"):
        read_config(tmp_path / "ck")
    config_path.write_text(json.dumps({**good, "backbone": {"name": "nope", "options": {}}}))
    with pytest.raises(PlumeError, match=r"config\.json: unknown backbone 'nope'; valid backbones: " + ", ".join(sorted(BACKBONES))):
        load_denoiser(tmp_path / "ck")
    wider = {**good["backbone"], "options": {**good["backbone"]["options"], "width": 32}}
    config_path.write_text(json.dumps({**good, "backbone": wider}))
    with pytest.raises(PlumeError, match=r"does not fit the backbone in config\.json; wrong shape"):
        load_denoiser(tmp_path / "ck")


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    directory = tmp_path / "run" / "checkpoint"
    save(directory, seed=0, step=1)
    before = load_denoiser(directory).backbone.state_dict()

    real_write, calls = ckpt_module.write_file, []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 2:  # the second file: write half of it, then "crash"
            path.write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(ckpt_module, "write_file", failing_write)
    with pytest.raises(OSError):
        save(directory, seed=1, step=2)
    monkeypatch.undo()
    assert read_config(directory)["step"] == 1
    after = load_denoiser(directory).backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint"]  # no temporary left behind

    # a crash between the two renames leaves only checkpoint.old: loading finds it, the next save restores it
    shutil.move(directory, directory.with_name("checkpoint.old"))
    assert read_config(tmp_path / "run")["step"] == 1
    save(directory, seed=2, step=3)
    assert read_config(directory)["step"] == 3
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint"]
