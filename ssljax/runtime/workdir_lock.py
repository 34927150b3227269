"""One run per workdir: a lock file per process, taken before a run writes anything.

`workdir/.ssljax-lock.<process index>` holds the owner's host, pid and start time; the owner
refreshes its modification time every `HEARTBEAT_S` seconds. A second run finding the lock stops
with a one-line error naming the owner. A lock whose owner is gone is taken over with a warning:
on the same host when its pid no longer exists, from any host (shared filesystems) when its
heartbeat is older than `STALE_AFTER_S`. Object-store workdirs (gs://...) are not locked.
"""
import contextlib
import json
import logging
import os
import socket
import threading
import time

import jax

from ssljax.errors import UserError

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 120.0


def lock_path(workdir, process_index=None):
  index = jax.process_index() if process_index is None else process_index
  return os.path.join(workdir, f".ssljax-lock.{index}")


def _pid_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    return True
  return True


def _owner(path):
  """The lock's owner {"host", "pid", "started"} and its heartbeat age in s; None if gone."""
  try:
    with open(path, encoding="utf-8") as f:
      owner = json.load(f)
    age = time.time() - os.stat(path).st_mtime
  except FileNotFoundError:
    return None, None
  except (OSError, ValueError):  # half-written by a process that died while taking it
    return {"host": "?", "pid": -1, "started": "?"}, STALE_AFTER_S + 1
  return owner, age


def _stale_reason(owner, age):
  """Why the owner of a lock is gone, or None while it may be running."""
  if owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", -1))):
    return f"process {owner.get('pid')} no longer exists"
  if age > STALE_AFTER_S:
    return f"its heartbeat stopped {age:.0f} s ago"
  return None


def _write(path, me, exclusive):
  flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
  fd = os.open(path, flags, 0o644)
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(me, f)


def acquire(workdir):
  """Takes this process's lock of `workdir`; returns its path. UserError if another run holds
  it; a stale lock is taken over with a warning."""
  path = lock_path(workdir)
  me = {"host": socket.gethostname(), "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S")}
  for _ in range(3):  # the owner may release it between our attempts
    try:
      _write(path, me, exclusive=True)
      return path
    except FileExistsError:
      pass
    owner, age = _owner(path)
    if owner is None:
      continue
    reason = _stale_reason(owner, age)
    if reason is None:
      raise UserError(
          f"workdir {workdir} is in use by another run (pid {owner.get('pid')} on host "
          f"{owner.get('host')}, started {owner.get('started')}): wait for it to finish or "
          f"stop it, or pass another --workdir (a lock whose owner died is taken over after "
          f"{STALE_AFTER_S:.0f} s; {path})")
    log.warning("taking over the lock of %s: its owner (pid %s on host %s) is gone (%s)",
                workdir, owner.get("pid"), owner.get("host"), reason)
    _write(path, me, exclusive=False)
    if (_owner(path)[0] or {}).get("pid") == me["pid"]:
      return path
  raise UserError(f"workdir {workdir}: could not take its lock {path}, which other runs keep "
                  "taking: stop them, or pass another --workdir")


def release(path):
  """Removes the lock at `path` if this process still owns it."""
  owner, _ = _owner(path)
  if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def held(workdir):
  """Holds the lock of `workdir` (with its heartbeat) for the duration of the block."""
  if "://" in workdir:
    yield
    return
  path = acquire(workdir)
  stop = threading.Event()

  def heartbeat():
    while not stop.wait(HEARTBEAT_S):
      with contextlib.suppress(OSError):
        os.utime(path)

  thread = threading.Thread(target=heartbeat, name="ssljax-workdir-lock", daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    release(path)
