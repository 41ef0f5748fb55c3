"""Front ends that serve TRUSTED skills to other programs (``git kavi serve mcp``).

Nothing here runs a skill itself: every call goes through
:func:`kavi.forge.run.run_skill`, exactly as ``git kavi run-skill`` does.
"""
