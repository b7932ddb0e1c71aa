"""The types and rules several of Ferry's rooms share; this package imports nothing of Ferry."""
