"""Which floating-point precision a training run computes in, chosen by what the hardware does natively.

bfloat16 halves the memory traffic of every layer and runs on AMX / AVX512-BF16 units at several times
the float32 rate, but on a CPU without those instructions (most laptops: AVX2 + FMA only) oneDNN
*emulates* it and a step is many times slower than float32. So ``auto`` picks:

* a GPU of compute capability >= 8.0 (Ampere and later): bfloat16; an older GPU (>= 7.0): float16;
* a CPU whose ``/proc/cpuinfo`` flags include ``avx512_bf16`` or ``amx_bf16``, and whose oneDNN
  dispatcher is not limited below those instructions (``ONEDNN_MAX_CPU_ISA``): bfloat16;
* anything else (AVX2-only CPUs, other platforms, unknown): float32.

Weights stay float32 under every choice (Keras mixed precision), and exported models are float32.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

PRECISIONS: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
_POLICIES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16", "float32": "float32"}
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) at or above which bf16 kernels are native
_BF16_ISAS = frozenset(
    {
        "ALL",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    }
)


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (or of the given text); empty where unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def onednn_isa_limit(env: Mapping[str, str] | None = None) -> str:
    """The instruction-set cap given to oneDNN's dispatcher, upper case (``ALL`` when none)."""
    env = os.environ if env is None else env
    return (env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or "ALL").strip().upper()


def cpu_has_native_bf16(flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when this CPU runs bfloat16 natively and oneDNN is allowed to use it."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & BF16_CPU_FLAGS) and onednn_isa_limit(env) in _BF16_ISAS


def gpu_compute_capability() -> tuple[int, int] | None:
    """The compute capability of the first GPU TensorFlow sees, or None (no GPU, or TF not wanted yet).

    Only asks TensorFlow when it is already imported: a form that estimates a run stays light."""
    import sys

    if "tensorflow" not in sys.modules:
        return None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(cc) if cc else (0, 0)


def resolve_precision(
    choice: str,
    flags: frozenset[str] | None = None,
    env: Mapping[str, str] | None = None,
    gpu: tuple[int, int] | None | str = "detect",
) -> str:
    """``choice`` as a concrete precision (``bfloat16``, ``float16`` or ``float32``).

    ``auto`` follows the hardware (see the module docstring); ``flags``/``env``/``gpu`` default to
    this machine's and exist for tests (``gpu="detect"`` asks TensorFlow, None means no GPU)."""
    if choice not in PRECISIONS:
        raise ValueError(f"unknown precision {choice!r}; choose one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    capability = gpu_compute_capability() if isinstance(gpu, str) else gpu
    if capability:
        return "bfloat16" if capability >= (8, 0) else "float16" if capability >= (7, 0) else "float32"
    return "bfloat16" if cpu_has_native_bf16(flags, env) else "float32"


def keras_policy(precision: str) -> str:
    """The Keras dtype policy of a concrete precision (``resolve_precision``'s result)."""
    return _POLICIES[resolve_precision(precision)]


def auto_rule(
    flags: frozenset[str] | None = None,
    env: Mapping[str, str] | None = None,
    gpu: tuple[int, int] | None | str = "detect",
) -> str:
    """What ``auto`` means on this machine, in words (a form shows it beside the precision choice)."""
    choice = resolve_precision("auto", flags, env, gpu)
    capability = gpu_compute_capability() if isinstance(gpu, str) else gpu
    if capability:
        return f"auto → {choice} on this GPU (compute capability {capability[0]}.{capability[1]})"
    if choice == "bfloat16":
        return "auto → bfloat16 on this CPU (it runs bfloat16 natively: AVX512-BF16/AMX)"
    native_flags = (cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS
    if native_flags:
        return f"auto → float32: oneDNN is limited to {onednn_isa_limit(env)}, below this CPU's native bfloat16"
    return "auto → float32: this CPU has no native bfloat16 (it would be emulated, many times slower)"


@contextmanager
def compute_precision(precision: str) -> Iterator[str]:
    """Build and train models in ``precision`` (resolved by :func:`resolve_precision`) inside the block;
    the previous Keras dtype policy comes back after it, so a training run in a process (tests, notebooks)
    leaves no mixed policy behind. Yields the concrete precision."""
    import keras

    concrete = resolve_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(_POLICIES[concrete])
    try:
        yield concrete
    finally:
        keras.config.set_dtype_policy(previous)
