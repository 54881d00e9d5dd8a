"""The `kubik` command: one subcommand per role (see main.py)."""
