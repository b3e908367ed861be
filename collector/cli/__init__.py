"""The ``collector`` command: its subcommands, shared options, progress display.

Owns the process: it builds the Settings (the only package that does), the HTTP session and the
database engine, and turns every expected failure into one line and an exit code. It may import
every other package; nothing imports it. ``commands`` holds the app and ``main``; ``analyst`` the
analyst's commands; ``options`` what command modules share; ``progress`` the backfill's display.
"""
