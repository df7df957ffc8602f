"""Feature networks (plume.images.evaluation.features, inception, dinov2) with randomly initialised weights: no
pretrained file exists here, so these check the architecture's shape and size, the file rules and the plumbing,
not agreement with the published networks' outputs."""
import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from plume.errors import PlumeError
from plume.images.evaluation import (FEATURE_NETWORKS, DINOv2, FIDInceptionV3, feature_network, load_dinov2,
    load_inception)
from plume.images.evaluation.dinov2 import VARIANTS, Attention, dinov2_from_state_dict

INCEPTION_PARAMETERS = 23_850_960  # derived below from the published layer table; torchvision's inception_v3
# (27,161,264 with the aux classifier of 3,326,696 and a 1000-class fc) minus aux, plus 8 more classes: same.
VITS14_PARAMETERS = 22_056_576  # timm's vit_small_patch14_dinov2 (518 px pos_embed): 22.06 M


def published_inception_count(classes=1008):
    """Parameters of the FID Inception-v3 from its layer table (conv c_in, c_out, kh, kw; each conv + BN 2 c_out)."""
    convs = [(3, 32, 3, 3), (32, 32, 3, 3), (32, 64, 3, 3), (64, 80, 1, 1), (80, 192, 3, 3)]
    for c_in, pool in ((192, 32), (256, 64), (288, 64)):  # Mixed_5b-d
        convs += [(c_in, 64, 1, 1), (c_in, 48, 1, 1), (48, 64, 5, 5), (c_in, 64, 1, 1), (64, 96, 3, 3),
                  (96, 96, 3, 3), (c_in, pool, 1, 1)]
    convs += [(288, 384, 3, 3), (288, 64, 1, 1), (64, 96, 3, 3), (96, 96, 3, 3)]  # Mixed_6a
    for c7 in (128, 160, 160, 192):  # Mixed_6b-e
        convs += [(768, 192, 1, 1), (768, c7, 1, 1), (c7, c7, 1, 7), (c7, 192, 7, 1), (768, c7, 1, 1),
                  (c7, c7, 7, 1), (c7, c7, 1, 7), (c7, c7, 7, 1), (c7, 192, 1, 7), (768, 192, 1, 1)]
    convs += [(768, 192, 1, 1), (192, 320, 3, 3), (768, 192, 1, 1), (192, 192, 1, 7), (192, 192, 7, 1),
              (192, 192, 3, 3)]  # Mixed_7a
    for c_in in (1280, 2048):  # Mixed_7b, 7c
        convs += [(c_in, 320, 1, 1), (c_in, 384, 1, 1), (384, 384, 1, 3), (384, 384, 3, 1), (c_in, 448, 1, 1),
                  (448, 384, 3, 3), (384, 384, 1, 3), (384, 384, 3, 1), (c_in, 192, 1, 1)]
    return sum(a * b * h * w + 2 * b for a, b, h, w in convs) + 2048 * classes + classes


