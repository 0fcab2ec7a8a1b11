"""The memory plan of a Wan 2.1 VACE job: where the models live on the device while it runs.

A plan has three parts:

- ``offload``: ``none`` (every model on the device), ``model`` (one whole model on the device at a time),
  ``group`` (the transformer and text encoder layer by layer, the next layer copied on a CUDA stream while the
  current one runs) or ``sequential`` (accelerate's layer by layer, no prefetch: least memory, slowest);
- ``fp8``: the transformer's and text encoder's weights stored in float8 (e4m3) and cast to the compute dtype
  layer by layer as they run (about half their memory, a small loss of precision);
- ``vae_tiling``: the VAE decodes the video in tiles (less memory for large frames, a little slower).

:func:`choose_plan` takes the fastest plan whose estimated peak fits the device's free memory; each part can
be fixed by the user instead. The peaks are estimates from the architecture (parameter counts times bytes per
weight, activations from the token count), not measurements: see docs/vace.md for the table and the method.

Importing this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..runner import InvalidInput

GB = 1e9

OFFLOAD_CHOICES = ("auto", "none", "model", "group", "sequential")
SWITCH_CHOICES = ("auto", "on", "off")

HEADROOM_GB = 1.0
"""Kept free besides the estimate: the CUDA context, allocator fragmentation and the estimate's error."""
USABLE_FRACTION = 0.95
"""Share of the free memory a plan may use (with ``HEADROOM_GB`` subtracted too)."""

LADDER: tuple[tuple[str, bool], ...] = (
    ("none", False),
    ("model", False),
    ("model", True),
    ("group", False),
    ("sequential", False),
)
"""(offload, fp8) from fastest to least memory; ``choose_plan`` takes the first that fits. fp8 comes after
``model`` in bf16 so that precision is given up only when speed would be lost otherwise."""


@dataclass(frozen=True)
class ModelSizes:
    """Sizes of one Wan 2.1 VACE checkpoint in GB (1e9 bytes) and the dimensions that set its activations."""

    transformer_gb: float
    """bf16 weights of the transformer with its VACE blocks."""
    block_gb: float
    """One transformer block in bf16: what layer-by-layer offload holds (twice, with prefetch)."""
    text_encoder_gb: float
    """UMT5-XXL encoder, bf16."""
    text_embedding_gb: float
    """Its token embedding (256,384 x 4,096), which moves as one piece under any offload."""
    text_uncast_gb: float
    """What fp8 storage leaves in bf16 in the text encoder: the embedding and the feed-forward outputs (``wo``:
    UMT5 casts its input to that weight's dtype, so it must keep the compute dtype)."""
    vae_gb: float
    """The VAE in fp32."""
    hidden: int
    ffn: int
    vace_blocks: int


MODEL_SIZES: dict[str, ModelSizes] = {
    # 30 blocks of width 1536 (ffn 8960) + 15 VACE blocks: 2.09e9 parameters.
    "1.3b": ModelSizes(4.2, 0.093, 11.4, 2.1, 4.1, 0.5, 1536, 8960, 15),
    # 40 blocks of width 5120 (ffn 13824) + 8 VACE blocks: 16.9e9 parameters.
    "14b": ModelSizes(33.8, 0.70, 11.4, 2.1, 4.1, 0.5, 5120, 13824, 8),
}


def tokens(width: int, height: int, frames: int) -> int:
    """Transformer tokens of one window: 4x temporal and 8x spatial VAE compression, 2x2 patches."""
    return ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)


def denoise_working_gb(sizes: ModelSizes, width: int, height: int, frames: int) -> float:
    """Activations while denoising (bf16): the VACE hints (one hidden state per VACE block, kept until used),
    about four hidden states in flight and one feed-forward intermediate; attention itself is memory-efficient."""
    count = tokens(width, height, frames)
    return count * 2 * (sizes.hidden * (sizes.vace_blocks + 4) + sizes.ffn) / GB


def decode_working_gb(width: int, height: int, frames: int, tiled: bool) -> float:
    """The VAE decoder's activations plus the decoded video (fp32). The decoder makes four frames per latent
    frame and keeps two frames of every causal convolution's input: about 12 KB per pixel of the frame (or of
    the 256x256 tile) it works on, an estimate from its layer widths, not a measurement."""
    area = min(width * height, 256 * 256) if tiled else width * height
    return (area * 12_000 + frames * 3 * width * height * 4) / GB


@dataclass(frozen=True)
class MemoryPlan:
    """How one job places the pipeline; ``peak_gb`` is the estimated peak of device memory (None on the CPU)."""

    offload: str
    fp8: bool
    vae_tiling: bool
    peak_gb: float | None
    free_gb: float | None
    reason: str

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def placement(self) -> tuple[str, bool]:
        """What changes where the weights are (tiling does not)."""
        return self.offload, self.fp8


