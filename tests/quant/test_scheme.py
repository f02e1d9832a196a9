from __future__ import annotations

import pytest

from hwnas.errors import ConfigError, HwnasError, UnknownNameError
from quant import ORT_CPU, ORT_CPU_AVX2, TENSORRT, QuantScheme, get_scheme, host_ort_scheme


def test_presets_describe_their_targets() -> None:
    assert ORT_CPU.activation_qrange == (0, 255) and not ORT_CPU.activation_symmetric
    assert TENSORRT.activation_qrange == (-128, 127) and TENSORRT.activation_symmetric
    for s in (ORT_CPU, TENSORRT):
        assert s.weight_qrange == (-127, 127)
    assert "hardswish" not in ORT_CPU.fused_activations and "hardswish" in TENSORRT.fused_activations


def test_get_scheme_by_name_and_unknown_name() -> None:
    assert get_scheme("ort_cpu") is ORT_CPU
    assert get_scheme(TENSORRT) is TENSORRT
    with pytest.raises(UnknownNameError, match="unknown quantization scheme 'tflite'"):
        get_scheme("tflite")


def test_replace_returns_a_validated_copy() -> None:
    s = ORT_CPU.replace(activation_observer="mse")
    assert s.activation_observer == "mse" and ORT_CPU.activation_observer == "minmax"
    assert hash(s) != hash(ORT_CPU)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation_dtype": "int4"}, "activation_dtype"),
        ({"activation_symmetric": True}, "symmetric activations need"),
        ({"weight_qmax": 200}, "weight_qmax"),
        ({"activation_observer": "kl"}, "activation_observer"),
        ({"percentile": 20.0}, "percentile"),
        ({"qat_method": "pact"}, "qat_method"),
        ({"fused_activations": frozenset({"swishy"})}, "unknown fused"),
    ],
)
def test_invalid_schemes_raise_one_line_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        QuantScheme(name="bad", **kwargs)
    assert isinstance(info.value, HwnasError) and "\n" not in str(info.value)


def test_host_scheme_reduces_weight_range_only_on_x86_without_vnni() -> None:
    assert host_ort_scheme({"avx2", "fma"}) is ORT_CPU_AVX2
    assert ORT_CPU_AVX2.weight_qrange == (-63, 63) and 2 * 255 * 63 <= 32767 < 2 * 255 * 127
    assert host_ort_scheme({"avx2", "avx512f", "avx512_vnni"}) is ORT_CPU
    assert host_ort_scheme({"avx2", "avx_vnni"}) is ORT_CPU
    assert host_ort_scheme({"neon"}) is ORT_CPU
    assert host_ort_scheme() in (ORT_CPU, ORT_CPU_AVX2)
