"""Tiny ONNX stand-ins for the face-swap weights, with the real files' input and output signatures.

insightface routes an ONNX file by its signature (``model_zoo.ModelRouter``): 5 or more outputs make a SCRFD
detector, a 192x192 input a landmark model, two inputs of which the first is 128x128 the inswapper (whose last
initializer is the 512x512 ``emap``), any other square input of 112 or more an ArcFace recogniser. The files
built here have the tensor names and shapes of buffalo_l's ``det_10g.onnx`` (input ``input.1`` 1x3x?x?, nine
outputs ``448``...``500``: scores, box distances and 5-point offsets for strides 8, 16 and 32),
``w600k_r50.onnx`` (``input.1`` Nx3x112x112 -> 512), ``1k3d68.onnx`` (``data`` Nx3x192x192 -> ``fc1`` Nx3309),
``inswapper_128.onnx`` (``target`` 1x3x128x128 and ``source`` 1x512 -> ``output`` 1x3x128x128) and its fp16
export (float32 inputs and output, float16 weights), and FaceFusion's ``gfpgan_1.4.onnx`` (``input``
1x3x512x512 -> ``output``), so the runner loads them through exactly the code path of the real weights.

They are not random: random weights would find no face in a real photo, and the swap and blend code would never
run. Each is a small hand-made function with a predictable result:

- **detector**: a "bright, warm blob" finder. It averages brightness plus warmth (red minus blue) of the
  detector input (normalised as SCRFD's, about -1..1) over 32x32 cells (the stride-32 head) and fires at each
  cell that is the maximum of the ``PEAK_CELLS`` square around it and above ``BLOB_THRESHOLD``; the stride-8 and
  stride-16 heads never fire. Every detection is a square of ``BOX_STRIDES`` cells (128 pixels of the detector
  input) centred on its cell, with the five landmarks at the ArcFace template's places inside the box. Lit
  faces are such blobs, so faces in real photos are found (with candles, arms and bright walls: two or three
  "faces" per frame of the sample video, six in the group photo); a black frame gives nothing, which is how
  frames without faces are exercised.
- **recogniser**: an 8x8 average-pooled thumbnail of the aligned 112x112 crop, centred, times a fixed random
  matrix (a random projection keeps cosine similarities): the same crop gives the same embedding, different
  crops different ones.
- **landmarks** (1k3d68): insightface's own mean 68-point face shape, whatever the crop shows.
- **swapper**: ``sigmoid(4 * target - 2 + tint(source))``, a tone curve of the target crop with a colour shift
  that depends on the source embedding, so two sources give two different results.
- **enhancer**: a 5x5 box blur of its input, so its effect is visible and measurable.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
OPSET = 17

DETECTOR_STRIDE = 32
"""The only detector head that fires."""
BOX_STRIDES = 4
"""Side of every detected box, in strides of the detector input (128 pixels at det_size 640)."""
BLOB_THRESHOLD = 0.5
"""Mean brightness plus warmth of a 32x32 cell of the detector input above which a local maximum is a face."""
PEAK_CELLS = 7
"""A cell fires only if no cell in the PEAK_CELLS x PEAK_CELLS square around it is brighter."""

DETECTOR_OUTPUTS = {8: ("448", "451", "454"), 16: ("471", "474", "477"), 32: ("494", "497", "500")}
"""det_10g's output names (scores, box distances, landmark offsets) per stride, in the file's output order
448, 471, 494, 451, 474, 497, 454, 477, 500."""

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
"""insightface's 5-point ArcFace template (eyes, nose tip, mouth corners) in a 112x112 crop."""

MANIFEST_NAMES = {
    "detector": "buffalo_l-det_10g",
    "recognition": "buffalo_l-w600k_r50",
    "landmarks": "buffalo_l-1k3d68",
    "swapper": "inswapper_128",
    "swapper_fp16": "inswapper_128_fp16",
    "enhancer": "gfpgan_1.4",
}
"""Manifest names of the files each builder stands in for."""


