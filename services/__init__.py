"""Contains the three link services, each a faust application."""
