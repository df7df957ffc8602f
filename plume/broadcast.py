"""The one helper that broadcasts per-sample scalars against a batch."""
import torch


def append_dims(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a scalar or per-sample (B,) tensor to (B, 1, ..., 1) so it broadcasts over `like`."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.ndim == 0:
        return value
    return value.reshape(value.shape + (1,) * (like.ndim - value.ndim))
