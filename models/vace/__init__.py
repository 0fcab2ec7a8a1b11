"""Wan 2.1 VACE through diffusers' ``WanVACEPipeline``: the modes ``vace_pose``, ``vace_motion`` and ``r2v``.

- :mod:`.runner`: the checkpoints, the parameters every VACE mode shares and the runner base;
- :mod:`.pose`, :mod:`.motion`, :mod:`.r2v`: one runner per mode (1.3B and 14B variants);
- :mod:`.pipeline`: loading, sharing one pipeline between modes, placement on the device and release;
- :mod:`.windows`: 4k+1 frame windows joined by cross-fading; :mod:`.preview`: progress, cancel, previews;
- :mod:`.optical_flow` and :mod:`.depth`: the control videos ``vace_motion`` draws from a driving strip.

Importing this package imports nothing; the submodules import numpy, and torch/diffusers only when loading.
"""
