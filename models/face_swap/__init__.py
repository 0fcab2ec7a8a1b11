"""Face swap with insightface's models (SCRFD detection, ArcFace identity, inswapper_128, optional GFPGAN).

- :mod:`.runner`: the ``face_swap`` mode, offline and live (:class:`.runner.FaceSwapRunner`);
- :mod:`.analysis`: the ONNX models through onnxruntime (detection, embedding, swap, landmarks, enhancer);
- :mod:`.blend`: crop masks, the mouth mask, colour transfer and feathered paste-back.

Importing this package imports nothing; the submodules import numpy, and onnxruntime/OpenCV only when loading.
"""
