"""One run per workdir: a lock file per process, taken before a run writes anything.

`workdir/.ssljax-lock.<process index>` holds the owner's host, pid and start time; the owner
refreshes its modification time every `HEARTBEAT_S` seconds. A second run finding the lock stops
with a one-line error naming the owner. A lock whose owner is gone is taken over with a warning:
on the same host when its pid no longer exists, from any host (shared filesystems) when its
heartbeat is older than `STALE_AFTER_S`.

Object-store workdirs (gs://, s3://) get the same lock as an object whose JSON carries the
heartbeat time, rewritten every `HEARTBEAT_S`. Object stores have no exclusive create through
fsspec, so the lock is taken by writing it, waiting `REMOTE_SETTLE_S` and reading it back: of
two runs started within that window the last writer keeps it and the other stops with the
in-use error.
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
from ssljax.runtime import storage

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 120.0
REMOTE_SETTLE_S = 1.0


def lock_path(workdir, process_index=None):
  index = jax.process_index() if process_index is None else process_index
  return storage.join(workdir, f".ssljax-lock.{index}")


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


def _in_use_error(workdir, owner, path):
  return UserError(
      f"workdir {workdir} is in use by another run (pid {owner.get('pid')} on host "
      f"{owner.get('host')}, started {owner.get('started')}): wait for it to finish or "
      f"stop it, or pass another --workdir (a lock whose owner died is taken over after "
      f"{STALE_AFTER_S:.0f} s; {path})")


def _me():
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _is_me(owner, me):
  return bool(owner) and owner.get("pid") == me["pid"] and owner.get("host") == me["host"]


def acquire(workdir):
  """Takes this process's lock of `workdir`; returns its path. UserError if another run holds
  it; a stale lock is taken over with a warning."""
  path = lock_path(workdir)
  me = _me()
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
      raise _in_use_error(workdir, owner, path)
    log.warning("taking over the lock of %s: its owner (pid %s on host %s) is gone (%s)",
                workdir, owner.get("pid"), owner.get("host"), reason)
    _write(path, me, exclusive=False)
    if _is_me(_owner(path)[0], me):
      return path
  raise UserError(f"workdir {workdir}: could not take its lock {path}, which other runs keep "
                  "taking: stop them, or pass another --workdir")


def release(path):
  """Removes the lock at `path` if this process still owns it."""
  if _is_me(_owner(path)[0], _me()):
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _remote_owner(path):
  """(owner, heartbeat age in s) of an object-store lock; (None, None) if there is none."""
  try:
    owner = json.loads(path.read_text())
    return owner, time.time() - float(owner["heartbeat"])
  except FileNotFoundError:
    return None, None
  except (ValueError, KeyError, TypeError):  # not a lock this code wrote: treat as stale
    return {"host": "?", "pid": -1, "started": "?"}, STALE_AFTER_S + 1


def acquire_remote(workdir):
  """`acquire` for an object-store workdir; returns the lock's epath.Path."""
  path = storage.path(lock_path(workdir))
  me = _me()
  for _ in range(3):
    owner, age = _remote_owner(path)
    if owner is not None and not _is_me(owner, me):
      reason = _stale_reason(owner, age)
      if reason is None:
        raise _in_use_error(workdir, owner, path)
      log.warning("taking over the lock of %s: its owner (pid %s on host %s) is gone (%s)",
                  workdir, owner.get("pid"), owner.get("host"), reason)
    path.write_text(json.dumps(dict(me, heartbeat=time.time())))
    time.sleep(REMOTE_SETTLE_S)  # a run writing it at the same time: the last writer wins
    if _is_me(_remote_owner(path)[0], me):
      return path
  raise UserError(f"workdir {workdir}: could not take its lock {path}, which other runs keep "
                  "taking: stop them, or pass another --workdir")


def release_remote(path):
  if _is_me(_remote_owner(path)[0], _me()):
    with contextlib.suppress(FileNotFoundError):
      path.unlink()


@contextlib.contextmanager
def held(workdir):
  """Holds the lock of `workdir` (with its heartbeat) for the duration of the block."""
  remote = storage.is_remote(workdir)
  path = acquire_remote(workdir) if remote else acquire(workdir)
  stop = threading.Event()
  owner = _remote_owner(path)[0] if remote else None

  def heartbeat():
    while not stop.wait(HEARTBEAT_S):
      with contextlib.suppress(Exception):  # a missed beat only ages the lock
        if remote:
          path.write_text(json.dumps(dict(owner, heartbeat=time.time())))
        else:
          os.utime(path)

  thread = threading.Thread(target=heartbeat, name="ssljax-workdir-lock", daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join(timeout=HEARTBEAT_S)
    (release_remote if remote else release)(path)
