#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run and test groovecast (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ -z "${GROOVECAST_SKIP_APT:-}" ]; then
  echo "== system packages" >&2
  $SUDO apt-get update -qq
  # libportaudio2 + jackd2: the real-time dummy audio device for the live-input test;
  # liblo-tools: oscdump, an independent OSC peer; chromium: the headless viewer test;
  # sox, espeak-ng, fluidsynth + fluid-soundfont-gm: real sounds for the beat and gesture test sets;
  # mono-mcs: compiles and runs the Unity receiver (C#) against UnityEngine stand-ins in the tests.
  $SUDO apt-get install -y -qq --no-install-recommends \
    libportaudio2 jackd2 liblo-tools chromium sox espeak-ng fluidsynth fluid-soundfont-gm \
    libsndfile1 mono-mcs >/dev/null
fi

echo "== python packages" >&2
# The CPU wheel of torch is on disk; pin it so nothing pulls the CUDA build.
python3 -m pip install -q torch==2.13.0
# aubio 0.4.9 builds from source; newer compilers need this warning relaxed.
export CFLAGS="${CFLAGS:-} -Wno-error=incompatible-pointer-types"
python3 -m pip install -q -e ".[dev]"
