"""Collaboration loops between the on-device small model and the cloud model."""
