"""LivePortrait in our own torch code, loading the officially released weights (KwaiVGI/LivePortrait).

One module per network of the paper, with the parameter names and shapes of the released checkpoints:

- :mod:`.appearance_feature_extractor` (F): source crop -> 3D appearance feature volume;
- :mod:`.motion_extractor` (M): crop -> canonical keypoints, head pose bins, expression, scale, translation;
- :mod:`.warping` (W, with its dense motion network): warps the volume from source to driving keypoints;
- :mod:`.spade_generator` (G): warped features -> 512x512 image;
- :mod:`.stitching_retargeting` (S, R_eyes, R_lip): the three small MLPs.

:func:`.loader.load_liveportrait` is the one entry point that builds them from a weights folder.
:mod:`.keypoints` holds the pose and keypoint maths, :mod:`.crop` the face crop and paste-back, and
:mod:`.pipeline` the animation itself (:class:`.pipeline.LivePortraitAnimator`).

Importing this package imports nothing; the submodules import torch (networks) or OpenCV (crop).
"""
