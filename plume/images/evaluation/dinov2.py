"""DINOv2 vision transformers (Oquab et al. 2023) as feature networks, in plain torch.nn.

Stein et al. (2023, "Exposing flaws of generative model evaluation metrics and their unfair treatment of
diffusion models") found that Inception features miss much of what people see, and recommend the DINOv2
ViT-L/14 instead: the image is resized to 224x224 (bicubic), normalised with the ImageNet mean and standard
deviation, and the feature is the CLS token after the final LayerNorm (384, 768, 1024 or 1536 wide).

Parameter names follow the official facebookresearch/dinov2 torch hub state dicts (dinov2_vit{s,b,l,g}14_pretrain
.pth, register-free): cls_token, pos_embed, mask_token, patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj,
ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm. ViT-g/14 uses a SwiGLU feed-forward (blocks.N.mlp.w12, w3,
hidden width (int(4 d * 2/3) + 7) // 8 * 8). The size is read from the state dict: the width of cls_token picks
the variant (heads of 64 channels), the number of blocks the depth. The hub models were trained at 518x518 (a 37x37
grid of 14-pixel patches); for other grids the patch position embeddings are resized bicubically with the hub's
scale factor (grid + 0.1) / 37, as DinoVisionTransformer.interpolate_pos_encoding does for these checkpoints.

Resizing: dgm-eval (Stein et al.'s code) resizes PIL images with torchvision's Resize((224, 224), BICUBIC), i.e.
PIL's antialiased bicubic filter on uint8 images; here F.interpolate(mode="bicubic", antialias=True) on the float
image, clamped to [0, 1], which is close to that but not bit-identical (no uint8 rounding after the resize).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PlumeError
from .weights import load_strict, read_state_dict, weights_path

ENV_VAR = "PLUME_DINOV2"
BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"
INPUT_SIZE = 224
PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATE_OFFSET = 0.1  # the hub's register-free models

# width -> (name, depth, heads, feed-forward)
VARIANTS = {
    384: ("ViT-S/14", 12, 6, "mlp"),
    768: ("ViT-B/14", 12, 12, "mlp"),
    1024: ("ViT-L/14", 24, 16, "mlp"),
    1536: ("ViT-g/14", 40, 24, "swiglu"),
}
HUB_NAMES = {"ViT-S/14": "vits14", "ViT-B/14": "vitb14", "ViT-L/14": "vitl14", "ViT-g/14": "vitg14"}


def hub_url(short: str = "vits14") -> str:
    return f"{BASE_URL}/dinov2_{short}/dinov2_{short}_pretrain.pth"


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, dh)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dh)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """w3(silu(x W1) * (x W2)), with W1 and W2 stored stacked as w12 (DINOv2's SwiGLUFFNFused)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with layer scale: x + ls1(attn(norm1 x)), then + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, heads: int, ffn: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        if ffn == "swiglu":
            self.mlp = SwiGLU(dim, (int(4 * dim * 2 / 3) + 7) // 8 * 8)
        else:
            self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, h*w, D)


class DINOv2(nn.Module):
    """A register-free DINOv2 ViT. `embed` maps images (N, 3, H, W) in [0, 1] to the final-norm CLS token (N, D)."""

    def __init__(self, embed_dim: int = 384, depth: Optional[int] = None, heads: Optional[int] = None,
                 ffn: Optional[str] = None, patch: int = PATCH, grid: int = 37, description: Optional[str] = None):
        super().__init__()
        variant = VARIANTS.get(embed_dim, (f"ViT-{embed_dim}/{patch}", 12, embed_dim // 64, "mlp"))
        self.variant = variant[0]
        depth, heads, ffn = depth or variant[1], heads or variant[2], ffn or variant[3]
        self.embed_dim, self.patch, self.grid = embed_dim, patch, grid
        self.description = description or (f"DINOv2 {self.variant}, final-norm CLS token {embed_dim}-d "
                                           f"({INPUT_SIZE}x{INPUT_SIZE} bicubic input)")
        self.patch_embed = PatchEmbed(embed_dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # used only in training; kept for the keys
        self.blocks = nn.ModuleList(Block(embed_dim, heads, ffn) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.eval()

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, D) for an h x w patch grid; the trained grid's patch part resized bicubically."""
        if h == w == self.grid:
            return self.pos_embed
        pos = self.pos_embed.float()
        grid = pos[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
        scale = ((h + INTERPOLATE_OFFSET) / self.grid, (w + INTERPOLATE_OFFSET) / self.grid)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        if grid.shape[-2:] != (h, w):
            raise PlumeError(f"position embedding resized to {tuple(grid.shape[-2:])}, expected {(h, w)}")
        patches = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([pos[:, :1], patches], 1).to(self.pos_embed.dtype)

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, 224, 224), ImageNet-normalised."""
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False,
                              antialias=True).clamp(0, 1)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[:, None, None]
        return (x - mean) / std

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm tokens (N, 1 + patches, D) of normalised images (N, 3, H, W), H and W multiples of the patch."""
        n, _, h, w = x.shape
        x = self.patch_embed(x)  # (N, hp*wp, D)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], 1)
        x = x + self.position_embedding(h // self.patch, w // self.patch)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The final-norm CLS token (N, D) of images (N, 3, H, W) in [0, 1]."""
        return self.tokens(self.preprocess(x))[:, 0]

    forward = embed


def dinov2_from_state_dict(state: dict[str, torch.Tensor], description: Optional[str] = None) -> DINOv2:
    """An (untrained) DINOv2 sized to fit `state`: width from cls_token, depth from the blocks, grid from pos_embed."""
    if "cls_token" not in state or "pos_embed" not in state or "patch_embed.proj.weight" not in state:
        raise PlumeError(f"not a DINOv2 state dict: no cls_token / pos_embed / patch_embed.proj.weight among its "
                         f"keys {list(state)[:5]}")
    if "register_tokens" in state:
        raise PlumeError("DINOv2 with registers (dinov2_*_reg) is not supported; use the register-free "
                         "dinov2_vit*14_pretrain.pth")
    if any(k.startswith("blocks.") and k.split(".")[2].isdigit() for k in state):
        raise PlumeError("this DINOv2 state dict has chunked blocks (blocks.<chunk>.<block>...), a training "
                         "checkpoint; use the torch hub backbone weights dinov2_vit*14_pretrain.pth")
    dim = int(state["cls_token"].shape[-1])
    if dim not in VARIANTS:
        raise PlumeError(f"DINOv2 width {dim} is none of {sorted(VARIANTS)} (ViT-S/B/L/g)")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    grid = math.isqrt(state["pos_embed"].shape[1] - 1)
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    return DINOv2(dim, depth=depth, patch=patch, grid=grid, description=description)


def needed(short: str = "vits14") -> str:
    return (f"DINOv2 features need a torch hub backbone file such as dinov2_{short}_pretrain.pth (register-free; "
            f"dinov2_vitl14_pretrain.pth is the ViT-L/14 of Stein et al. 2023); on a machine with internet, "
            f"download it from {hub_url(short)} (or {hub_url('vitl14')}) and copy it here; .pth as published or "
            f"converted to .safetensors.")


def load_dinov2(path: Union[str, "os.PathLike[str]", None] = None) -> DINOv2:
    """A DINOv2 backbone with weights from `path` (else $PLUME_DINOV2), size inferred, in eval mode on the CPU."""
    path = weights_path(path, ENV_VAR, needed(), "--features dinov2 --weights")
    state = read_state_dict(path)
    model = dinov2_from_state_dict(state)
    model.description = (f"DINOv2 {model.variant} ({Path(path).name}), final-norm CLS token {model.embed_dim}-d "
                         f"({INPUT_SIZE}x{INPUT_SIZE} bicubic input)")
    load_strict(model, state, path, f"DINOv2 {model.variant}")
    return model.eval().requires_grad_(False)
