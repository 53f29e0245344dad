"""Dev tooling of the local stack, shared by the tests, ``make demo`` and the benchmarks (never by the runtime).

Where the stack is (:mod:`.stack`), real peers on loopback (:mod:`.gitserver`, :mod:`.http`), repositories
built with the git CLI (:mod:`.repos`), the controllers as processes (:mod:`.mesh`), waiting on what they
report (:mod:`.waits`) and cleaning up after them (:mod:`.namespaces`).
"""
