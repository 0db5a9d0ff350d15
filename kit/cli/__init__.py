"""The `kit` command line (entry point ``kit.cli.main:main``): one module per command group.

May import every part of kit; nothing in kit imports it. Library code never prints or exits: these
modules parse, call, print and choose exit codes.
"""
