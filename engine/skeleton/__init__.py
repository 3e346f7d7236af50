"""Skeleton definitions, rotation conversions, forward kinematics, motion file readers and writers."""