def lively_inception(seed=0):
    """Random weights that keep activations O(1) through the depth (He init, random BatchNorm statistics)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = FIDInceptionV3()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.uniform_(-0.1, 0.1, generator=generator)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a small shared machine, oversubscribed threads made these tests 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_images(n, h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    """A random FID Inception saved as safetensors (all keys) and as a torch.save state dict without the
    BatchNorm num_batches_tracked counters (as older files are); its reference features of two 40x48 images."""
    root = tmp_path_factory.mktemp("inception")
    model = lively_inception()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, root / "inception.safetensors")
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, root / "inception.pth")
    images = random_images(2, 40, 48, 3)
    with torch.no_grad():
        reference = model.pool3(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).double().numpy()
    return root, model, images, reference


def test_inception_parameter_count_and_names():
    model = FIDInceptionV3()
    count = sum(p.numel() for p in model.parameters())
    assert count == published_inception_count() == INCEPTION_PARAMETERS  # about 23.9 M
    assert count - model.fc.weight.numel() - model.fc.bias.numel() == 21_785_568
    keys = model.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_var", "Mixed_5b.branch1x1.conv.weight",
                "Mixed_5b.branch_pool.bn.bias", "Mixed_6e.branch7x7dbl_5.conv.weight",
                "Mixed_7a.branch7x7x3_4.conv.weight", "Mixed_7c.branch3x3dbl_3b.bn.running_mean", "fc.weight"):
        assert key in keys, key
    assert keys["fc.weight"].shape == (1008, 2048)
    assert keys["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert model.Conv2d_1a_3x3.bn.eps == 0.001
    assert not any(k.startswith("AuxLogits") for k in keys)
    assert (model.Mixed_7b.pool, model.Mixed_7c.pool) == ("avg", "max")


def test_inception_round_trip_features(inception_files):
    root, model, images, reference = inception_files
    assert reference.shape == (2, 2048) and np.isfinite(reference).all() and reference.std() > 1e-3
    a = feature_network("inception", root / "inception.safetensors", device="cpu")
    b = feature_network("inception", str(root / "inception.pth"), device="cpu", batch_size=1)
    assert "Inception-v3 (FID protocol, inception.safetensors), pool3 2048-d" == a.name
    features_a = a.features(images)
    assert features_a.dtype == np.float64 and features_a.shape == (2, 2048)
    np.testing.assert_allclose(features_a, reference, rtol=1e-5, atol=1e-5)  # float32 kernels may differ by path
    np.testing.assert_array_equal(b.features(images, batch_size=2), features_a)
    np.testing.assert_allclose(b.features(images), features_a, rtol=1e-5, atol=1e-5)  # batches of 1
    np.testing.assert_array_equal(a.features(images), features_a)  # deterministic
    for key, value in model.state_dict().items():
        assert torch.equal(b.module.state_dict()[key].cpu(), value), key


def test_inception_grayscale_float_and_probabilities(inception_files):
    root, _, _, _ = inception_files
    net = feature_network("inception", root / "inception.safetensors", device="cpu")
    gray = random_images(2, 28, 28, 1, seed=1)
    np.testing.assert_array_equal(net.features(gray), net.features(np.repeat(gray, 3, axis=-1)))
    np.testing.assert_array_equal(net.module.pool3(torch.from_numpy(gray).permute(0, 3, 1, 2).float()
                                                   .div(255).expand(-1, 3, -1, -1)).numpy(),
                                  net.features(gray[..., 0]).astype(np.float32))  # (N, H, W) is grayscale too
    probabilities = net.probabilities(gray.astype(np.float32) / 255)  # float input in [0, 1]
    assert probabilities.shape == (2, 1008)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(PlumeError, match=r"\[0, 1\]"):
        net.features(gray.astype(np.float32))


def test_missing_weights_file(monkeypatch, tmp_path, inception_files):
    monkeypatch.delenv("PLUME_INCEPTION", raising=False)
    monkeypatch.delenv("PLUME_DINOV2", raising=False)
    url = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
    for path in (None, tmp_path / "nowhere.pth"):
        with pytest.raises(PlumeError) as error:
            load_inception(path)
        assert url in str(error.value) and "PLUME_INCEPTION" in str(error.value)
        assert "pt_inception-2015-12-05-6726825d.pth" in str(error.value)
    with pytest.raises(PlumeError) as error:
        feature_network("dinov2")
    assert "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth" in str(error.value)
    assert "PLUME_DINOV2" in str(error.value) and "dinov2_vits14_pretrain.pth" in str(error.value)
    monkeypatch.setenv("PLUME_INCEPTION", str(tmp_path / "gone.safetensors"))
    with pytest.raises(PlumeError, match=r"gone\.safetensors \(\$PLUME_INCEPTION\) does not exist"):
        load_inception()
    monkeypatch.setenv("PLUME_INCEPTION", str(inception_files[0] / "inception.safetensors"))
    assert torch.equal(load_inception().fc.weight, inception_files[1].fc.weight)  # the env var is the fallback


def test_mismatched_and_pickled_files(tmp_path):
    state = FIDInceptionV3().state_dict()
    state["Mixed_6c.branch7x7_2.conv.weights"] = state.pop("Mixed_6c.branch7x7_2.conv.weight")
    safetensors.torch.save_file(state, tmp_path / "renamed.safetensors")
    with pytest.raises(PlumeError) as error:
        load_inception(tmp_path / "renamed.safetensors")
    message = str(error.value)
    assert "missing keys: Mixed_6c.branch7x7_2.conv.weight" in message
    assert "unexpected keys: Mixed_6c.branch7x7_2.conv.weights" in message
    state = FIDInceptionV3().state_dict()
    state["Mixed_5b.branch_pool.conv.weight"] = torch.zeros(64, 192, 1, 1)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(PlumeError, match=r"wrong shapes: Mixed_5b\.branch_pool\.conv\.weight \(64, 192, 1, 1\)"):
        load_inception(tmp_path / "shape.pt")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not a plain state dict
    with pytest.raises(PlumeError, match="weights_only"):
        load_inception(tmp_path / "module.pth")


def test_dinov2_sizes_from_state_dict():
    counts = {}
    for dim, (name, depth, heads, ffn) in VARIANTS.items():
        with torch.device("meta"):
            state = DINOv2(dim).state_dict()
            model = dinov2_from_state_dict(state)
        assert (model.variant, len(model.blocks), model.blocks[0].attn.heads) == (name, depth, heads)
        counts[name] = sum(p.numel() for p in model.parameters())
    assert counts == {"ViT-S/14": VITS14_PARAMETERS, "ViT-B/14": 86_580_480, "ViT-L/14": 304_368_640,
                      "ViT-g/14": 1_136_480_768}
    with torch.device("meta"):
        keys = DINOv2(1536).state_dict()
    assert "blocks.39.mlp.w12.weight" in keys and keys["blocks.39.mlp.w12.weight"].shape == (8192, 1536)


def test_dinov2_attention_is_softmax_attention():
    torch.manual_seed(0)
    attention, x = Attention(64, 4), torch.randn(2, 5, 64)
    q, k, v = attention.qkv(x).reshape(2, 5, 3, 4, 16).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1)
    expected = attention.proj((weights @ v).transpose(1, 2).reshape(2, 5, 64))
    torch.testing.assert_close(attention(x), expected)


def test_dinov2_round_trip_features(tmp_path):
    torch.manual_seed(0)
    model = DINOv2(384).eval()
    state = model.state_dict()
    expected_keys = {"cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight", "blocks.11.norm1.weight",
                     "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias", "blocks.0.ls1.gamma", "blocks.3.norm2.bias",
                     "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.bias", "blocks.0.ls2.gamma", "norm.weight"}
    assert expected_keys <= set(state) and state["pos_embed"].shape == (1, 1370, 384)
    assert sum(p.numel() for p in model.parameters()) == VITS14_PARAMETERS  # about 22 M
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "vits14.safetensors")
    torch.save(state, tmp_path / "dinov2_vits14_pretrain.pth")
    images = random_images(3, 30, 30, 3)
    with torch.no_grad():
        reference = model.embed(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).double().numpy()
    a = feature_network("dinov2", tmp_path / "vits14.safetensors", device="cpu")
    b = feature_network("dinov2", tmp_path / "dinov2_vits14_pretrain.pth", device="cpu")
    assert a.name.startswith("DINOv2 ViT-S/14 (vits14.safetensors), final-norm CLS token 384-d")
    features = a.features(images)
    assert features.shape == (3, 384) and np.isfinite(features).all()
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(b.features(images), features)
    np.testing.assert_array_equal(a.features(images), features)  # deterministic
    gray = random_images(2, 224, 224, 1, seed=2)  # already 224: no resize
    np.testing.assert_array_equal(a.features(gray), a.features(np.repeat(gray, 3, -1)))
    with pytest.raises(PlumeError, match="no class head"):
        a.probabilities(images)
    assert torch.equal(model.position_embedding(37, 37), model.pos_embed)
    assert model.position_embedding(16, 20).shape == (1, 1 + 320, 384)
    state = dict(state)
    state["blocks.2.ls1.scale"] = state.pop("blocks.2.ls1.gamma")
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "bad.safetensors")
    with pytest.raises(PlumeError, match=r"missing keys: blocks\.2\.ls1\.gamma; unexpected keys: blocks\.2\.ls1\.sc"):
        load_dinov2(tmp_path / "bad.safetensors")


def test_registry_and_classifier_on_digits():
    from plume.images import load_image_data
    with pytest.raises(PlumeError) as error:
        feature_network("clip")
    assert "classifier, dinov2, inception" in str(error.value)
    assert set(FEATURE_NETWORKS) == {"inception", "dinov2", "classifier"}
    with pytest.raises(PlumeError, match="train_images"):
        feature_network("classifier")
    data = load_image_data("digits").images
    net = feature_network("classifier", train_images=data.pixels, train_labels=data.labels, seed=0,
                          classifier_steps=40)
    assert "classifier" in net.name and "64-d" in net.name
    features = net.features(data.pixels[:300])
    assert features.shape == (300, 64) and features.dtype == np.float64
    np.testing.assert_allclose(net.features(data.pixels[:300], batch_size=7), features, rtol=1e-5, atol=1e-5)
    probabilities = net.probabilities(data.pixels[:300])
    assert probabilities.shape == (300, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
    assert (probabilities.argmax(1) == data.labels[:300]).mean() > 0.5  # it learnt something in 40 steps
