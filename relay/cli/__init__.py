"""The ``relay`` command: a thin parser (parser.py) over one module per command group."""
