"""What the Wan 2.1 VACE modes share: the checkpoints, their settings and validation, and the runner base.

Three modes drive diffusers' ``WanVACEPipeline`` with different controls (see ``pose.py``,
``motion.py`` and ``r2v.py``); each exists for the 1.3B model (480p) and the 14B model (480p and 720p).
They share one loaded pipeline per model (see ``pipeline.py``). Sequences longer than one window are
generated in overlapping windows joined by cross-fading, and every request is generated in 4k+1 frame counts
(see ``windows.py``). Progress, cancel and previews after each denoising step are in ``preview.py``.

Importing this module imports neither torch nor diffusers; they are imported in ``load`` and ``run``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..frame_writer import FrameWriter
from ..runner import InvalidInput, Media, MediaSlot, Param, RunContext, Runner, RunResult
from ..torch_device import empty_accelerator_cache
from .memory import OFFLOAD_CHOICES, SWITCH_CHOICES, MemoryPlan, choose_plan
from .pipeline import LoadedPipeline, acquire_pipeline, place, release_pipeline
from .preview import StepReporter
from .windows import TEMPORAL_STRIDE, Window, is_4k_plus_1, join_window, plan_windows, round_up_4k_plus_1

SIZE_MULTIPLE = 16
"""Width and height must be multiples of this: the VAE downsamples 8x and the transformer patches 2x2."""

NATIVE_FPS = 16.0
"""Wan 2.1 was trained on 16 fps video; r2v output is meant to play at this rate."""

PROMPT_TOKENS = 512
"""Prompts are padded or cut to this many tokens, as WanVACEPipeline does when it encodes them itself."""

NATIVE_SIZE = (832, 480)
"""Wan 2.1's 480p training size; without a control video the output takes its aspect."""

DEFAULT_NEGATIVE_PROMPT = (
    "blurry, low quality, worst quality, jpeg artifacts, distorted, deformed, disfigured, extra limbs, "
    "extra fingers, fused fingers, bad hands, bad anatomy, static, still frame, overexposed, subtitles, "
    "text, watermark"
)


@dataclass(frozen=True)
class WanVaceModel:
    """One released Wan 2.1 VACE checkpoint in the diffusers layout."""

    key: str
    """``1.3b`` or ``14b``."""
    folder: str
    """Its folder inside the models folder, named as the official repository."""
    repository: str
    high_area: int
    """Pixel area of the ``high`` quality preset: 480p for 1.3B (its only trained size), 720p for 14B."""
    trained_720p: bool
    """Whether the model was trained at 720p too (then 720p jobs get the 720p ``flow_shift``)."""
    transformer_shards: int
    text_encoder_shards: int = 3

    @property
    def files(self) -> tuple[str, ...]:
        """The repository's files the pipeline loads, relative to its folder (``spiece.model`` is left out:
        the fast tokenizer reads ``tokenizer.json``)."""
        text_shards = self.text_encoder_shards
        transformer_shards = self.transformer_shards
        return (
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            *(f"text_encoder/model-{i:05d}-of-{text_shards:05d}.safetensors" for i in range(1, text_shards + 1)),
            "text_encoder/model.safetensors.index.json",
            "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json",
            "transformer/config.json",
            *(
                f"transformer/diffusion_pytorch_model-{i:05d}-of-{transformer_shards:05d}.safetensors"
                for i in range(1, transformer_shards + 1)
            ),
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        )

    @property
    def weights(self) -> tuple[str, ...]:
        """The manifest's ``[[snapshot]]`` entry of this model, named after its repository; it takes
        :attr:`files` (and the rest of their folders) into :attr:`folder`."""
        return (self.repository,)


WAN_VACE_1_3B = WanVaceModel(
    key="1.3b",
    folder="Wan2.1-VACE-1.3B-diffusers",
    repository="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    high_area=832 * 480,
    trained_720p=False,
    transformer_shards=2,
)
WAN_VACE_14B = WanVaceModel(
    key="14b",
    folder="Wan2.1-VACE-14B-diffusers",
    repository="Wan-AI/Wan2.1-VACE-14B-diffusers",
    high_area=1280 * 720,
    trained_720p=True,
    transformer_shards=13,
)


