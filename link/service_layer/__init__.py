"""Contains the handlers that carry the lifecycle steps out, one service each."""
