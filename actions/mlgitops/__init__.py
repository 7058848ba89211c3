"""The logic behind this kit's composite actions; each action.yml runs one module of this package."""

__version__ = "0.1.0"