def _model(nodes: list, inputs: list, outputs: list, initializers: list, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vfx-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def build_detector() -> onnx.ModelProto:
    """det_10g's signature: input ``input.1`` (1, 3, H, W); outputs per stride 8/16/32: scores (N, 1), box
    distances (N, 4) and landmark offsets (N, 10), N = (H / stride) * (W / stride) * 2 anchors."""
    # SCRFD's anchor of a cell sits at the cell's top-left corner; the offsets centre each box on its cell.
    template = (ARCFACE_TEMPLATE_112 - 56.0) / 112.0 * BOX_STRIDES + 0.5
    distances = np.array([[BOX_STRIDES / 2 - 0.5] * 2 + [BOX_STRIDES / 2 + 0.5] * 2], np.float32)
    initializers = [
        # brightness (r + g + b) / 3 plus warmth r - b, in one 1x1 convolution
        _const("blob_w", np.array([4 / 3, 1 / 3, -2 / 3], np.float32).reshape(1, 3, 1, 1)),
        _const("zero", np.array(0.0, np.float32)),
        _const("peak_gain", np.array(1000.0, np.float32)),
        _const("blob_gain", np.array(40.0, np.float32)),
        _const("blob_threshold", np.array(BLOB_THRESHOLD, np.float32)),
        _const("column", np.array([-1, 1], np.int64)),
        _const("box", distances),
        _const("kps", template.reshape(1, 10)),
    ]
    nodes = [helper.make_node("Conv", ["input.1", "blob_w"], ["blob"], name="blob")]
    score_names, box_names, kps_names = [], [], []
    for stride in (8, 16, 32):
        pooled = f"pooled_{stride}"
        nodes.append(
            helper.make_node("AveragePool", ["blob"], [pooled], kernel_shape=[stride, stride], strides=[stride, stride])
        )
        cell = f"cell_{stride}"
        if stride == DETECTOR_STRIDE:
            nodes += [
                helper.make_node(
                    "MaxPool",
                    [pooled],
                    ["neighbours"],
                    kernel_shape=[PEAK_CELLS, PEAK_CELLS],
                    strides=[1, 1],
                    pads=[PEAK_CELLS // 2] * 4,
                ),
                helper.make_node("Sub", [pooled, "neighbours"], ["below_peak"]),
                helper.make_node("Mul", ["below_peak", "peak_gain"], ["peak_term"]),
                helper.make_node("Sub", [pooled, "blob_threshold"], ["above"]),
                helper.make_node("Mul", ["above", "blob_gain"], ["blob_term"]),
                helper.make_node("Add", ["peak_term", "blob_term"], ["logit"]),
                helper.make_node("Sigmoid", ["logit"], [cell]),
            ]
        else:
            nodes.append(helper.make_node("Mul", [pooled, "zero"], [cell]))
        flat, other, pair = f"flat_{stride}", f"other_{stride}", f"pair_{stride}"
        score, bbox, kps = DETECTOR_OUTPUTS[stride]
        shape = f"shape_{stride}"
        nodes += [
            helper.make_node("Reshape", [cell, "column"], [flat]),
            helper.make_node("Mul", [flat, "zero"], [other]),  # the second anchor of each cell never fires
            helper.make_node("Concat", [flat, other], [pair], axis=1),
            helper.make_node("Reshape", [pair, "column"], [score]),
            helper.make_node("Shape", [score], [shape]),
            helper.make_node("Expand", ["box", shape], [bbox]),
            helper.make_node("Expand", ["kps", shape], [kps]),
        ]
        score_names.append(score)
        box_names.append(bbox)
        kps_names.append(kps)
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"anchors_{stride}", width])
        for names, width in ((score_names, 1), (box_names, 4), (kps_names, 10))
        for stride, name in zip((8, 16, 32), names, strict=True)
    ]
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    return _model(nodes, [x], outputs, initializers, "tiny_scrfd")


def build_recognition(seed: int = 5) -> onnx.ModelProto:
    """w600k_r50's signature: ``input.1`` (N, 3, 112, 112) -> (N, 512)."""
    projection = np.random.default_rng(seed).standard_normal((192, 512)).astype(np.float32)
    nodes = [
        # Node names stay clear of "Sub"/"Mul" prefixes: insightface reads those as an MXNet export with
        # normalisation inside the graph and would skip the (x - 127.5) / 127.5 the real w600k_r50 expects.
        helper.make_node("AveragePool", ["input.1"], ["thumb"], kernel_shape=[14, 14], strides=[14, 14], name="pool"),
        helper.make_node("Flatten", ["thumb"], ["flat"], axis=1, name="flatten"),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1, name="average"),
        helper.make_node("Sub", ["flat", "mean"], ["centred"], name="centre"),
        helper.make_node("MatMul", ["centred", "projection"], ["683"], name="embed"),
    ]
    initializers = [_const("projection", projection)]
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])
    y = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])
    return _model(nodes, [x], [y], initializers, "tiny_arcface")


def mean_face_68() -> np.ndarray:
    """insightface's mean 68-point face (x right, y down, roughly -0.6..0.6), shape (68, 3)."""
    from insightface.data import get_object

    return np.asarray(get_object("meanshape_68.pkl"), dtype=np.float32)


def build_landmarks_3d68() -> onnx.ModelProto:
    """1k3d68's signature: ``data`` (N, 3, 192, 192) -> ``fc1`` (N, 3309): 1103 points of (x, y, z) in -1..1 of
    the crop, of which insightface keeps the last 68."""
    points = np.zeros((1103, 3), np.float32)
    points[-68:] = mean_face_68()
    initializers = [
        _const("ignore", np.zeros((3, 3309), np.float32)),
        _const("points", points.reshape(1, 3309)),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["avg"], name="avg"),
        helper.make_node("Flatten", ["avg"], ["avg_flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["avg_flat", "ignore"], ["nothing"], name="project"),
        helper.make_node("Add", ["nothing", "points"], ["fc1"], name="shape"),
    ]
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 192, 192])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", 3309])
    return _model(nodes, [x], [y], initializers, "tiny_1k3d68")


