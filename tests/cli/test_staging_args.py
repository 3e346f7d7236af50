"""--front, --stage-radius and --no-staging: parsed into the staging config, bad values refused in one line."""

from __future__ import annotations

import argparse

import pytest

from engine.cli import CliError
from engine.cli.staging_args import add_staging_arguments, staging_config


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_staging_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_and_overrides() -> None:
    cfg = staging_config(_parse())
    assert (cfg.steer, cfg.front_deg, cfg.radius_m, cfg.limit_speed) == (True, 0.0, 1.5, True)
    cfg = staging_config(_parse("--front", "90", "--stage-radius", "3", "--no-staging"))
    assert (cfg.steer, cfg.front_deg, cfg.radius_m, cfg.limit_speed) == (False, 90.0, 3.0, True)


@pytest.mark.parametrize("argv, msg", [(("--front", "nan"), "--front"), (("--front", "400"), "--front"),
                                       (("--stage-radius", "0"), "--stage-radius"),
                                       (("--stage-radius", "inf"), "--stage-radius")])
def test_bad_values_are_refused(argv: tuple[str, ...], msg: str) -> None:
    with pytest.raises(CliError, match=msg):
        staging_config(_parse(*argv))
