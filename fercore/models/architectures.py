"""Model architectures: ``build_model(name, **params)``, and saving/loading with the resolved config.

Every model takes (batch, 48, 48, 1) float32 pixel values in 0–255 (scaling is its first layer)
and returns 7 softmax probabilities in FER2013 class order, in float32 even under mixed precision.

* ``coursera`` — the seed's VGG-like CNN (64@3×3, 128@5×5, 512@3×3, 512@3×3, dense 256 and 512).
* ``fernet`` — ours: a VGG/ResNet-style net sized for fast CPU training (stages of 3×3 convs with
  batch norm, residual shortcuts, global pooling); width and depth are parameters.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fercore.inference.preprocess import FACE_SIZE
from fercore.labels import NUM_CLASSES

_CONFIG_ENTRY = "fercore.json"

# The only place model names live (like timm's ``_registry``): builders register themselves with
# :func:`register_model`; the training config, its CLI and the Train form ask :func:`list_models`.
_REGISTRY: dict[str, Callable[..., Any]] = {}

BuilderT = TypeVar("BuilderT", bound=Callable[..., Any])


def register_model(name: str) -> Callable[[BuilderT], BuilderT]:
    """Decorator that registers an architecture's builder under ``name`` (a name is taken once)."""

    def add(builder: BuilderT) -> BuilderT:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return add


def list_models() -> tuple[str, ...]:
    """The registered architecture names, in registration order."""
    return tuple(_REGISTRY)


def get_model_builder(name: str) -> Callable[..., Any]:
    """The builder registered as ``name``; ValueError naming the choices for an unknown one."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def _keras():
    import keras

    return keras


def _conv_bn_relu(x, filters: int, kernel: int, name: str, pool_first: bool = False):
    """Conv → BatchNorm → ReLU; ``pool_first`` max-pools the conv's output (2×2) before the other two."""
    layers = _keras().layers
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    if pool_first:
        x = layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register_model("coursera")
