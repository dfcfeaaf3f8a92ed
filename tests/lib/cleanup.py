"""Process-wide cleanup for test helpers.

Anything a test run starts outside itself (PostgreSQL clusters, vouchd) registers a callback here.
The callbacks run once, newest first, at interpreter exit and when the process gets SIGTERM, SIGHUP
or SIGINT, so an interrupted or killed test run leaves no server behind.
"""

import atexit
import os
import signal
import sys
import threading

_lock = threading.Lock()
_callbacks = []  # list of [key, fn]
_installed = False
_next_key = 0


def _run_all():
    while True:
        with _lock:
            if not _callbacks:
                return
            _key, fn = _callbacks.pop()
        try:
            fn()
        except Exception as exc:  # cleanup must go on with the others
            print(f"cleanup: {exc!r}", file=sys.stderr)


def _on_signal(signum, frame):
    _run_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install():
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_run_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler, None):
            signal.signal(sig, _on_signal)


def register(fn):
    """Run fn() at exit or on a fatal signal. Returns a key for unregister()."""
    global _next_key
    with _lock:
        _install()
        _next_key += 1
        _callbacks.append([_next_key, fn])
        return _next_key


def unregister(key):
    with _lock:
        _callbacks[:] = [c for c in _callbacks if c[0] != key]
