"""Workdir files on a local disk or an object store (gs://, s3://), through one API.

Every file a run writes or reads in its workdir (checkpoints, metrics.jsonl, TensorBoard events,
figures, results.json, the write probe, the workdir lock, profiler traces) goes through this
module: `etils.epath` paths, which are pathlib for local paths and fsspec for URLs. So a
`--workdir=gs://bucket/run` never becomes a local directory `./gs:/bucket/run`, and a missing
backend (gcsfs, s3fs) is a one-line error naming the extra that installs it.

Object stores have no append: `AppendFile` keeps what it has written in memory and rewrites the
whole object when flushed, at most every `REMOTE_FLUSH_S` seconds and at close (a crash loses at
most that much of the metrics, which a resumed run recomputes anyway).
"""
import contextlib
import importlib
import os
import tempfile
import time

from etils import epath

from ssljax.errors import UserError

# URL scheme -> (the ssljax extra that installs its backend, the packages it needs: the fsspec
# filesystem epath uses, and for gs:// the client orbax asks about the bucket's namespace)
BACKENDS = {"gs": ("gcs", ("gcsfs", "google.cloud.storage")),
            "s3": ("s3", ("s3fs",))}
REMOTE_FLUSH_S = 10.0


def scheme(path):
  """"gs" for "gs://bucket/run"; None for a local path."""
  text = os.fspath(path)
  return text.split("://", 1)[0] if "://" in text else None


def is_remote(path):
  return scheme(path) is not None


def require_backend(path):
  """Raises a one-line UserError when the filesystem that serves `path` is not installed."""
  name = scheme(path)
  if name is None:
    return
  if name not in BACKENDS:
    raise UserError(f"{path}: {name}:// is not a supported workdir (use a local path, gs:// "
                    f"or s3://)")
  import fsspec  # pylint: disable=g-import-not-at-top  # installed with orbax
  extra, packages = BACKENDS[name]
  for package in packages:
    try:
      if package == packages[0]:
        fsspec.get_filesystem_class(name)
      else:
        importlib.import_module(package)
    except (ImportError, ValueError) as e:
      raise UserError(f"{path} needs {package}, which is not installed: pip install "
                      f"'ssljax[{extra}]' (launch/tpu_vm.sh installs it)") from e


def path(location):
  """`location` as an epath.Path: local paths absolute with ~ expanded, URLs as they are."""
  if isinstance(location, epath.Path) and is_remote(location):
    return location
  text = os.fspath(location)
  if is_remote(text):
    require_backend(text)
    return epath.Path(text)
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def join(location, *names):
  """`location`/`names` as a string (a URL stays a URL)."""
  return os.fspath(path(location).joinpath(*names))


def write_atomic(location, data):
  """Writes `data` (str or bytes) to `location` whole or not at all: locally through a
  temporary file and a rename (a kill mid-write keeps the old file); an object store's upload
  is atomic by itself."""
  target = path(location)
  binary = isinstance(data, bytes)
  if is_remote(target):
    (target.write_bytes if binary else target.write_text)(data)
    return
  target.parent.mkdir(parents=True, exist_ok=True)
  temporary = target.parent / (target.name + ".tmp")
  if binary:
    temporary.write_bytes(data)
  else:
    temporary.write_text(data, encoding="utf-8")
  os.replace(temporary, target)


class AppendFile:
  """A file opened for appending (`binary` or utf-8 text): local files are appended and
  flushed at every `flush`; objects are rewritten whole, at most every `REMOTE_FLUSH_S` s
  unless `flush(force=True)`, and at `close`."""

  def __init__(self, location, binary=False):
    self.path = path(location)
    self.binary = binary
    self.remote = is_remote(self.path)
    if self.remote:
      self._content = (self.path.read_bytes() if self.path.exists() else b"")
      self._dirty, self._flushed_at = False, time.monotonic()
      self._file = None
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._file = open(self.path, "ab" if binary else "a", encoding=None if binary else "utf-8")

  def ends_with_newline(self):
    """Whether the file is empty or ends with a newline (a kill mid-line leaves neither)."""
    if self.remote:
      return not self._content or self._content.endswith(b"\n")
    if not self._file.tell():
      return True
    with open(self.path, "rb") as f:
      f.seek(-1, os.SEEK_END)
      return f.read(1) == b"\n"

  def write(self, data):
    if self.remote:
      self._content += data if self.binary else data.encode("utf-8")
      self._dirty = True
    else:
      self._file.write(data)

  def flush(self, force=False):
    if not self.remote:
      self._file.flush()
    elif self._dirty and (force or time.monotonic() - self._flushed_at >= REMOTE_FLUSH_S):
      self.path.write_bytes(self._content)
      self._dirty, self._flushed_at = False, time.monotonic()

  def close(self):
    if self.remote:
      self.flush(force=True)
    else:
      self._file.close()

  @property
  def closed(self):
    return self._file.closed if self._file is not None else False


@contextlib.contextmanager
def local_staging(location):
  """Yields a local directory for tools that only write local files (the profiler): `location`
  itself when it is local, else a temporary directory copied into `location` at the end."""
  if not is_remote(location):
    path(location).mkdir(parents=True, exist_ok=True)
    yield os.fspath(path(location))
    return
  with tempfile.TemporaryDirectory(prefix="ssljax-staging-") as staging:
    yield staging
    copy_tree(staging, location)


def copy_tree(local_directory, location):
  """Copies the files under `local_directory` to `location` (any store), keeping the layout."""
  target = path(location)
  for root, _, files in os.walk(local_directory):
    relative = os.path.relpath(root, local_directory)
    for name in files:
      destination = target if relative == "." else target / relative
      destination.mkdir(parents=True, exist_ok=True)
      (destination / name).write_bytes(epath.Path(root, name).read_bytes())
