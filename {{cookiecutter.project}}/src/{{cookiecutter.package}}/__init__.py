"""The project's package: data, schema, training, evaluation and the BentoML service."""

__version__ = "0.1.0"