def peak_gb(sizes: ModelSizes, offload: str, fp8: bool, tiled: bool, width: int, height: int, frames: int) -> float:
    """Estimated peak device memory of one window under a plan: the largest of the three stages (prompt
    encoding, denoising, decoding), each with the weights resident then plus that stage's activations."""
    transformer = sizes.transformer_gb / 2 if fp8 else sizes.transformer_gb
    block = sizes.block_gb / 2 if fp8 else sizes.block_gb
    text = (sizes.text_encoder_gb + sizes.text_uncast_gb) / 2 if fp8 else sizes.text_encoder_gb
    denoise = denoise_working_gb(sizes, width, height, frames)
    decode = decode_working_gb(width, height, frames, tiled) + sizes.vae_gb
    prompt = 0.3
    if offload == "none":
        return transformer + text + sizes.vae_gb + max(denoise, decode - sizes.vae_gb)
    if offload == "model":
        return max(text + prompt, transformer + denoise, decode)
    if offload == "group":
        return max(sizes.text_embedding_gb + prompt, 2 * block + denoise, decode)
    if offload == "sequential":
        return max(sizes.text_embedding_gb + prompt, block + denoise, decode)
    raise ValueError(f"unknown offload {offload!r}")


def choose_plan(
    model_key: str,
    kind: str,
    free_bytes: int | None,
    width: int,
    height: int,
    frames: int,
    offload: str = "auto",
    fp8: str = "auto",
    vae_tiling: str = "auto",
) -> MemoryPlan:
    """The plan for a window of ``frames`` frames of ``width`` x ``height`` on a device of ``kind`` with
    ``free_bytes`` free before the pipeline was placed (None: unknown, as on the CPU).

    ``auto`` parts are chosen: the first (offload, fp8) of :data:`LADDER` whose estimate fits, untiled before
    tiled at each step; fp8 only on CUDA. On the CPU the models stay in system memory (``none``, no fp8, no
    tiling). Parts the user fixed are kept as given and the rest chosen around them; when nothing fits, the
    least-memory plan is taken and the reason says the estimate exceeds the free memory.
    Raises :class:`InvalidInput` naming ``fp8_weights`` when fp8 is asked for on Apple MPS (no float8 type).
    """
    if fp8 == "on" and kind == "mps":
        raise InvalidInput("fp8_weights", "is not available on Apple MPS (torch has no float8 there): use off or auto")
    sizes = MODEL_SIZES[model_key]
    fixed = {"offload": offload != "auto", "fp8": fp8 != "auto", "tiling": vae_tiling != "auto"}
    if kind == "cpu" or free_bytes is None:
        plan_offload = "none" if offload == "auto" else offload
        where = "the CPU: the models stay in system memory" if kind == "cpu" else f"{kind}: free memory unknown"
        return MemoryPlan(plan_offload, fp8 == "on", vae_tiling == "on", None, None, f"{where}; {_fixed_text(fixed)}")
    free_gb = free_bytes / GB
    budget = free_gb * USABLE_FRACTION - HEADROOM_GB
    candidates: list[tuple[str, bool, bool]] = []
    for step_offload, step_fp8 in LADDER:
        if offload != "auto":
            step_offload = offload
        if fp8 != "auto":
            step_fp8 = fp8 == "on"
        elif step_fp8 and kind != "cuda":
            continue
        for tiled in (False, True) if vae_tiling == "auto" else (vae_tiling == "on",):
            if (step_offload, step_fp8, tiled) not in candidates:
                candidates.append((step_offload, step_fp8, tiled))
    for step_offload, step_fp8, tiled in candidates:
        estimate = peak_gb(sizes, step_offload, step_fp8, tiled, width, height, frames)
        if estimate <= budget:
            reason = f"fits: ~{estimate:.1f} GB estimated of {free_gb:.1f} GB free; {_fixed_text(fixed)}"
            return MemoryPlan(step_offload, step_fp8, tiled, round(estimate, 2), round(free_gb, 2), reason)
    step_offload, step_fp8, tiled = candidates[-1]
    estimate = peak_gb(sizes, step_offload, step_fp8, tiled, width, height, frames)
    reason = (
        f"does not fit: ~{estimate:.1f} GB estimated, {free_gb:.1f} GB free; the least memory that was allowed; "
        f"{_fixed_text(fixed)}"
    )
    return MemoryPlan(step_offload, step_fp8, tiled, round(estimate, 2), round(free_gb, 2), reason)


def _fixed_text(fixed: dict[str, bool]) -> str:
    chosen = [name for name, by_user in fixed.items() if by_user]
    return f"set by the user: {', '.join(chosen)}" if chosen else "chosen automatically"
