"""Config validation, channel splits and config_id."""

from __future__ import annotations

import json

import pytest

import lab
from lab.config import ConfigError, MixerConfig, ModelConfig, StageConfig, config_id, split_kernel_groups


def _official() -> dict:
    from tests.conftest import DATA

    return json.loads((DATA / "official_numbers.json").read_text())["variants"]


@pytest.mark.parametrize("name", lab.OFFICIAL_VARIANTS)
def test_official_channel_splits(name):
    cfg = lab.get_config(name)
    got = [list(vars(s.mixer.split(s.dim)).values()) for s in cfg.stages]
    assert got == _official()[name]["splits"]


def test_kernel_group_split_rule():
    assert split_kernel_groups(28, 3) == (10, 9, 9)
    assert split_kernel_groups(54, 2) == (27, 27)
    assert sum(split_kernel_groups(110, 3)) == 110


def test_config_id_same_effective_architecture():
    base = lab.get_config("mobilemamba_t2")
    a = base.with_stage_mixer(0, global_ratio=0.80)
    b = base.with_stage_mixer(0, global_ratio=0.79)  # int(0.79*144) = 113 -> rounds to 112, as 0.80 does
    assert config_id(a) == config_id(b) == config_id(base)
    # 0.81 (116 -> 112) with a local share that keeps the sum <= 1
    c = base.with_stage_mixer(0, global_ratio=0.80, local_ratio=0.19)
    d = base.with_stage_mixer(0, global_ratio=0.81, local_ratio=0.19)
    assert config_id(c) == config_id(d) != config_id(base)
    # name and img_size are not architecture
    assert config_id(base.replace(name="x", img_size=256)) == config_id(base)
    # the wavelet type does not matter once the wavelet branch is off
    off = base.with_mixer(wavelet_levels=0)
    assert config_id(off) == config_id(off.with_mixer(wavelet_type="db2"))


@pytest.mark.parametrize(
    "change",
    [
        dict(wavelet_levels=2),
        dict(wavelet_type="db2"),
        dict(local_kernels=(3, 5)),
        dict(d_state=4),
        dict(scan="cross"),
        dict(ssm_ratio=1.0),
        dict(use_ssm=False),
        dict(global_ratio=0.5, local_ratio=0.2),
        dict(wavelet_kernel=3),
    ],
)
def test_config_id_differs_when_network_differs(change):
    base = lab.get_config("mobilemamba_t2")
    assert config_id(base.with_mixer(**change)) != config_id(base)


def test_config_id_num_classes_and_stem():
    base = lab.get_config("mobilemamba_tiny")
    assert config_id(base.replace(num_classes=10)) != config_id(base)
    assert config_id(base.replace(stem_stride=8)) != config_id(base)


def test_round_trip_dict():
    cfg = lab.get_config("mobilemamba_b1").with_mixer(local_kernels=(3, 5, 7), wavelet_type="sym4")
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and config_id(again) == config_id(cfg)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(global_ratio=0.8, local_ratio=0.3), "global_ratio + local_ratio"),
        (dict(global_ratio=1.2), "global_ratio"),
        (dict(local_ratio=-0.1), "local_ratio"),
        (dict(local_kernels=(4,)), "local_kernels"),
        (dict(local_kernels=(3, 6)), "local_kernels"),
        (dict(local_kernels=()), "local_kernels"),
        (dict(wavelet_kernel=2), "wavelet_kernel"),
        (dict(wavelet_type="bior2.2"), "wavelet_type"),
        (dict(wavelet_type="nope"), "wavelet_type"),
        (dict(wavelet_levels=5), "wavelet_levels"),
        (dict(d_state=0), "d_state"),
        (dict(ssm_ratio=0), "ssm_ratio"),
        (dict(scan="diag"), "scan"),
        (dict(channel_rounding="nearest8"), "channel_rounding"),
        (dict(use_ssm=False, wavelet_levels=0), "use_ssm"),
    ],
)
def test_bad_mixer_names_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        MixerConfig(**kwargs)
    assert str(e.value).startswith(field)


def test_bad_stage_and_model():
    with pytest.raises(ConfigError, match="dim"):
        StageConfig(dim=0, depth=1)
    with pytest.raises(ConfigError, match="depth"):
        StageConfig(dim=32, depth=-1)
    with pytest.raises(ConfigError, match="global_ratio"):
        StageConfig(dim=24, depth=1, mixer=MixerConfig(global_ratio=1.0, local_ratio=0.0))
    with pytest.raises(ConfigError, match="local_kernels"):
        StageConfig(dim=16, depth=1, mixer=MixerConfig(global_ratio=0.0, local_ratio=0.1, local_kernels=(3, 5)))
    tiny = lab.get_config("mobilemamba_tiny")
    with pytest.raises(ConfigError, match="img_size"):
        tiny.replace(stem_stride=16, img_size=32)  # total stride 64 > 32 px
    with pytest.raises(ConfigError, match="stem_stride"):
        tiny.replace(stem_stride=2)
    with pytest.raises(ConfigError, match=r"stages\[0\].downsample"):
        ModelConfig(stages=(StageConfig(dim=32, depth=1, downsample=True),))
    with pytest.raises(ConfigError, match="stages"):
        ModelConfig(stages=())
    with pytest.raises(ConfigError, match="unknown option"):
        lab.build_model("mobilemamba_tiny", depth=3)


def test_bad_input_size_at_forward():
    import torch

    m = lab.build_model("mobilemamba_tiny")
    with pytest.raises(ConfigError, match="img_size"):
        m(torch.randn(1, 3, 8, 8))


def test_unknown_preset_suggests():
    with pytest.raises(KeyError, match="mobilemamba_t2"):
        lab.get_config("mobilemamba_t3")
