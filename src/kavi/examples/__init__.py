"""Example skills shipped with Kavi (used by `kavi demo` and the test suite)."""
