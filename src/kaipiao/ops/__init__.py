"""Offline operations tools: drills, load generation, the naive gateway, capacity planning."""
