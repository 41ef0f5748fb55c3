"""Example skills shipped with Kavi (used by `kavi demo` and the test suite)."""

WRITE_NOTE_SCHEMA_JSON = (
    '{"input": {"path": "str", "title": "str", "body": "str"}, '
    '"output": {"written_path": "str", "sha256": "str"}}'
)

#: ``propose-skill`` arguments that propose the example skill (``init`` prints them as its
#: next step, ``kavi demo`` runs them).
WRITE_NOTE_PROPOSAL = (
    "--name",
    "write_note",
    "--desc",
    "Write a markdown note into the vault",
    "--side-effect",
    "FILE_WRITE",
    "--io-schema-json",
    WRITE_NOTE_SCHEMA_JSON,
)
