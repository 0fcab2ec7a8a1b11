"""Progress, cancel and previews after each denoising step of a Wan 2.1 VACE window (see :class:`StepReporter`).

Importing this module imports neither torch nor diffusers; ``torch`` is imported when a preview is decoded.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..runner import RunContext

PREVIEW_INTERVAL_S = 1.0
"""At most one preview decode a second; the daemon sends at most two previews a second anyway."""


class StepReporter:
    """The pipeline's ``callback_on_step_end``: cancel, progress and previews after each denoising step.

    Cancel: ``ctx.raise_if_cancelled()`` raises :class:`~models.runner.JobCancelled` out of the pipeline's
    loop; the runner's ``finally`` restores offload hooks. Previews: the clean frame the step implies,
    x0 = x - sigma * velocity (flow matching), with the velocity taken from the last two steps' latents;
    only its first latent frame is decoded, which costs a small fraction of decoding the window.
    """

    def __init__(
        self,
        ctx: RunContext,
        window_index: int,
        window_count: int,
        steps: int,
        reference_count: int,
        cheap_previews: bool,
        fallback: np.ndarray,
    ) -> None:
        self.ctx = ctx
        self.window_index = window_index
        self.window_count = window_count
        self.steps = steps
        self.reference_count = reference_count
        self.cheap_previews = cheap_previews
        self.fallback = fallback
        self.previous: Any = None
        self.last_preview = 0.0

    def __call__(self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        self.ctx.raise_if_cancelled()
        latents = tensors["latents"]
        preview = None
        now = time.monotonic()
        if now - self.last_preview >= PREVIEW_INTERVAL_S:
            preview = self.fallback if self.cheap_previews else self.decode_preview(pipe, step, latents)
            self.last_preview = now
        self.previous = latents
        # Denoising is ~90 % of a window's time; encoding and decoding the rest.
        fraction = (self.window_index + 0.9 * (step + 1) / self.steps) / self.window_count
        stage = f"denoising step {step + 1}/{self.steps}"
        if self.window_count > 1:
            stage += f", window {self.window_index + 1}/{self.window_count}"
        self.ctx.progress(fraction, stage, preview=preview)
        return {}

    def decode_preview(self, pipe: Any, step: int, latents: Any) -> np.ndarray:
        import torch

        estimate = latents
        sigmas = getattr(pipe.scheduler, "sigmas", None)
        if self.previous is not None and sigmas is not None and step + 1 < len(sigmas):
            sigma, sigma_next = float(sigmas[step]), float(sigmas[step + 1])
            if sigma_next != sigma:
                velocity = (latents - self.previous) / (sigma_next - sigma)
                estimate = latents - sigma_next * velocity
        vae = pipe.vae
        first = estimate[:, :, self.reference_count : self.reference_count + 1]
        config = vae.config
        mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        std = torch.tensor(config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        first = first.float().cpu() * std + mean
        decoded = vae.decode(first.to(device=vae.device, dtype=vae.dtype), return_dict=False)[0]
        image = decoded[0, :, 0].float().clamp(-1.0, 1.0)
        return ((image + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
