"""The state the engine processes share: one interface, two backends.

``engine.state.factory.open_state("memory", reactor)`` or
``open_state("redis://HOST:PORT/DB", reactor)`` gives a ``SharedState``; the
call controller takes and gives back per-destination call slots through a
``engine.state.leases.LeaseKeeper``, which also keeps them alive. See
``engine.state.interface`` for the contract. This package imports nothing
itself, so checking a ``state:`` value (``engine.state.url``) does not load
Twisted.
"""