@dataclass(frozen=True)
class QualityPreset:
    steps: int
    area: int | None
    """Target pixel area; ``None`` means the model's ``high_area``."""


QUALITY_PRESETS: dict[str, QualityPreset] = {
    "draft": QualityPreset(steps=12, area=480 * 272),
    "standard": QualityPreset(steps=30, area=832 * 480),
    "high": QualityPreset(steps=50, area=None),
}
"""Explicit ``steps``, ``width`` and ``height`` override the preset's."""

FLOW_SHIFT_480P = 3.0
FLOW_SHIFT_720P = 5.0
"""The scheduler's ``flow_shift`` diffusers recommends for Wan 2.1 at 480p and 720p (the released scheduler
configs hold 3.0 whatever the model, so 720p needs it set)."""


def recommended_flow_shift(model: WanVaceModel, width: int, height: int) -> float:
    """``FLOW_SHIFT_720P`` for a model trained at 720p when the frame is nearer 720p than 480p in area,
    otherwise ``FLOW_SHIFT_480P`` (the 1.3B model was trained at 480p only)."""
    halfway = (832 * 480 + 1280 * 720) / 2
    return FLOW_SHIFT_720P if model.trained_720p and width * height >= halfway else FLOW_SHIFT_480P


def round_to_multiple(value: float, multiple: int = SIZE_MULTIPLE) -> int:
    return max(multiple, round(value / multiple) * multiple)


def size_for_aspect(aspect: float, area: int) -> tuple[int, int]:
    """(width, height), multiples of 16, of about ``area`` pixels with ``aspect`` = width / height."""
    height = math.sqrt(area / aspect)
    return round_to_multiple(height * aspect), round_to_multiple(height)


@dataclass
class Settings:
    """A job's settings after presets and the inputs are taken into account."""

    width: int
    height: int
    steps: int
    frames: int
    windows: list[Window]
    seed: int
    fps: float
    flow_shift: float
    notes: list[str] = field(default_factory=list)


COMMON_PARAMS: tuple[Param, ...] = (
    Param("prompt", "str", required=True, help="What the video shows: subject, action, setting, style."),
    Param("negative_prompt", "str", default=DEFAULT_NEGATIVE_PROMPT, help="What to steer away from."),
    Param(
        "quality",
        "choice",
        default="standard",
        choices=tuple(QUALITY_PRESETS),
        help="draft: 12 steps, ~480x272; standard: 30 steps, ~832x480; high: 50 steps, 832x480 (1.3B) or "
        "1280x720 (14B). steps, width and height override it.",
    ),
    Param("steps", "int", minimum=1, maximum=200, help="Denoising steps (default: from quality)."),
    Param(
        "guidance_scale",
        "float",
        default=5.0,
        minimum=1.0,
        maximum=20.0,
        help="How strongly the prompt steers (1 turns classifier-free guidance off and halves the work).",
    ),
    Param("seed", "int", minimum=0, maximum=2**32 - 1, help="Same seed and settings, same video (default: random)."),
    Param(
        "width",
        "int",
        minimum=SIZE_MULTIPLE,
        maximum=2048,
        help="Output width in pixels, a multiple of 16 (default: from quality and the input's aspect).",
    ),
    Param(
        "height",
        "int",
        minimum=SIZE_MULTIPLE,
        maximum=2048,
        help="Output height in pixels, a multiple of 16 (default: from quality and the input's aspect).",
    ),
    Param(
        "window_frames",
        "int",
        default=81,
        minimum=5,
        maximum=161,
        help="Frames generated at once, 4k+1 (Wan is trained on 81). Longer sequences use several windows.",
    ),
    Param(
        "chunk_overlap",
        "int",
        default=9,
        minimum=1,
        maximum=157,
        help="Frames each window shares with the previous one (4k+1): more joins more smoothly, costs more.",
    ),
    Param(
        "offload",
        "choice",
        default="auto",
        choices=OFFLOAD_CHOICES,
        help="Where the models live: auto (the fastest that fits the GPU's free memory), none (all on the GPU), "
        "model (one model at a time), group (layer by layer, the next copied while one runs), sequential "
        "(layer by layer: least memory, slowest).",
    ),
    Param(
        "fp8_weights",
        "choice",
        default="auto",
        choices=SWITCH_CHOICES,
        help="Store the transformer and text encoder weights in fp8, cast per layer (about half their memory, "
        "slightly less precise). auto: only on CUDA when the bf16 weights would not fit.",
    ),
    Param(
        "vae_tiling",
        "choice",
        default="auto",
        choices=SWITCH_CHOICES,
        help="Decode the video in tiles: less memory for large frames. auto: when untiled would not fit.",
    ),
    Param(
        "flow_shift",
        "float",
        minimum=0.5,
        maximum=20.0,
        help="The sampler's noise schedule shift (default: 3.0 at 480p, 5.0 at 720p for the 14B model, as "
        "diffusers recommends for Wan 2.1). Higher spends more steps on large shapes.",
    ),
)

