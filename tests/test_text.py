"""Text conditioning: tokenizer, text encoder, cross-attention in the U-Net and DiT, guidance with prompts, training
and sampling with prompts from the CLI, captioned folders."""
import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import plume
from plume import Denoiser, backbone
from plume.backbones.attention import CrossAttention
from plume.cli import main as cli
from plume.images import load_image_data
from plume.images.shapes import VOCABULARY
from plume.guidance import classifier_free_guidance
from plume.backbones.text import PAD, START, TextEncoder, WordTokenizer, build_text_encoder, text_options, words
from plume.train import draw_micro_batch, load_denoiser, train
from plume.train.data import TensorData

PROMPTS = ["a small red circle", "a large blue square above a small green triangle"]


def tiny(name, **options):
    text = text_options(PROMPTS + [" ".join(VOCABULARY)], width=16, depth=1, heads=2)
    if name == "unet":
        return backbone("unet", in_channels=3, channels=[16, 16], blocks_per_level=1, attention_levels=[1],
                        head_channels=8, norm_groups=4, embed_features=16, text=text, **options)
    return backbone("dit", in_channels=3, image_size=8, patch_size=2, width=16, depth=2, heads=2, embed_features=16,
                    text=text, **options)


def perturbed(net):
    """Zero-initialised output layers would hide the prompt's effect: give every parameter a small random value."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net


def test_tokenizer_layout_and_round_trip():
    tokenizer = WordTokenizer(["a", "red", "circle"], max_tokens=5)
    ids = tokenizer.encode(["A red circle.", ""])
    assert ids.tolist() == [[START, 2, 3, 4, PAD], [START, PAD, PAD, PAD, PAD]]
    assert tokenizer.decode(ids) == ["a red circle", ""]
    assert words("a red, circle!") == ["a", "red", "circle"]


@pytest.mark.parametrize("prompt, message", [
    ("a red sqaure", r"unknown word 'sqaure' in prompt 'a red sqaure'.*did you mean 'square'"),
    ("a red circle a red circle a red circle a red circle a red circle a red circle", r"has 18 words; .* at most 15"),
])
def test_tokenizer_refuses_what_the_model_cannot_read(prompt, message):
    tokenizer = WordTokenizer(list(VOCABULARY), max_tokens=16)
    with pytest.raises(plume.PlumeError, match=message):
        tokenizer.encode([prompt])


def test_encoder_ignores_padding():
    """The context at a prompt's tokens does not depend on how many PADs follow."""
    torch.manual_seed(0)
    net = tiny("dit")
    ids = net.text.encoder.tokenizer.encode(PROMPTS)  # (2, T)
    context, mask = net.text.encoder(ids)  # (2, T, D), (2, T)
    short = ids[:, :10]  # (2, 10): every word still inside
    context_short, mask_short = net.text.encoder(short)
    torch.testing.assert_close(context_short[mask_short], context[:, :10][mask[:, :10]], rtol=1e-5, atol=1e-6)
    assert mask.sum(1).tolist() == [5, 10]  # START + words


def test_cross_attention_equals_the_masked_formula():
    torch.manual_seed(0)
    attn = CrossAttention(8, 6, heads=2)
    torch.nn.init.normal_(attn.proj.weight)
    x, context = torch.randn(3, 5, 8), torch.randn(3, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    q = attn.q(x).view(3, 5, 2, 4).transpose(1, 2)  # (B, h, L, d)
    k, v = attn.kv(context).view(3, 4, 2, 2, 4).permute(2, 0, 3, 1, 4)  # (B, h, T, d) each
    scores = (q @ k.transpose(-1, -2)) / 2.0  # (B, h, L, T)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    expected = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(attn(x, context, mask), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_text_backbones_follow_the_prompt_and_train_every_part(name):
    net = perturbed(tiny(name))
    tokenizer = net.text.encoder.tokenizer
    x, level = torch.randn(2, 3, 8, 8), torch.zeros(2)
    a = net(x, level, tokenizer.encode(PROMPTS))
    b = net(x, level, tokenizer.encode(["a large cyan triangle", "a small red circle"]))
    assert a.shape == x.shape
    assert (a[0] - b[0]).abs().max() > 1e-5  # another prompt, another output (float noise ~1e-7)
    net(x, level, tokenizer.encode(PROMPTS)).square().sum().backward()
    assert [k for k, p in net.named_parameters() if p.grad is None or p.grad.abs().max() == 0] == []
    torch.testing.assert_close(net(x, level, None), net(x, level, net.null_condition(2, torch.device("cpu"))))


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_bad_text_conditions_are_refused(name):
    net = tiny(name)
    with pytest.raises(plume.PlumeError, match=r"token ids shaped \(2, \d+\)"):
        net(torch.randn(2, 3, 8, 8), torch.zeros(2), torch.tensor([1, 2]))
    with pytest.raises(plume.PlumeError, match="class labels .* or on text, not both"):
        tiny(name, num_classes=3)


def test_guidance_with_prompts_is_one_batched_forward_and_takes_a_negative_prompt():
    model = Denoiser(perturbed(tiny("dit")), "vp", "eps").eval()
    tokenizer = model.backbone.text.encoder.tokenizer
    cond, negative = tokenizer.encode(PROMPTS), tokenizer.encode(["a large cyan triangle"])[0]
    x, t = torch.randn(2, 3, 8, 8), torch.full((2,), 0.5)
    with torch.no_grad():
        guided = classifier_free_guidance(model, cond, 3.0, negative)(x, t)
        other = model(x, t, negative.expand(2, -1))
        expected = other + 3.0 * (model(x, t, cond) - other)
        null = model(x, t, None)
        plain = classifier_free_guidance(model, cond, 3.0)(x, t)
    torch.testing.assert_close(guided, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain, null + 3.0 * (model(x, t, cond).detach() - null), rtol=1e-4, atol=1e-5)


def test_label_dropout_gives_token_rows_the_empty_prompt():
    model = Denoiser(tiny("dit"), "vp", "eps")
    tokens = model.backbone.text.encoder.tokenizer.encode(PROMPTS * 50)  # (100, T)
    data = TensorData(torch.randn(100, 3, 8, 8), tokens)
    batch = draw_micro_batch(data, model, 64, 0, 3, 0, labelled=True, label_dropout=0.5)
    empty = model.backbone.null_condition(1, torch.device("cpu"))[0]  # (T,)
    dropped = (batch.labels == empty).all(1)  # (64,)
    assert 16 < int(dropped.sum()) < 48
    assert all(row.tolist() in tokens.tolist() for row in batch.labels[~dropped])


def test_python_api_trains_and_reloads_a_text_model(tmp_path):
    model = Denoiser(tiny("unet"), "vp", "eps")
    tokens = model.backbone.text.encoder.tokenizer.encode(PROMPTS * 8)
    config = plume.TrainConfig(steps=2, batch_size=8, label_dropout=0.1)
    train(model, torch.randn(16, 3, 8, 8), tmp_path, config, cond=tokens)
    loaded = load_denoiser(tmp_path, ema=False)
    x, t = torch.randn(2, 3, 8, 8), torch.full((2,), 0.3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, tokens[:2]), model.eval()(x, t, tokens[:2]))


