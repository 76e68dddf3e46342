"""Devices and precision: which device a run uses, channels-last placement, bf16 autocast."""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
from torch import nn


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit device, else ``KDVIZ_DEVICE``, else CUDA when available, else CPU."""
    name = device or os.environ.get("KDVIZ_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    return dev


def prepare_model(model: nn.Module, device: torch.device, amp: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` (in place); conv nets go channels-last where that is faster.

    Channels-last (NHWC) lets oneDNN run conv, BatchNorm and pooling without layout
    conversions: ~1.7× faster CNN steps on the CPU; on CUDA it helps bf16 tensor-core
    convolutions, so there only with ``amp``. Results are the same up to float rounding.
    """
    model.to(device)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    if has_conv and (device.type == "cpu" or (device.type == "cuda" and amp)):
        model.to(memory_format=torch.channels_last)
    return model


def bf16_is_fast(device: str | torch.device) -> bool:
    """True where bfloat16 matmuls/convs run natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX).

    Elsewhere bf16 is emulated and slower than float32, so presets only ask for ``amp`` here.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)  # emulated bf16 is slow
        except TypeError:  # older torch without the keyword
            return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return device.type == "cpu" and any(probe is not None and probe() for probe in probes)


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled`` (no GradScaler needed: bf16 has fp32's range)."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
