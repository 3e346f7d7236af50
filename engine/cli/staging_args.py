"""The staging options shared by play, live and generate (``engine/models/staging.py``), and the config they build."""

from __future__ import annotations

import argparse
import math
from typing import Any

from engine.cli import CliError


def add_staging_arguments(p: argparse.ArgumentParser) -> None:
    """``--front``, ``--stage-radius``, ``--no-staging``."""
    p.add_argument("--front", type=float, default=0.0, metavar="DEG",
                   help="where the audience is, as a yaw in degrees from +Z towards +X in engine space (+Z is the "
                        "web viewer's camera side and Unity's forward); solo dancers face it within +-45 deg most of "
                        "the time; default 0, e.g. --front 90 for an audience on +X")
    p.add_argument("--stage-radius", type=float, default=1.5, metavar="M",
                   help="keep each dancer within this many metres of the stage centre (the origin) by turning on "
                        "its planted foot, never by sliding; default 1.5, e.g. --stage-radius 3 for a large stage")
    p.add_argument("--no-staging", action="store_true",
                   help="no facing or stage steering: the model's own path (the joint speed limit that prevents "
                        "pose snaps stays on)")


def staging_config(args: argparse.Namespace) -> Any:
    """The :class:`~engine.models.staging.StagingConfig` the options ask for (a clear error when out of range)."""
    from engine.models.staging import StagingConfig

    front = getattr(args, "front", 0.0)
    radius = getattr(args, "stage_radius", 1.5)
    if not (math.isfinite(front) and -360.0 <= front <= 360.0):
        raise CliError(f"--front must be a yaw in degrees within [-360, 360], got {front}")
    if not (math.isfinite(radius) and 0.1 <= radius <= 100.0):
        raise CliError(f"--stage-radius must be within [0.1, 100] metres, got {radius}")
    return StagingConfig(steer=not getattr(args, "no_staging", False), front_deg=front, radius_m=radius)
