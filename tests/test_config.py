"""tfapprox.config: TrainingConfig defaults, validation, dict round trip and CLI options."""

import dataclasses

import pytest
from helpers import modules_loaded_by

from tfapprox.config import TrainingConfig, cli_options


def test_defaults_are_fits_documented_defaults():
    config = TrainingConfig()
    assert (config.epochs, config.batch_size, config.learning_rate) == (300, 32, 3e-3)
    assert (config.schedule, config.warmup_epochs, config.effective_warmup_epochs) == (
        "cosine",
        None,
        5,
    )
    assert (config.restarts, config.patience) == (1, None)
    assert (config.min_delta, config.min_rel_delta) == (0.0, 1e-3)
    assert (config.reduce_lr_factor, config.min_learning_rate) == (0.5, 1e-6)
    assert config.reduce_lr_patience is None and config.effective_reduce_lr_patience == 10
    assert config.model_kwargs == {}


@pytest.mark.parametrize(
    "kwargs, warmup",
    [
        ({}, 5),
        ({"epochs": 3}, 3),  # the warm-up fits in a short run
        ({"schedule": "constant"}, 0),
        ({"schedule": "constant", "warmup_epochs": 4}, 4),
        ({"schedule": "plateau"}, 0),  # plateau has no warm-up
        ({"warmup_epochs": 0}, 0),
        ({"warmup_epochs": 12}, 12),
    ],
)
def test_default_warm_up_resolves_by_schedule_and_epochs(kwargs, warmup):
    config = TrainingConfig(**kwargs)
    assert config.effective_warmup_epochs == warmup
    assert config.to_dict()["warmup_epochs"] == warmup
    # The warm-up is the rate's first epochs: base · (e + 1) / warmup.
    if warmup:
        rates = [config.scheduled_rate(e, 1.0) for e in range(warmup)]
        assert rates == pytest.approx([(e + 1) / warmup for e in range(warmup)], rel=1e-12)
    # The resolved dict rebuilds the same training.
    assert TrainingConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_no_patience_by_default_and_plateau_reduction_still_has_one():
    assert TrainingConfig().to_dict()["patience"] is None
    assert TrainingConfig(patience=None, schedule="plateau").effective_reduce_lr_patience == 10
    assert TrainingConfig(patience=12).effective_reduce_lr_patience == 4
    with pytest.raises(ValueError, match="`patience` must be a positive int"):
        TrainingConfig(patience=0)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainingConfig().epochs = 3


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"epochs": 0}, ValueError, "`epochs` must be a positive int. Received: epochs=0"),
        ({"batch_size": 2.5}, TypeError, "`batch_size` must be a positive int"),
        ({"restarts": True}, TypeError, "`restarts` must be a positive int"),
        ({"learning_rate": -1.0}, ValueError, "`learning_rate` must be > 0"),
        ({"min_delta": -0.1}, ValueError, "`min_delta` must be >= 0"),
        ({"min_rel_delta": 1.0}, ValueError, "`min_rel_delta` must be < 1"),
        ({"reduce_lr_factor": 1.5}, ValueError, "`reduce_lr_factor` must be < 1"),
        ({"reduce_lr_patience": 0}, ValueError, "`reduce_lr_patience` must be a positive int"),
        ({"min_learning_rate": float("nan")}, ValueError, "`min_learning_rate` must be a finite"),
        ({"model_kwargs": [1]}, TypeError, "`model_kwargs` must be a dict"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        TrainingConfig(**kwargs)


def test_values_are_normalised():
    config = TrainingConfig(learning_rate=1, model_kwargs=None)
    assert isinstance(config.learning_rate, float) and config.model_kwargs == {}


def test_to_dict_from_dict_round_trip():
    config = TrainingConfig(
        epochs=7, reduce_lr_patience=4, warmup_epochs=2, model_kwargs={"output": "pooled"}
    )
    assert TrainingConfig.from_dict(config.to_dict()) == config
    # The derived patience and warm-up are recorded as the numbers they resolve to.
    derived = TrainingConfig(patience=9)
    assert derived.to_dict()["reduce_lr_patience"] == 3
    assert derived.to_dict()["warmup_epochs"] == 5
    assert TrainingConfig.from_dict(derived.to_dict()).to_dict() == derived.to_dict()


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"\['speed', 'warmup'\]"):
        TrainingConfig.from_dict({"epochs": 5, "speed": 1, "warmup": 2})


def test_replace_validates_and_rejects_unknown_settings():
    config = TrainingConfig()
    assert config.replace(epochs=3).epochs == 3 and config.epochs == 300
    with pytest.raises(ValueError, match="`epochs`"):
        config.replace(epochs=0)
    with pytest.raises(TypeError, match="speed"):
        config.replace(speed=1)


def test_derived_reduce_lr_patience_follows_a_replaced_patience():
    assert TrainingConfig().replace(patience=60).effective_reduce_lr_patience == 20


def test_cli_options_cover_every_numeric_setting_with_help():
    options = {option["name"]: option for option in cli_options()}
    numeric = [name for name in TrainingConfig.names() if name != "model_kwargs"]
    assert list(options) == numeric
    for name, option in options.items():
        assert option["help"] and option["flag"] == "--" + name.replace("_", "-")
        assert option["default"] == TrainingConfig.__dataclass_fields__[name].default


def test_config_module_imports_only_the_standard_library():
    assert modules_loaded_by("import tfapprox.config", ("numpy", "tensorflow", "keras")) == "[]"


def test_schedule_and_warmup_are_validated_together():
    from tfapprox.config import TrainingConfig

    assert TrainingConfig(schedule="cosine", warmup_epochs=3).warmup_epochs == 3
    with pytest.raises(ValueError, match="schedule"):
        TrainingConfig(schedule="linear")
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainingConfig(schedule="plateau", warmup_epochs=2)  # plateau has no warm-up


def test_scheduled_rate_is_warm_up_then_cosine_to_the_floor():
    import math

    from tfapprox.config import TrainingConfig

    config = TrainingConfig(
        epochs=10, learning_rate=1.0, schedule="cosine", warmup_epochs=2, min_learning_rate=0.1
    )
    rates = [config.scheduled_rate(e) for e in range(10)]
    assert rates[:2] == [0.5, 1.0]
    for e in range(2, 10):  # closed form of the cosine after the warm-up
        assert rates[e] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (e - 2) / 8)))
    assert TrainingConfig(schedule="constant").scheduled_rate(7) == 3e-3


def test_engine_reads_its_settings_from_training_config():
    from tfapprox import engine
    from tfapprox.config import TrainingConfig

    config = TrainingConfig(epochs=7, schedule="cosine", warmup_epochs=1)
    settings = engine.training_config(config)
    assert settings == {key: config.to_dict()[key] for key in engine.ENGINE_SETTINGS}
    assert (
        engine.training_config({"epochs": 7, "schedule": "cosine", "warmup_epochs": 1}) == settings
    )
