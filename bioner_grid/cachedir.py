"""Cache folders on a shared machine: only the user's own, private entries are read.

``data.cache`` often sits on a shared file system (a project folder, scratch). The caches hold no
code (plain arrays and JSON, validated on read), but a digest proves only that an entry is
consistent, not who wrote it: anyone able to write into the folder can plant an entry with a valid
digest and other labels, and every later run would train on it silently. So, as ssh does with
``~/.ssh``, an entry is read only when it is a regular file owned by this user (or root) that no
one else can write, inside a folder of the same kind:

- a **folder** (``data.cache`` itself, ``windows/``, ``run_artifacts/<run>``) owned by another
  user, or writable by group or others (sticky or not), is refused: ``EnvError`` naming it (exit
  1). Whatever the run wrote there could be swapped before the next run reads it, so there is no
  private way to rebuild in place; the fix is the user's (``chmod go-w`` or another ``data.cache``);
- an **entry** that fails the same test in a private folder (copied in with ``cp -a``, left from a
  time the folder was open, a symlink) is not read but rebuilt, with a warning naming it: the
  folder is the user's, so the rebuilt file replaces it safely (``corpus.write_atomic``).

Entries are written ``ENTRY_MODE`` (0644 less the umask): never group-writable even under a
umask of 002, or the next run would not trust its own entries. Ancestors of the cache folder are
the user's choice of place and are not checked (as git does not check above a repository).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from bioner_grid.errors import EnvError

log = logging.getLogger(__name__)

ENTRY_MODE = 0o644  # what cache entries are created with (the umask still applies)
FOLDER_MODE = 0o755


def _user(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _problem(st: os.stat_result) -> str | None:
    """Why a file or folder with status ``st`` cannot be trusted, or None."""
    if st.st_uid not in (os.getuid(), 0):
        return f"owned by {_user(st.st_uid)}, not by you ({_user(os.getuid())})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by {'group and others' if st.st_mode & stat.S_IWOTH else 'group'} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def private_folder(root: str | Path, *parts: str) -> Path:
    """``root/parts...``, each level created if missing (``FOLDER_MODE``) and checked: ``EnvError``
    naming the first level that another user owns or others can write. Returns the last."""
    levels = [Path(root)]
    for part in parts:
        levels.append(levels[-1] / part)
    for level in levels:
        level.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        st = level.stat()  # a symlink is judged by its target: a link to another user's folder is theirs
        problem = _problem(st)
        if problem:
            raise EnvError(f"{level}: cache folder {problem}: another user could plant entries in it; "
                           f"make it yours alone (chmod go-w) or set data.cache to a folder of your own")
    return levels[-1]


def trusted(path: str | Path) -> bool:
    """Whether the cache entry ``path`` may be read: it exists, is a regular file (not a symlink),
    and no one but this user (or root) owns or can write it. An entry that exists but fails is
    named in a warning (the caller rebuilds it); a missing one is simply False."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        problem = "a symlink"
    elif not stat.S_ISREG(st.st_mode):
        problem = "not a regular file"
    else:
        problem = _problem(st)
    if problem:
        log.warning("%s: cache entry is %s; not reading it, rebuilding it", path, problem)
        return False
    return True
