"""Sub-commands of ``nas``: one module each, each with ``register(subparsers)``.

A command's handler is set with ``parser.set_defaults(func=handler)``; it receives the
parsed ``argparse.Namespace`` and returns an exit code (``0``/``None`` for success).
"""