def test_cli_trains_on_shapes_and_samples_prompts(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(cli, ["train", "--data", "shapes", "--limit", "64", "--image-size", "8", "--conditional",
                                 "--steps", "2", "--batch-size", "8", "--out", str(run), "--quiet",
                                 "--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4", "--backbone-option", "head_channels=8"])
    assert result.exit_code == 0, result.output
    options = json.loads((run / "checkpoint" / "config.json").read_text())["backbone"]["options"]
    assert options["text"]["kind"] == "trained" and "circle" in options["text"]["vocabulary"]
    out = tmp_path / "s.npz"
    result = runner.invoke(cli, ["sample", str(run), "--n", "4", "--steps", "2", "--prompt", "a small red circle",
                                 "--prompt", "a large blue square", "--negative-prompt", "a green triangle",
                                 "--guidance", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out)["arr_0"].shape == (4, 8, 8, 3)
    assert "prompt match rate" in result.output
    result = runner.invoke(cli, ["sample", str(run), "--n", "2", "--steps", "2", "--prompt", "a purple circle"])
    assert result.exit_code != 0 and "unknown word 'purple'" in result.output
    result = runner.invoke(cli, ["sample", str(run), "--n", "2", "--labels", "1"])
    assert result.exit_code != 0 and "class labels" in result.output


def test_captioned_folder_trains_with_its_own_words(tmp_path):
    rng = np.random.default_rng(0)
    with open(tmp_path / "captions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "caption"])
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
            writer.writerow([f"{i}.png", ["a bright sky", "a dark sea"][i % 2]])
    data = load_image_data(str(tmp_path))
    assert data.train_captions[:2] == ["a bright sky", "a dark sea"]
    options = text_options(data.train_captions)
    assert options["vocabulary"] == ["a", "bright", "dark", "sea", "sky"]
    encoder = TextEncoder(options["vocabulary"], options["max_tokens"])
    data.tokenize(encoder.tokenizer)
    assert data.labels.shape == (6, 16) and data.num_classes is None


def tiny_bert_folder(folder):
    """A small randomly initialised BERT and its word-piece tokenizer, written with save_pretrained (no download)."""
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCABULARY]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_pretrained_text_encoder_from_a_local_folder(tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert")
    options = text_options(PROMPTS, pretrained=str(folder))
    net = perturbed(backbone("dit", in_channels=3, image_size=8, patch_size=2, width=16, depth=1, heads=2,
                             embed_features=16, text=options))
    assert net.text.features == 24
    assert not any("encoder.model" in k or "embeddings" in k for k in net.state_dict())  # frozen, kept out
    ids = net.text.encoder.tokenizer.encode(PROMPTS)  # (2, 32)
    assert ids.shape == (2, options["max_tokens"])
    x = torch.randn(2, 3, 8, 8)
    a, b = net(x, torch.zeros(2), ids), net(x, torch.zeros(2), net.text.encoder.tokenizer.encode(PROMPTS[::-1]))
    assert (a - b).abs().max() > 1e-5
    trainable = [k for k, p in net.named_parameters() if p.requires_grad]
    assert all(not k.startswith("text.encoder.") for k in trainable)


def test_pretrained_text_encoder_errors(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(plume.PlumeError, match="missing does not exist"):
        build_text_encoder(text_options(PROMPTS, pretrained=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(plume.PlumeError, match="cannot load a text encoder and tokenizer from"):
        build_text_encoder(text_options(PROMPTS, pretrained=str(tmp_path / "empty")))
