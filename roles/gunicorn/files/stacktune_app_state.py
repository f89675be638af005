"""What an app host already has, in one call: run by the host's python3 as root.

    python3 -c "$(cat stacktune_app_state.py)" HOME USER VENV DIST DIR...

Prints one JSON object:
  venv        whether VENV/bin/python exists
  user        USER's [home, login shell], or null when there is no such user
  dirs        {DIR: [owner uid, group gid, mode (octal string)] or null when missing}
  app_owned   the paths under HOME that USER owns (earlier versions gave it its tree)
  freeze      the virtualenv's distributions as name==version (what `pip freeze --all`
              lists for index and wheel installs), read with importlib.metadata in one
              Python start instead of pip's (about 0.4 s of CPU)
  freeze_ok   whether that read worked (no virtualenv yet: false)
  purelib     where the virtualenv installs packages ('' without one)
  old_wheels  the *.whl files in DIST (a wheel deployed before)
"""

import json
import os
import pwd
import subprocess
import sys

home, user, venv, dist, *dirs = sys.argv[1:]

try:
    app_entry = pwd.getpwnam(user)
except KeyError:  # no app user yet: it owns nothing
    app_entry = None
app_uid = app_entry.pw_uid if app_entry else None

app_owned = []
if app_uid is not None and os.path.isdir(home):
    for root, subdirs, files in os.walk(home):
        for name in subdirs + files:
            path = os.path.join(root, name)
            if os.lstat(path).st_uid == app_uid:
                app_owned.append(path)
    if os.lstat(home).st_uid == app_uid:
        app_owned.insert(0, home)


def dir_state(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not os.path.isdir(path) or os.path.islink(path):
        return None
    return [st.st_uid, st.st_gid, format(st.st_mode & 0o7777, "04o")]


python = os.path.join(venv, "bin", "python")
old_wheels = (sorted(os.path.join(dist, f) for f in os.listdir(dist) if f.endswith(".whl"))
              if os.path.isdir(dist) else [])
result = {"venv": os.path.exists(python),
          "user": [app_entry.pw_dir, app_entry.pw_shell] if app_entry else None,
          "dirs": {d: dir_state(d) for d in dirs},
          "app_owned": app_owned, "freeze": [], "freeze_ok": False, "purelib": "",
          "old_wheels": old_wheels}

READ_VENV = """
import importlib.metadata, json, sysconfig
names = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                if d.metadata['Name']})
print(json.dumps({"freeze": names, "purelib": sysconfig.get_path("purelib")}))
"""
if result["venv"]:
    read = subprocess.run([python, "-I", "-c", READ_VENV], capture_output=True, text=True,
                          check=False)
    if read.returncode == 0:
        result.update(json.loads(read.stdout), freeze_ok=True)

print(json.dumps(result))
