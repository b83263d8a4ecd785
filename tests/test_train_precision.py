"""fercore.train.precision: the precision rule follows the hardware (bf16 only where it is native)."""

import pytest

from fercore.train.config import TrainConfig
from fercore.train.precision import auto_rule, cpu_flags, keras_policy, resolve_precision

AVX2_LAPTOP = frozenset({"sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = AVX2_LAPTOP | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_auto_picks_float32_on_a_cpu_without_native_bf16():
    assert resolve_precision("auto", flags=AVX2_LAPTOP, env={}, gpu=None) == "float32"


def test_auto_picks_bfloat16_where_the_cpu_has_it():
    assert resolve_precision("auto", flags=SAPPHIRE_RAPIDS, env={}, gpu=None) == "bfloat16"


def test_a_onednn_isa_cap_below_bf16_means_float32():
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert resolve_precision("auto", flags=SAPPHIRE_RAPIDS, env=env, gpu=None) == "float32"
    assert resolve_precision(
        "auto", flags=SAPPHIRE_RAPIDS, env={"ONEDNN_MAX_CPU_ISA": "avx512_core_amx"}, gpu=None
    ) == ("bfloat16")


@pytest.mark.parametrize(("capability", "expected"), [((8, 6), "bfloat16"), ((7, 5), "float16"), ((6, 1), "float32")])
def test_auto_on_gpus_follows_the_compute_capability(capability, expected):
    assert resolve_precision("auto", flags=AVX2_LAPTOP, env={}, gpu=capability) == expected


def test_explicit_choices_are_kept_and_unknown_ones_refused():
    assert resolve_precision("float32", flags=SAPPHIRE_RAPIDS, gpu=None) == "float32"
    assert keras_policy("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8")


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n"
    assert cpu_flags(text) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags("nothing here") == frozenset()


def test_old_configs_mixed_precision_maps_onto_the_rule():
    assert TrainConfig.from_dict({"mixed_precision": True}).precision == "auto"
    assert TrainConfig.from_dict({"mixed_precision": False}).precision == "float32"
    assert TrainConfig().precision == "auto"
    with pytest.raises(ValueError, match="unknown precision"):
        TrainConfig(precision="int4")


def test_the_rule_in_words_says_what_auto_picks_and_why():
    assert auto_rule(AVX2_LAPTOP, {}, None) == (
        "auto → float32: this CPU has no native bfloat16 (it would be emulated, many times slower)"
    )
    assert auto_rule(SAPPHIRE_RAPIDS, {}, None).startswith("auto → bfloat16 on this CPU")
    assert "limited to AVX2" in auto_rule(SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, None)
    assert auto_rule(AVX2_LAPTOP, {}, (8, 0)).startswith("auto → bfloat16 on this GPU")


def test_compute_precision_sets_the_policy_inside_and_restores_it_after():
    import keras

    from fercore.train.precision import compute_precision

    before = keras.config.dtype_policy().name
    with compute_precision("bfloat16") as concrete:
        assert concrete == "bfloat16" and keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(RuntimeError), compute_precision("float16"):
        raise RuntimeError("a failed run")
    assert keras.config.dtype_policy().name == before
