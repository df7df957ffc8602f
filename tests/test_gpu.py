"""The GPU path: training under bf16 / fp16 autocast on CUDA with the U-Net and the DiT, and attention that runs
on the fused scaled-dot-product kernels (not the math fallback). Skipped where there is no CUDA device."""
import math

import pytest
import torch

from plume import Denoiser, backbone
from plume.train import TrainConfig, load_checkpoint, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

NETS = {
    "unet": dict(in_channels=3, channels=[32, 64], attention_levels=[1], head_channels=32, norm_groups=8),
    "dit": dict(in_channels=3, image_size=16, patch_size=2, width=64, depth=2, heads=2),
}


@cuda
@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda(tmp_path, name, precision):
    torch.manual_seed(0)
    den = Denoiser(backbone(name, **NETS[name]), "edm", "edm", "edm", "lognormal", sigma_data=0.5).cuda()
    data = torch.rand(256, 3, 16, 16) * 2 - 1
    config = TrainConfig(steps=20, batch_size=32, lr=1e-3, precision=precision, sample_count=4, sample_steps=4,
                         checkpoint_every=10)
    result = train(den, data, tmp_path / "run", config, progress=False)
    assert result.step == 20 and math.isfinite(result.last_loss), result.last_loss  # neither NaN nor inf
    ck = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in ck.model.values())
    assert all(v.dtype == torch.float32 for v in ck.model.values() if v.is_floating_point())  # master weights stay fp32
    if precision == "fp16":
        assert "scaler" in ck.config and ck.config["scaler"]["scale"] > 0


@cuda
@pytest.mark.parametrize("name", NETS)
def test_attention_runs_on_fused_kernels_under_bf16(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    net = backbone(name, **NETS[name]).cuda()
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():  # zero-initialised output layers: give the comparison something to compare
                p.normal_(0, 0.02)
    x, level = torch.randn(4, 3, 16, 16, device="cuda"), torch.zeros(4, device="cuda")
    reference = net(x, level)
    with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel([SDPBackend.FLASH_ATTENTION,
                                                                    SDPBackend.EFFICIENT_ATTENTION]):
        fused = net(x, level)  # raises if only the math kernel could run
    assert torch.isfinite(fused).all()
    # bf16 keeps 8 significant bits (unit roundoff 2^-8, about 0.4%), so the error scales with the output: under CPU
    # bf16 autocast these nets are off by about 1% of the output's RMS and of its largest entry. The bounds are 3 and
    # 5 times that, relative to the output's norm and largest entry (whatever its size and magnitude).
    error, reference = (fused.float() - reference).detach(), reference.detach()  # (4, 3, 16, 16) each
    assert float(error.norm() / reference.norm()) < 3e-2, float(error.norm() / reference.norm())
    assert float(error.abs().max()) < 5e-2 * float(reference.abs().max()), (error.abs().max(), reference.abs().max())


@cuda
@pytest.mark.parametrize("name", NETS)
def test_compiled_training_and_sampling_on_cuda(tmp_path, name):
    import plume
    torch.manual_seed(0)
    den = Denoiser(backbone(name, **NETS[name]), "edm", "edm", "edm", "lognormal", sigma_data=0.5).cuda()
    data = torch.rand(256, 3, 16, 16) * 2 - 1
    config = TrainConfig(steps=10, batch_size=32, lr=1e-3, compile=True, sample_count=4, sample_steps=4)
    result = train(den, data, tmp_path / "run", config, progress=False)
    assert result.step == 10 and result.skipped_steps == 0
    assert set(load_checkpoint(tmp_path / "run").model) == set(backbone(name, **NETS[name]).state_dict())
    x = plume.sample(den.eval(), den.process, (8, 3, 16, 16), steps=4, device="cuda")
    assert x.is_cuda and torch.isfinite(x).all()


@cuda
def test_non_finite_model_outputs_are_caught_after_a_gpu_sampling_loop():
    import plume
    with pytest.raises(plume.PlumeError, match="NaN or inf during sampling"):
        plume.sample(lambda x, t: x * float("nan"), "vp", (4, 3), steps=3, device="cuda")