CONDITIONING_PARAM = Param(
    "conditioning_scale",
    "float",
    default=1.0,
    minimum=0.0,
    maximum=2.0,
    help="How strongly the control video steers the result (0 ignores it).",
)


def validate_common(values: dict[str, Any]) -> dict[str, Any]:
    """Checks across the common parameters, each naming its field."""
    if not values["prompt"].strip():
        raise InvalidInput("prompt", "must describe the video; it is empty")
    for name in ("width", "height"):
        value = values.get(name)
        if value is not None and value % SIZE_MULTIPLE:
            lower = value // SIZE_MULTIPLE * SIZE_MULTIPLE
            raise InvalidInput(
                name, f"must be a multiple of {SIZE_MULTIPLE}, got {value}: use {lower or 16} or {lower + 16}"
            )
    for name in ("window_frames", "chunk_overlap"):
        value = values[name]
        if not is_4k_plus_1(value):
            lower = round_up_4k_plus_1(value) - TEMPORAL_STRIDE
            raise InvalidInput(
                name, f"must be 4k+1 frames (5, 9, 13, ... 81), got {value}: use {max(lower, 1)} or {lower + 4}"
            )
    if values["chunk_overlap"] > values["window_frames"] - TEMPORAL_STRIDE:
        raise InvalidInput(
            "chunk_overlap",
            f"must leave at least {TEMPORAL_STRIDE} new frames per window: {values['chunk_overlap']} is too many "
            f"for window_frames {values['window_frames']}",
        )
    return values


# -- media helpers ----------------------------------------------------------------------------------------


def first_frame(media: Media, name: str) -> np.ndarray:
    frames = media.frames()
    try:
        return next(iter(frames))
    except StopIteration:
        raise InvalidInput(name, "holds no frame") from None
    finally:
        if isinstance(frames, Generator):
            frames.close()


