"""Protocol pieces without I/O.

Each piece is fed bytes and the time, and answers with bytes to send and
what it needs next.

Nothing under ``inetkit._core`` opens a socket, takes a lock, waits, or reads
a clock. The drivers (the blocking one in ``inetkit._connection``,
``inetkit._dialer`` and ``inetkit._tls_io``) own every socket, lock, wait
and deadline, and run these pieces unchanged; tests drive them with made-up
bytes and a fake clock.
"""
