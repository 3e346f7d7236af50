"""Wire formats as pure functions (OSC/VMC, VJ, JSON, binary), thin socket layers, recorders."""
