"""Image backbones (U-Net, DiT) and the shared embeddings: shapes, zero-init, labels, errors, options, presets,
attention against a naive softmax(QK^T / sqrt(d)) V, gradient flow, memory formats, and a tiny overfit."""
import json
import math

import pytest
import torch
from torch.nn import functional as F

from plume import Denoiser, PlumeError
from plume.backbones import BACKBONES, PRESETS, DiT, UNet, backbone, backbone_name
from plume.backbones.attention import SelfAttention
from plume.backbones.unet import AttentionBlock

SMALL = {
    "unet": {"channels": [16, 32], "blocks_per_level": 1, "norm_groups": 8, "head_channels": 16, "embed_features": 16},
    "dit": {"image_size": 8, "patch_size": 2, "width": 32, "depth": 2, "heads": 2, "embed_features": 16},
}


def small(name, **options):
    torch.manual_seed(0)
    return backbone(name, **{"in_channels": 1, **SMALL[name], **options})


def perturb(net, scale=0.1):
    """Move every parameter off its (partly zero) initialisation so outputs depend on all of them."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def adam_steps(net, steps, cond=None, lr=1e-2):
    """`steps` Adam steps on a fixed regression; returns the grads of the last step by parameter name."""
    g = torch.Generator().manual_seed(2)
    x, target = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    noise_level = torch.randn(4, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(net(x, noise_level, cond), target).backward()
        grads = {name: p.grad.clone() if p.grad is not None else None for name, p in net.named_parameters()}
        opt.step()
    return grads


@pytest.mark.parametrize("in_channels,out_channels,channels,size", [
    (1, None, [16, 32], (8, 8)), (3, 6, [16, 32, 32], (16, 12)), (2, None, [16], (5, 7))])
def test_unet_shapes_and_zero_output_at_init(in_channels, out_channels, channels, size):
    net = UNet(in_channels, out_channels, channels, 1, [len(channels) - 1], 16, norm_groups=8, embed_features=16)
    x = torch.randn(3, in_channels, *size)
    out = net(x, torch.randn(3))
    assert out.shape == (3, out_channels or in_channels, *size)
    assert torch.count_nonzero(out) == 0
    assert perturb(net)(x, torch.randn(3)).abs().min() > 0


@pytest.mark.parametrize("in_channels,out_channels,size,patch", [(1, None, 8, 2), (3, 6, [8, 12], 4), (2, None, [6, 4], 1)])
def test_dit_shapes_and_zero_output_at_init(in_channels, out_channels, size, patch):
    net = DiT(in_channels, size, patch, width=32, depth=2, heads=4, out_channels=out_channels, embed_features=16)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    x = torch.randn(3, in_channels, *hw)
    out = net(x, torch.randn(3))
    assert out.shape == (3, out_channels or in_channels, *hw)
    assert torch.count_nonzero(out) == 0
    assert perturb(net)(x, torch.randn(3)).abs().min() > 0


def test_unpatchify_inverts_patchify_order():
    """Token i of patchify holds patch (i // w, i % w); unpatchify must put it back there."""
    net = DiT(2, [4, 6], 2, width=8, depth=0, heads=2)
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    tokens = x.reshape(1, 2, 2, 2, 3, 2).permute(0, 2, 4, 3, 5, 1).reshape(1, 6, 8)  # (B, L, p*p*C) as p, q, c
    torch.testing.assert_close(net.unpatchify(tokens), x)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_labels_change_the_output_and_none_is_the_null_label(name):
    net = small(name, num_classes=3)
    adam_steps(net, 3, cond=torch.tensor([0, 1, 2, 1]))
    x, n = torch.randn(2, 1, 8, 8), torch.zeros(2)
    a, b = net(x, n, torch.tensor([0, 0])), net(x, n, torch.tensor([1, 1]))
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(net(x, n), net(x, n, torch.tensor([3, 3])))
    torch.testing.assert_close(net(x, n[0]), net(x, n), msg="a scalar noise level is expanded to the batch")


@pytest.mark.parametrize("make,call,match", [
    (lambda: small("unet"), lambda m: m(torch.randn(2, 3, 8, 8), torch.zeros(2)), r"takes images \(B, 1, H, W\)"),
    (lambda: small("unet", channels=[16, 32, 32]), lambda m: m(torch.randn(2, 1, 25, 25), torch.zeros(2)),
     r"divide by 4; got 25x25: pad or crop to H in \[24, 28\].*at most 1 level"),
    (lambda: small("unet", num_classes=3), lambda m: m(torch.randn(2, 1, 8, 8), torch.zeros(2), torch.tensor([0, 4])),
     r"class labels must lie in 0\.\.2 \(3 = no label\), got values from 0 to 4"),
    (lambda: small("dit", num_classes=3), lambda m: m(torch.randn(2, 1, 8, 8), torch.zeros(2), torch.tensor([0.0, 1.0])),
     r"class labels must be integers shaped \(2,\)"),
    (lambda: small("dit"), lambda m: m(torch.randn(2, 1, 8, 8), torch.zeros(2), torch.tensor([0, 1])),
     "built without num_classes"),
    (lambda: small("dit"), lambda m: m(torch.randn(2, 1, 16, 16), torch.zeros(2)), r"takes images \(B, 1, 8, 8\)"),
    (lambda: small("unet"), lambda m: m(torch.randn(2, 1, 8, 8), torch.zeros(2, 1)), r"noise_level must be .* \(2,\)"),
    (lambda: small("unet", channels=[12, 24]), None, r"norm_groups=8.*use norm_groups in \[1, 2, 3, 4, 6, 12\]"),
    (lambda: small("unet", head_channels=12), None, r"head_channels dividing"),
    (lambda: small("unet", attention_levels=[2]), None, r"attention_levels \[2\].*valid levels: 0\.\.1"),
    (lambda: small("dit", image_size=25), None, r"25x25 does not divide into 2x2 patches; use patch_size in \[1, 5, 25\]"),
    (lambda: small("dit", width=30), None, "multiple of 4"),
    (lambda: backbone("unet", preset="huge"), None, "unknown unet preset 'huge'; valid presets: tiny, small, base"),
    (lambda: backbone("mlp", preset="tiny", dim=2), None, "has no presets"),
    (lambda: backbone("unet", depth=3), None, "has no option 'depth'"),
])
def test_invalid_inputs_say_what_to_change(make, call, match):
    with pytest.raises(PlumeError, match=match):
        net = make()
        call(net)


@pytest.mark.parametrize("name", ["mlp", "unet", "dit"])
def test_options_round_trip(name):
    net = backbone("mlp", dim=3, num_classes=2) if name == "mlp" else small(name, num_classes=2)
    options = json.loads(json.dumps(net.options()))
    twin = backbone(backbone_name(net), **options)
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    assert twin.options() == net.options()


def test_mlp_keeps_its_checkpoint_keys():
    keys = set(backbone("mlp", dim=2, num_classes=3).state_dict())
    assert {"label_embed.weight", "noise_embed.mlp.0.weight", "noise_embed.mlp.2.bias"} <= keys


def test_presets_build_with_overrides():
    assert set(PRESETS) <= set(BACKBONES)
    with torch.device("meta"):  # the shapes without the memory: DiT-XL has 675M parameters
        sizes = {(name, p): sum(t.numel() for t in backbone(name, p, in_channels=3, **({"image_size": 32} if name == "dit" else {}))
                                .parameters()) for name in PRESETS for p in PRESETS[name]}
    # Peebles & Xie 2023, Table 1 (DiT-S/B/L/XL: 33M, 130M, 458M, 675M); DDPM CIFAR-10 35.7M (ours: scale-shift norm).
    for preset, paper in {"S": 33e6, "B": 130e6, "L": 458e6, "XL": 675e6}.items():
        assert abs(sizes["dit", preset] / paper - 1) < 0.02
    assert 35e6 < sizes["unet", "base"] < 40e6
    net = backbone("unet", "tiny", in_channels=1, channels=[16, 32, 32], num_classes=10)
    assert net.options()["channels"] == [16, 32, 32] and net.options()["norm_groups"] == 8
    assert net(torch.randn(2, 1, 8, 8), torch.zeros(2)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_overfits_a_tiny_batch(name):
    den = Denoiser(small(name), "vp", "eps")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 1, 8, 8, generator=g), torch.randn(8, 1, 8, 8, generator=g)
    t = torch.linspace(0.2, 0.9, 8)
    opt = torch.optim.Adam(den.backbone.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = den.loss(x0, t=t, noise=noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::8]


def naive_attention(x, qkv, proj, heads):
    """softmax(Q K^T / sqrt(d)) V per head, written out with loops over heads (Vaswani et al. 2017, eq. 1)."""
    q, k, v = qkv(x).chunk(3, dim=-1)  # (B, L, C) each
    d = x.shape[-1] // heads
    outs = []
    for i in range(heads):
        qi, ki, vi = (t[..., i * d:(i + 1) * d] for t in (q, k, v))
        outs.append(torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(d), dim=-1) @ vi)
    return proj(torch.cat(outs, dim=-1))


@pytest.mark.parametrize("length", [10, 40, 200])  # CPU kernels: math in training and inference, math / flash, flash
def test_attention_equals_the_naive_formula(length):
    torch.manual_seed(0)
    attn = SelfAttention(24, 3)
    x = torch.randn(2, length, 24, requires_grad=True)
    out, expected = attn(x), naive_attention(x, attn.qkv, attn.proj, 3)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, [x, attn.qkv.weight], grad)
    naive = torch.autograd.grad(expected, [x, attn.qkv.weight], grad)
    for a, b in zip(ours, naive):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(attn(x.detach()), expected.detach(), rtol=1e-5, atol=1e-5)
    block = perturb(AttentionBlock(32, 8, 4))
    image = torch.randn(2, 32, 3, 5)
    tokens = block.norm(image).flatten(2).transpose(1, 2)  # (B, HW, C)
    expected = image + naive_attention(tokens, block.attn.qkv, block.attn.proj, 4).transpose(1, 2).reshape(2, 32, 3, 5)
    torch.testing.assert_close(block(image), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_fused_attention_kernel_accepts_our_layout(name):
    """Under the flash backend alone SDPA raises if q, k, v are laid out so that it would fall back to math (a
    caller's sdpa_kernel choice also overrides SelfAttention's own CPU choice of math for short sequences)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    net, x = perturb(small(name)), torch.randn(2, 1, 8, 8)
    reference = net(x, torch.zeros(2))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        torch.testing.assert_close(net(x, torch.zeros(2)), reference)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_gradient_reaches_every_parameter(name):
    """Zero-initialised layers pass no gradient at first: step 1 reaches the output layer, step 2 the zero-init
    layers (gates, last convs), step 3 everything."""
    net = small(name, num_classes=2)
    first = adam_steps(net, 1, cond=torch.tensor([0, 1, 2, 1]))
    assert [k for k, g in first.items() if g is not None and g.abs().max() > 0] == [k for k in first if k.startswith("out.")]
    net = small(name, num_classes=2)
    grads = adam_steps(net, 3, cond=torch.tensor([0, 1, 2, 1]))
    assert [k for k, g in grads.items() if g is None or g.abs().max() == 0] == []


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_channels_last_input_gives_the_same_output(name):
    net, x = perturb(small(name, in_channels=3)), torch.randn(2, 3, 8, 8)
    out = net(x, torch.zeros(2))
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last), torch.zeros(2)), out,
                               rtol=1e-4, atol=1e-5)
    net = net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last), torch.zeros(2)), out,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["unet", "dit"])
def test_cuda_bfloat16_autocast_is_close_and_uses_fused_attention(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    options = {"channels": [64, 128], "norm_groups": 32, "head_channels": 64} if name == "unet" else {"width": 128, "heads": 2}
    net = perturb(small(name, in_channels=3, num_classes=4, **options), 0.02).cuda()
    x, n, c = torch.randn(4, 3, 8, 8, device="cuda"), torch.randn(4, device="cuda"), torch.tensor([0, 1, 2, 4], device="cuda")
    reference = net(x, n, c)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = net(x, n, c)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):  # raises if it would fall back
            fused = net(x.contiguous(memory_format=torch.channels_last), n, c)
        with sdpa_kernel(SDPBackend.MATH):
            math_out = net(x, n, c)
    assert torch.isfinite(out).all() and out.dtype == torch.bfloat16
    scale = reference.abs().max()
    assert (out.float() - reference).abs().max() < 0.05 * scale
    assert (fused.float() - math_out.float()).abs().max() < 0.05 * scale