def build_coursera(dropout: float = 0.25, dense_dropout: float = 0.25, **_: Any):
    """The seed CNN (Coursera guided project): four conv blocks and two dense blocks."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for i, (filters, kernel) in enumerate([(64, 3), (128, 5), (512, 3), (512, 3)], start=1):
        x = _conv_bn_relu(x, filters, kernel, f"block{i}")
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{i}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate([256, 512], start=1):
        x = layers.Dense(units, use_bias=False, name=f"fc{i}")(x)
        x = layers.BatchNormalization(name=f"fc{i}_bn")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        x = layers.Dropout(dense_dropout, name=f"fc{i}_drop")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model(inputs, outputs, name="coursera")


@register_model("fernet")
def build_fernet(
    widths: tuple[int, ...] = (64, 128, 256, 256),
    depths: tuple[int, ...] = (2, 2, 2, 2),
    dropout: float = 0.4,
    stem_width: int = 32,
    stem_pool_first: bool = False,
    proj_bn: bool = True,
    *,
    input_size: int | None = FACE_SIZE,  # set by the run (augment.crop), not a form parameter
    **_: Any,
):
    """Our CPU-friendly residual CNN.

    A cheap full-resolution stem (3×3 conv at ``stem_width`` channels, 48×48) is max-pooled to
    24×24, where the expensive stages start. Stage ``i`` has ``depths[i]`` 3×3 conv-BN-ReLU layers
    at ``widths[i]`` channels, a 1×1 projection shortcut around them, and each stage after the
    first halves the resolution with a 2×2 max-pool (24 → 12 → 6 → 3; an odd side rounds up). Global average
    pooling, dropout, softmax. Most of the FLOPs of a VGG-style net sit at 48×48; starting the
    stages at 24×24 buys ~4× throughput for a small loss in detail.

    Two switches trade BatchNorm work, which costs more than the convolutions on a CPU with matrix
    units (AMX), for a small change in the net's maths: ``stem_pool_first`` pools the
    stem's 48×48 convolution to 24×24 *before* its BatchNorm and ReLU (ReLU and max commute; only
    BatchNorm's statistics now come from the pooled values), so both run on a quarter of the
    pixels; ``proj_bn=False`` leaves the 1×1 projection shortcuts without a BatchNorm of their own
    (the main path's layers are normalised; the projection is a plain linear map of them).

    Convolutions and global pooling take any side: ``input_size=None`` builds a model for
    training on random crops (:attr:`fercore.train.config.Augment.crop`); it is served at 48×48
    (:func:`to_float32`).
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((input_size, input_size, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, offset=-0.5, name="scale")(inputs)
    x = _conv_bn_relu(x, stem_width, 3, "stem", pool_first=stem_pool_first)  # then stage 0 has no pool
    if len(widths) != len(depths):
        raise ValueError(f"widths and depths need one entry per stage, got {len(widths)} and {len(depths)}")
    for s, (width, depth) in enumerate(zip(widths, depths, strict=True)):
        if s or not stem_pool_first:
            x = layers.MaxPooling2D(2, padding="same", name=f"s{s}_pool")(x)  # 48 → 24 → 12 → 6 → 3; 40 → … 5 → 3
        shortcut = x
        for d in range(depth):
            x = _conv_bn_relu(x, width, 3, f"s{s}_c{d}")
        if shortcut.shape[-1] != width:
            shortcut = layers.Conv2D(width, 1, use_bias=False, name=f"s{s}_proj")(shortcut)
            if proj_bn:
                shortcut = layers.BatchNormalization(name=f"s{s}_proj_bn")(shortcut)
        x = layers.Add(name=f"s{s}_add")([x, shortcut])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model(inputs, outputs, name="fernet")


def build_model(name: str, **params: Any):
    """Build the architecture registered as ``name`` with its builder's keyword ``params`` (unknown
    names raise ValueError)."""
    return get_model_builder(name)(**params)


def count_flops(model) -> int:
    """Multiply-accumulate count ×2 of one 48×48 face through the conv and dense layers."""
    total = 0
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "Conv2D":
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            total += 2 * h * w * c_out * c_in * kh * kw
        elif cls == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def save_model(model, path: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Save a ``.keras`` file that also carries the resolved training config (``fercore.json``).

    Keras stores its archive uncompressed; the file is rewritten with deflate (float weights shrink
    by about 8 %, the config by 95 %), which every zip reader, Keras included, loads as before. The
    file appears whole or not at all (written beside it, then renamed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw, tmp = path.with_name(path.stem + ".raw.keras"), path.with_name(path.stem + ".tmp.keras")
    try:
        model.save(raw)
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for entry in src.infolist():
                dst.writestr(entry.filename, src.read(entry))
            if config is not None:
                dst.writestr(_CONFIG_ENTRY, json.dumps(config, indent=2, default=str))
    finally:
        raw.unlink(missing_ok=True)
    tmp.replace(path)
    return path


def read_model_config(path: str | Path) -> dict[str, Any] | None:
    """The training config stored in a ``.keras`` file by :func:`save_model`, if any."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read(_CONFIG_ENTRY))
    except (KeyError, OSError, zipfile.BadZipFile, ValueError):
        return None


def load_keras_model(path: str | Path, compile: bool = False):
    """Load a ``.keras`` file, or ``model.json`` with its ``.weights.h5`` beside it."""
    keras = _keras()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix == ".json":
        model = keras.models.model_from_json(path.read_text())
        weights = path.with_name(path.name[: -len(".json")] + ".weights.h5")
        if not weights.exists():
            weights = path.with_suffix(".weights.h5")
        model.load_weights(weights)
        return model
    return keras.models.load_model(path, compile=compile)


def _serving_config(node: Any) -> Any:
    """A copy of a Keras config with every mixed dtype policy replaced by float32 and an input of
    open side (a model trained on crops) fixed at 48×48 (layer names and other strings are left
    alone)."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            return {**node, "config": {**node["config"], "name": "float32"}}
        if node.get("class_name") == "InputLayer" and isinstance(node.get("config"), dict):
            shape = node["config"].get("batch_shape")
            if isinstance(shape, (list, tuple)) and len(shape) == 4 and None in tuple(shape)[1:3]:
                node = {**node, "config": {**node["config"], "batch_shape": [shape[0], FACE_SIZE, FACE_SIZE, shape[3]]}}
        return {
            k: "float32" if k == "dtype" and isinstance(v, str) and v.startswith("mixed_") else _serving_config(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_serving_config(v) for v in node]
    return node


def _open_side(model: Any) -> bool:
    """Whether the model's input takes any side (built for training on crops)."""
    return any(d is None for d in tuple(model.inputs[0].shape)[1:3])


def to_float32(model):
    """The model itself if it computes in float32 on 48×48 faces, else a twin with the same weights
    that does.

    A model trained under mixed precision (bfloat16 compute, float32 weights) is exported and
    served in float32: TFLite has no bfloat16 kernels and float32 is what LiteRT and Keras run
    fastest on a CPU without AMX. A model trained on crops (open input side) is served on the
    whole 48×48 face, the side every inference path and TFLite file expects.
    """
    keras = _keras()
    if not _open_side(model) and all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers):
        return model
    twin = keras.Model.from_config(_serving_config(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin
