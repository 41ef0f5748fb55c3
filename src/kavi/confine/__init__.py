"""The one execution boundary for everything an LLM wrote that runs.

The build agent (:mod:`kavi.confine.jail`, the ``world`` view), the generated tests at
``verify-skill`` (:mod:`kavi.confine.program`) and every skill at ``run-skill``
(:mod:`kavi.confine.session` and :mod:`kavi.confine.worker`) start their processes
through this package, and nothing else in Kavi knows how confinement is done: Linux user,
mount, PID, IPC (and network) namespaces set up by ``unshare`` and a PID 1 of Kavi's
(:mod:`kavi.confine.init`, :mod:`kavi.confine.mounts`), an allowlist view of the
filesystem (:mod:`kavi.confine.views`) derived from the capability model
(:mod:`kavi.confine.capabilities`), resource limits, and a fallback where the kernel
offers no namespaces. Importing the package imports nothing.
"""