def build_swapper(fp16: bool = False, seed: int = 7) -> onnx.ModelProto:
    """inswapper_128's signature: ``target`` (1, 3, 128, 128) in 0..1 and ``source`` (1, 512) -> ``output``
    (1, 3, 128, 128) in 0..1; the last initializer is the 512x512 ``emap``. With ``fp16`` the weights are float16
    and the inputs and output stay float32, as in the fp16 export."""
    rng = np.random.default_rng(seed)
    dtype = np.float16 if fp16 else np.float32
    tensor_type = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    emap = (rng.standard_normal((512, 512)) / np.sqrt(512)).astype(dtype)
    initializers = [
        _const("gain", np.array(4.0, dtype)),
        _const("offset", np.array(-2.0, dtype)),
        _const("tint_w", (rng.standard_normal((512, 3)) * 0.08).astype(dtype)),
        _const("tint_shape", np.array([1, 3, 1, 1], np.int64)),
        _const("emap", emap),
    ]
    nodes: list = []
    target, source = "target", "source"
    if fp16:
        nodes += [
            helper.make_node("Cast", ["target"], ["target_h"], to=tensor_type),
            helper.make_node("Cast", ["source"], ["source_h"], to=tensor_type),
        ]
        target, source = "target_h", "source_h"
    nodes += [
        helper.make_node("MatMul", [source, "emap"], ["latent"]),
        helper.make_node("MatMul", ["latent", "tint_w"], ["tint_flat"]),
        helper.make_node("Reshape", ["tint_flat", "tint_shape"], ["tint"]),
        helper.make_node("Mul", [target, "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
        helper.make_node("Add", ["shifted", "tint"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["output_h" if fp16 else "output"]),
    ]
    if fp16:
        nodes.append(helper.make_node("Cast", ["output_h"], ["output"], to=TensorProto.FLOAT))
    inputs = [
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512]),
    ]
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])
    return _model(nodes, inputs, [y], initializers, "tiny_inswapper")


def build_enhancer() -> onnx.ModelProto:
    """FaceFusion's gfpgan_1.4 signature: ``input`` (1, 3, 512, 512) in -1..1 -> ``output`` (1, 3, 512, 512)."""
    kernel = np.zeros((3, 3, 5, 5), np.float32)
    for channel in range(3):
        kernel[channel, channel] = 1.0 / 25.0
    nodes = [helper.make_node("Conv", ["input", "blur"], ["output"], pads=[2, 2, 2, 2])]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])
    return _model(nodes, [x], [y], [_const("blur", kernel)], "tiny_gfpgan")


BUILDERS = {
    "detector": build_detector,
    "recognition": build_recognition,
    "landmarks": build_landmarks_3d68,
    "swapper": build_swapper,
    "swapper_fp16": lambda: build_swapper(fp16=True),
    "enhancer": build_enhancer,
}

REQUIRED_ROLES = ("detector", "recognition", "landmarks", "swapper")
"""The files ``face_swap`` needs on disk to be ready; the fp16 swapper and the enhancer are optional."""


def real_manifest_entries() -> dict[str, dict]:
    """The project manifest's face-swap entries, by name."""
    with open(REPO_ROOT / "models" / "manifest.toml", "rb") as f:
        entries = tomllib.load(f).get("file", [])
    wanted = set(MANIFEST_NAMES.values())
    found = {entry["name"]: entry for entry in entries if entry["name"] in wanted}
    missing = wanted - set(found)
    if missing:
        raise AssertionError(f"models/manifest.toml lacks the face-swap entries {sorted(missing)}")
    return found


def install_tiny_models(models_dir: Path, roles: tuple[str, ...] = REQUIRED_ROLES) -> dict[str, Path]:
    """Write the tiny models for ``roles`` where the manifest puts the real files; return role -> path."""
    entries = real_manifest_entries()
    written = {}
    for role in roles:
        path = models_dir / entries[MANIFEST_NAMES[role]]["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(BUILDERS[role](), str(path))
        written[role] = path
    return written


def write_test_manifest(manifest_path: Path, models_dir: Path, roles: tuple[str, ...] = tuple(BUILDERS)) -> None:
    """A manifest with the real face-swap entries (names, modes, paths, sources, licences), whose sizes and
    sha256 are those of the tiny files in ``models_dir`` (or of a made-up payload for a role not installed, so
    that file counts as missing)."""
    lines = []
    for role, name in MANIFEST_NAMES.items():
        entry = real_manifest_entries()[name]
        path = models_dir / entry["path"]
        data = path.read_bytes() if role in roles and path.is_file() else b"not installed"
        modes = ", ".join(f'"{mode}"' for mode in entry["modes"])
        lines += [
            "[[file]]",
            f'name = "{name}"',
            f"modes = [{modes}]",
            f'path = "{entry["path"]}"',
            f'url = "{entry["url"]}"',
            f"size = {len(data)}",
            f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
            f'licence = "{entry["licence"]}"',
            "",
        ]
    manifest_path.write_text("\n".join(lines), encoding="utf-8")