def fit_cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` scaled to fill ``width`` x ``height``, centred, its overhanging sides cropped (no distortion)."""
    import cv2

    source_height, source_width = rgb.shape[:2]
    scale = max(width / source_width, height / source_height)
    crop_width = min(source_width, round(width / scale))
    crop_height = min(source_height, round(height / scale))
    left = (source_width - crop_width) // 2
    top = (source_height - crop_height) // 2
    cropped = rgb[top : top + crop_height, left : left + crop_width]
    shrinking = crop_width > width or crop_height > height
    return cv2.resize(
        np.ascontiguousarray(cropped), (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def read_frames(media: Media, count: int, width: int, height: int, cancelled: Callable[[], None]) -> list[np.ndarray]:
    """The first ``count`` frames of ``media``, each :func:`fit_cover` to ``width`` x ``height``."""
    frames = media.frames()
    result: list[np.ndarray] = []
    try:
        for frame in frames:
            cancelled()
            result.append(fit_cover(frame, width, height))
            if len(result) == count:
                break
    finally:
        if isinstance(frames, Generator):
            frames.close()
    return result


def frames_to_follow(params: Mapping[str, Any], name: str, media: Media) -> int:
    """How many frames of the control input ``name`` the job follows: ``frame_count``, or all of them.
    InvalidInput naming the input when it has fewer frames than asked for."""
    available = media.frame_count
    frames = params.get("frame_count") or available
    if frames > available:
        raise InvalidInput(
            name, f"has {available} frames but frame_count asks for {frames}: lower frame_count or extend it"
        )
    return int(frames)


# -- the runner -------------------------------------------------------------------------------------------


class WanVaceRunner(Runner):
    """Base of the VACE runners. Subclasses set ``mode``, ``description``, ``params``, ``inputs``,
    ``weights``, ``model`` and ``reference_slots``, and implement :meth:`control_media` and
    :meth:`control_frames` (no control: return ``None`` from both)."""

    model: ClassVar[WanVaceModel]
    reference_slots: ClassVar[tuple[str, ...]] = ("reference",)
    python_packages = ("torch", "diffusers", "transformers", "accelerate", "safetensors", "ftfy", "cv2", "PIL")

    models_dir: Path | None = None
    """Set by the daemon's registry; set it by hand to use a runner outside the daemon."""

    def __init__(self) -> None:
        self._loaded: LoadedPipeline | None = None

    # Subclass hooks ---------------------------------------------------------------------------------------

    def control_media(self, inputs: Mapping[str, Media]) -> tuple[str, Media] | None:
        """The input the control video comes from, by name, or ``None`` when the mode has no control."""
        return None

    def control_frames(
        self, frames: list[np.ndarray], params: Mapping[str, Any], ctx: RunContext, notes: list[str]
    ) -> list[np.ndarray]:
        """Turn the input frames (already at the output size) into the control video the model sees."""
        return frames

    # Runner contract --------------------------------------------------------------------------------------

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return validate_common(super().validate(params))

    def check_media(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> None:
        """Before the job is queued: each reference is one still image, and the control input has as many
        frames as ``frame_count`` asks for (InvalidInput naming the input)."""
        for name in self.reference_slots:
            media = inputs.get(name)
            if media is not None and media.frame_count > 1:
                raise InvalidInput(
                    name,
                    f"is a video of {media.frame_count} frames, but a reference is one still image: give an image "
                    "file, or one frame of the video (frame_end = frame_start + 1)",
                )
        control = self.control_media(inputs)
        if control is not None:
            frames_to_follow(params, *control)

    @property
    def models_root(self) -> Path:
        """The models folder (``models_dir``), which the registry sets before anything is validated or loaded."""
        if self.models_dir is None:
            raise RuntimeError(f"{type(self).__name__}.models_dir is not set (the daemon's registry sets it)")
        return Path(self.models_dir)

    @property
    def folder(self) -> Path:
        return self.models_root / self.model.folder

    def load(self, device: Any) -> None:
        """Load (or share) the pipeline for ``device``; runs on the worker thread."""
        if self._loaded is None:
            self._loaded = acquire_pipeline(self.folder, device, self.mode)

    def unload(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            release_pipeline(loaded, self.mode)

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        """Generate the video: frame ``i`` of the output lines up with frame ``i`` of the control input.

        Writes the frames as they become final (a frame is final once no later window overlaps it), reports
        progress per denoising step with previews, and stops at the next step after a cancel.
        """
        if self._loaded is None:
            raise RuntimeError(f"{type(self).__name__}.run() was called before load()")
        import torch
        from PIL import Image

        # 1. References, control input and the settings they imply.
        references = [first_frame(inputs[name], name) for name in self.reference_slots if name in inputs]
        control = self.control_media(inputs)
        settings = self.settings(params, control)

        # 2. The control video at the output size (no control: plain grey, which VACE reads as "no signal").
        ctx.progress(0.0, "preparing control")
        control_video: list[np.ndarray] | None = None
        if control is not None:
            name, media = control
            frames = read_frames(media, settings.frames, settings.width, settings.height, ctx.raise_if_cancelled)
            if len(frames) < settings.frames:
                raise InvalidInput(name, f"ended after {len(frames)} frames; expected {settings.frames}")
            control_video = self.control_frames(frames, params, ctx, settings.notes)

        # 3. The pipeline on the device as the memory plan wants it, and the sampler's shift.
        loaded = self._loaded
        plan = self.plan_for(params, settings, loaded)
        place(loaded, plan, settings.notes)
        settings.notes.append(
            f"memory plan: offload={plan.offload}, fp8_weights={'on' if plan.fp8 else 'off'}, "
            f"vae_tiling={'on' if plan.vae_tiling else 'off'} ({plan.reason})"
        )
        for note in settings.notes:
            ctx.log(note)
        pipe = loaded.pipe
        scheduler_config = pipe.scheduler.config
        shift_key = "flow_shift" if "flow_shift" in scheduler_config else "shift"
        pipe.scheduler = type(pipe.scheduler).from_config(scheduler_config, **{shift_key: settings.flow_shift})
        reference_images = [Image.fromarray(r) for r in references]
        generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        cheap_previews = plan.offload != "none"
        # Encoded once for all windows: with offload the text encoder would otherwise travel per window.
        ctx.progress(0.0, "encoding prompt")
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            prompt=params["prompt"],
            negative_prompt=params["negative_prompt"],
            do_classifier_free_guidance=params["guidance_scale"] > 1.0,
            max_sequence_length=PROMPT_TOKENS,
            device=pipe._execution_device,
        )

        # 4. Window after window; frames are written as soon as no later window overlaps them.
        pending: dict[int, np.ndarray] = {}
        written = 0
        windows = settings.windows
        for index, window in enumerate(windows):
            ctx.raise_if_cancelled()
            video, mask = self._window_conditioning(window, pending, control_video, settings)
            fallback = self._fallback_preview(window, control_video, references, settings)
            reporter = StepReporter(ctx, index, len(windows), settings.steps, len(references), cheap_previews, fallback)
            try:
                output = pipe(
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_embeds,
                    video=[Image.fromarray(f) for f in video],
                    mask=mask,
                    reference_images=reference_images,
                    conditioning_scale=params.get("conditioning_scale", 1.0),
                    height=settings.height,
                    width=settings.width,
                    num_frames=window.length,
                    num_inference_steps=settings.steps,
                    guidance_scale=params["guidance_scale"],
                    generator=generator,
                    output_type="np",
                    callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"],
                )
            finally:
                # On cancel the pipeline stops mid-loop without putting offloaded models back; do it here.
                if cheap_previews:
                    pipe.maybe_free_model_hooks()
                empty_accelerator_cache()
            generated = output.frames[0]
            join_window(pending, window, generated)
            final_until = min(windows[index + 1].start if index + 1 < len(windows) else window.end, settings.frames)
            with FrameWriter(ctx.output_dir) as writer:  # this window's frames, encoded in parallel
                while written < final_until:
                    writer.write(written, pending.pop(written))
                    written += 1
            middle = np.clip(np.rint(generated[len(generated) // 2] * 255.0), 0, 255).astype(np.uint8)
            ctx.progress((index + 1) / len(windows), "writing frames", preview=middle)

        return RunResult(summary=self.summary(params, settings, loaded, plan), frame_count=written)

    # Steps of run -----------------------------------------------------------------------------------------

    def settings(self, params: Mapping[str, Any], control: tuple[str, Media] | None) -> Settings:
        """Resolve presets, sizes, frame counts and the seed for this job's inputs."""
        notes: list[str] = []
        preset = QUALITY_PRESETS[params["quality"]]
        area = preset.area or self.model.high_area
        if control is not None:
            name, media = control
            source_width, source_height = media.size
            fps = float(media.fps)
            frames = frames_to_follow(params, name, media)
        else:
            source_width, source_height = NATIVE_SIZE
            fps = NATIVE_FPS
            frames = params["frame_count"]
        aspect = source_width / source_height
        width, height = params.get("width"), params.get("height")
        if width is None and height is None:
            width, height = size_for_aspect(aspect, area)
            notes.append(f"resolution {width}x{height} from quality={params['quality']} and aspect {aspect:.2f}")
        elif width is None:
            width = round_to_multiple(height * aspect)
        elif height is None:
            height = round_to_multiple(width / aspect)
        windows = plan_windows(frames, params["window_frames"], params["chunk_overlap"])
        if windows[-1].end > frames:
            notes.append(
                f"Wan makes 4k+1 frames: generated {windows[-1].end} and kept the first {frames}, "
                "so the output has as many frames as asked"
            )
        if len(windows) > 1:
            notes.append(
                f"{frames} frames are longer than window_frames={params['window_frames']}: generating "
                f"{len(windows)} overlapping windows, joined by cross-fading the overlaps"
            )
        seed = params["seed"] if params.get("seed") is not None else secrets.randbelow(2**32)
        steps = params.get("steps") or preset.steps
        flow_shift = params.get("flow_shift") or recommended_flow_shift(self.model, width, height)
        return Settings(width, height, steps, frames, windows, seed, fps, flow_shift, notes)

    def plan_for(self, params: Mapping[str, Any], settings: Settings, loaded: LoadedPipeline) -> MemoryPlan:
        """The job's memory plan, from the device's free memory when the pipeline was loaded and the job's
        largest window (parts the user set are kept)."""
        return choose_plan(
            self.model.key,
            getattr(loaded.device, "kind", None) or "cpu",
            loaded.free_at_load,
            settings.width,
            settings.height,
            max(w.length for w in settings.windows),
            params["offload"],
            params["fp8_weights"],
            params["vae_tiling"],
        )

    def memory_plan(self, kind: str, free_memory: int | None) -> dict[str, Any]:
        """For ``health``: the plan in force once loaded, or the plan a default job (``quality=standard``,
        832x480, 81 frames) would get with ``free_memory`` bytes free now."""
        loaded = self._loaded
        if loaded is not None and loaded.plan is not None:
            return {"state": "in force", **loaded.plan.describe()}
        width, height = size_for_aspect(NATIVE_SIZE[0] / NATIVE_SIZE[1], QUALITY_PRESETS["standard"].area or 0)
        plan = choose_plan(self.model.key, kind, free_memory, width, height, 81)
        return {"state": f"predicted for a {width}x{height}, 81-frame job", **plan.describe()}

    def _window_conditioning(
        self,
        window: Window,
        pending: Mapping[int, np.ndarray],
        control_video: list[np.ndarray] | None,
        settings: Settings,
    ) -> tuple[list[np.ndarray], list[Any]]:
        """The conditioning video and mask of one window: frames made by the previous window under a black
        mask (kept), then the control frames (or grey) under a white mask (generated)."""
        from PIL import Image

        keep = Image.new("L", (settings.width, settings.height), 0)
        generate = Image.new("L", (settings.width, settings.height), 255)
        grey = np.full((settings.height, settings.width, 3), 128, dtype=np.uint8)
        video: list[np.ndarray] = []
        mask = []
        for offset in range(window.length):
            frame_index = window.start + offset
            if offset < window.context:
                video.append(pending[frame_index])
                mask.append(keep)
            else:
                # Past the requested end (4k+1 padding) the control's last frame is repeated.
                source = control_video[min(frame_index, settings.frames - 1)] if control_video is not None else grey
                video.append(source)
                mask.append(generate)
        return video, mask

    def _fallback_preview(
        self,
        window: Window,
        control_video: list[np.ndarray] | None,
        references: list[np.ndarray],
        settings: Settings,
    ) -> np.ndarray:
        """What previews show while models are offloaded (decoding would shuttle the VAE to the GPU): the
        window's first new control frame over the reference image."""
        reference = fit_cover(references[0], settings.width, settings.height)
        if control_video is None:
            return reference
        control = control_video[min(window.start + window.context, settings.frames - 1)]
        return ((reference.astype(np.uint16) + control) // 2).astype(np.uint8)

    def summary(
        self, params: Mapping[str, Any], settings: Settings, loaded: LoadedPipeline, plan: MemoryPlan
    ) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "model": self.model.repository,
            "frame_count": settings.frames,
            "width": settings.width,
            "height": settings.height,
            "fps": settings.fps,
            "seed": settings.seed,
            "steps": settings.steps,
            "quality": params["quality"],
            "guidance_scale": params["guidance_scale"],
            "conditioning_scale": params.get("conditioning_scale"),
            "windows": [{"start": w.start, "frames": w.length, "context": w.context} for w in settings.windows],
            "offload": plan.offload,
            "fp8_weights": plan.fp8,
            "vae_tiling": plan.vae_tiling,
            "memory_plan": plan.describe(),
            "flow_shift": settings.flow_shift,
            "device": getattr(loaded.device, "kind", "cpu"),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "notes": list(settings.notes),
        }


REFERENCE_SLOT = MediaSlot(
    "reference", "image", help="The subject to animate: a character, person or object, on a plain background."
)
