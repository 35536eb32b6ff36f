"""nftables through libnftables, with the ``nft`` program as the fallback.

Owns: :class:`Nft`, a libnftables context bound to one network namespace (its netlink socket is
opened inside the namespace when the context is created) that runs ``nft -f`` text as one atomic
transaction. Writing rulesets is not its business (the fabric's policy compiler does that).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shlex
import subprocess
import threading

from testbed.errors import BackendError, ToolMissingError
from testbed.kernel.namespaces import entered

__all__ = ["Nft", "load_libnftables"]

class _LibNftables:
    def __init__(self) -> None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise ToolMissingError("libnftables is not installed",
                                   stderr="hint: apt-get install nftables") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib


_lib_lock = threading.Lock()
_lib: _LibNftables | None = None
# Contexts are independent (own socket, parser, caches), so commands in different contexts run
# concurrently: that matters, since a commit that registers hooks sleeps in the kernel for an
# RCU grace period (about 10 ms), and many namespaces load in parallel. Creating and freeing a
# context touches process-wide library state (GMP allocators), so those are serialised.
_nft_context_lock = threading.Lock()
NFT_CTX_OUTPUT_JSON = 1 << 4


def load_libnftables() -> _LibNftables:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _LibNftables()
        return _lib


SELECT_SAFE_DESCRIPTORS = 900
"""Below FD_SETSIZE (1024) with room for the descriptors a context opens."""


def _lowest_free_descriptor() -> int:
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    return probe


class Nft:
    """A libnftables context bound to one namespace (its netlink socket opens at creation)."""

    def __init__(self, netns_path: str | None = None, *, json: bool = False) -> None:
        lib = load_libnftables().lib
        self._lib = lib
        self._lock = threading.Lock()
        self.where = netns_path or "(own namespace)"
        self._netns_path, self._json = netns_path, json
        # libnftables waits on its netlink socket with select(), which aborts the whole
        # process when that socket's descriptor is 1024 or above. A process holding that many
        # descriptors (a huge run) therefore talks to the nft program instead: slower, safe.
        self._via_program = _lowest_free_descriptor() >= SELECT_SAFE_DESCRIPTORS
        self._ctx = None
        if self._via_program:
            return
        with _nft_context_lock:
            if netns_path is None:
                self._ctx = lib.nft_ctx_new(0)
            else:
                with entered(netns_path):
                    self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise BackendError(f"libnftables could not open a context in {self.where}")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        if json:
            lib.nft_ctx_output_set_flags(self._ctx, NFT_CTX_OUTPUT_JSON)

    def run(self, text: str) -> str:
        """Run nft commands (a whole ``nft -f`` file is one atomic transaction)."""
        if self._via_program:
            return self._run_program(text)
        if not self._ctx:
            raise BackendError("nftables context already closed")
        with self._lock:  # one command at a time per context
            status = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if status != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            raise BackendError(f"nftables refused a ruleset in {self.where}",
                               command=f"nft -f - ({first} ...)", stderr=error, exit_status=status)
        return output

    def _run_program(self, text: str) -> str:
        # A single command goes on the command line: `nft -j -f -` prints no listing.
        single = "\n" not in text.strip()
        argv = ["nft", *(["-j"] if self._json else []),
                *(shlex.split(text) if single else ["-f", "-"])]
        if self._netns_path is not None:
            argv = ["nsenter", f"--net={self._netns_path}", *argv]
        done = subprocess.run(argv, input=text.encode(), capture_output=True, check=False)
        if done.returncode != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            raise BackendError(f"nftables refused a ruleset in {self.where}",
                               command=f"nft -f - ({first} ...)",
                               stderr=done.stderr.decode(errors="replace"),
                               exit_status=done.returncode)
        return done.stdout.decode(errors="replace")

    def close(self) -> None:
        if self._ctx:
            with _nft_context_lock, self._lock:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
