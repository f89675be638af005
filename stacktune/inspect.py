"""Host inspection: the memory, CPUs and storage this process may really use.

A single, standard-library-only file: it also ships inside an Ansible module
(as module_utils) and runs on remote hosts with Python 3.9, so it must not
import anything from the ``stacktune`` package.

Every function takes ``root`` (default "/") so tests can point it at a fake
filesystem tree.  When ``root`` is not "/", nothing reads the real host
(no psutil, no os.sched_getaffinity, no environment, no symlink resolution).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time

try:  # psutil is optional: only for physical memory and online CPUs.
    import psutil
except ImportError:  # pragma: no cover - depends on the host
    psutil = None

STORAGE_KINDS = ("hdd", "ssd", "nvme", "san")

# cgroup v1 "no limit" is PAGE_COUNTER_MAX * page size (9223372036854771712 on
# x86_64); anything this large cannot be a real limit.
V1_UNLIMITED = 2**60

# Where PostgreSQL keeps its data on Debian/Ubuntu and on RHEL-likes.
PG_DATA_DIRS = ("/var/lib/postgresql", "/var/lib/pgsql")

# Words in /proc/1/cgroup that betray a container runtime.
CONTAINER_MARKERS = ("docker", "kubepods", "lxc", "containerd", "libpod")


class InspectError(Exception):
    """The host could not be inspected (unreadable /proc, bad argument...)."""


# --------------------------------------------------------------------------
# small file helpers


def _host_path(root: str, path: str) -> str:
    """Map an absolute host path onto the (possibly fake) root."""
    return os.path.join(root, path.lstrip("/"))


def _read_file(path: str) -> str | None:
    """The stripped text of a file, or None if unreadable."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read(root: str, path: str) -> str | None:
    """The stripped text of ``<root>/<path>``, or None if unreadable."""
    return _read_file(_host_path(root, path))


def _read_int(root: str, path: str) -> int | None:
    """The integer in ``<root>/<path>``, or None if missing or not a number."""
    text = _read(root, path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _is_real(root: str) -> bool:
    """True when ``root`` is the real filesystem root."""
    return os.path.abspath(root) == "/"


# --------------------------------------------------------------------------
# cgroups


def cgroup_membership(root: str = "/") -> dict:
    """Parse /proc/self/cgroup.

    Returns ``{"v2": path or None, "v1": {controller: (mount_dir, path)}}``.
    A v1 line ``4:cpu,cpuacct:/docker/abc`` maps both ``cpu`` and ``cpuacct``
    to ``("cpu,cpuacct", "/docker/abc")``; the v2 line is ``0::/path``.
    Named v1 hierarchies (``name=systemd``) are ignored.
    """
    result = {"v2": None, "v1": {}}
    text = _read(root, "/proc/self/cgroup")
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            result["v2"] = path or "/"
            continue
        for controller in controllers.split(","):
            if not controller.startswith("name="):
                result["v1"][controller] = (controllers, path or "/")
    return result


def _ancestors(path: str) -> list:
    """``/a/b`` -> ``["/a/b", "/a", "/"]``: a cgroup and every cgroup above it."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _cgroup_dirs(root: str, controller: str, v1_dirs: tuple) -> tuple:
    """The cgroup version and directories (leaf first) that govern ``controller``.

    A v1 controller wins over the v2 line (hybrid hosts list both). The whole
    ancestor chain is returned because a parent can impose a tighter limit,
    and because with a private cgroup namespace the recorded path does not
    exist under /sys/fs/cgroup and only the mount's root applies.
    Returns ``(None, [])`` when the process is in no cgroup we can see.
    """
    groups = cgroup_membership(root)
    if controller in groups["v1"]:
        joined, path = groups["v1"][controller]
        for name in (joined, *v1_dirs):
            base = "/sys/fs/cgroup/" + name
            if os.path.isdir(_host_path(root, base)):
                return "v1", [(base + p).rstrip("/") for p in _ancestors(path)]
        return None, []
    if groups["v2"] is not None:
        return "v2", [("/sys/fs/cgroup" + p).rstrip("/") for p in _ancestors(groups["v2"])]
    return None, []


# --------------------------------------------------------------------------
# memory


def physical_memory(root: str = "/") -> tuple:
    """Physical memory as ``(bytes, source)``: psutil on the real host, else MemTotal.

    Raises InspectError when /proc/meminfo is unreadable or has no MemTotal.
    """
    if psutil is not None and _is_real(root):
        return int(psutil.virtual_memory().total), "physical memory (psutil)"
    text = _read(root, "/proc/meminfo")
    if text is None:
        raise InspectError(f"cannot read {_host_path(root, '/proc/meminfo')}")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "MemTotal:" and fields[1].isdigit():
            unit = 1024 if len(fields) > 2 and fields[2].lower() == "kb" else 1
            return int(fields[1]) * unit, "/proc/meminfo"
    raise InspectError(f"no MemTotal line in {_host_path(root, '/proc/meminfo')}")


def cgroup_memory_limit(root: str = "/") -> tuple:
    """The tightest cgroup memory limit as ``(bytes, source)``, or ``(None, None)``.

    v2: ``memory.max`` ("max" = none); v1: ``memory.limit_in_bytes`` where
    values >= 2**60 mean none. The smallest over the cgroup and its ancestors.
    """
    version, dirs = _cgroup_dirs(root, "memory", ("memory",))
    name = "memory.max" if version == "v2" else "memory.limit_in_bytes"
    best, source = None, None
    for directory in dirs:
        limit = _read_int(root, directory + "/" + name)  # "max" reads as None
        if limit is None or limit < 0 or limit >= V1_UNLIMITED:
            continue
        if best is None or limit < best:
            best, source = limit, f"cgroup {version} {name} ({directory}/{name})"
    return best, source


def usable_memory(root: str = "/") -> tuple:
    """Usable memory as ``(bytes, physical_bytes, source)``.

    The smaller of physical memory and the cgroup limit; a limit above physical
    memory (common for v1 "unlimited" variants) loses to physical memory.
    """
    physical, source = physical_memory(root)
    limit, limit_source = cgroup_memory_limit(root)
    if limit is not None and limit < physical:
        return limit, physical, limit_source
    return physical, physical, source


# --------------------------------------------------------------------------
# CPUs


def parse_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel CPU list such as ``0-3,5`` (-> 5).

    Raises ValueError on malformed text; an empty list counts 0.
    """
    count = 0
    for chunk in text.strip().split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        low, _, high = chunk.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _count_cpu_file(root: str, path: str) -> int | None:
    """The CPU count of a CPU-list file, or None if missing, empty or malformed."""
    text = _read(root, path)
    try:
        count = parse_cpu_list(text) if text else 0
    except ValueError:
        return None
    return count or None


def online_cpus(root: str = "/") -> tuple:
    """Online CPUs as ``(count, source)``.

    psutil / os.cpu_count on the real host, else the list in
    /sys/devices/system/cpu/online, else the processors in /proc/cpuinfo.
    """
    if _is_real(root):
        count = psutil.cpu_count() if psutil is not None else None
        if count:
            return int(count), "online CPUs (psutil)"
        if os.cpu_count():
            return int(os.cpu_count()), "online CPUs (os.cpu_count)"
    path = "/sys/devices/system/cpu/online"
    count = _count_cpu_file(root, path)
    if count:
        return count, f"online CPUs ({path})"
    cpuinfo = _read(root, "/proc/cpuinfo") or ""
    count = sum(1 for line in cpuinfo.splitlines() if line.split(":")[0].strip() == "processor")
    if count:
        return count, "online CPUs (/proc/cpuinfo)"
    raise InspectError(f"cannot count the CPUs under {root}")


def cgroup_cpuset(root: str = "/") -> tuple:
    """CPUs in the cgroup's cpuset as ``(count, source)``, or ``(None, None)``.

    v2 ``cpuset.cpus.effective``, v1 ``cpuset.cpus``; the smallest non-empty
    set over the cgroup and its ancestors (children are subsets of parents).
    """
    version, dirs = _cgroup_dirs(root, "cpuset", ("cpuset",))
    name = "cpuset.cpus.effective" if version == "v2" else "cpuset.cpus"
    best, source = None, None
    for directory in dirs:
        count = _count_cpu_file(root, directory + "/" + name)
        if count is not None and (best is None or count < best):
            best, source = count, f"cgroup {version} {name} ({directory}/{name})"
    return best, source


def _quota_in(root: str, version: str, directory: str) -> tuple:
    """The CPU quota in one cgroup dir as ``(cpus, file)``, or ``(None, None)``.

    v2 ``cpu.max`` is "QUOTA PERIOD" or "max PERIOD"; v1 is
    ``cpu.cfs_quota_us`` (-1 = none) over ``cpu.cfs_period_us``.
    """
    if version == "v2":
        fields = (_read(root, directory + "/cpu.max") or "").split()
        quota = fields[0] if fields else "max"
        period = fields[1] if len(fields) > 1 else "100000"
        name = "cpu.max"
    else:
        quota = _read(root, directory + "/cpu.cfs_quota_us") or "-1"
        period = _read(root, directory + "/cpu.cfs_period_us") or "100000"
        name = "cpu.cfs_quota_us"
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max", or garbage
        return None, None
    if quota_us <= 0 or period_us <= 0:
        return None, None
    return quota_us / period_us, f"{directory}/{name}"


def cgroup_cpu_quota(root: str = "/") -> tuple:
    """The tightest CFS quota in CPUs as ``(cpus, source)``, or ``(None, None)``.

    Looked up under the v1 ``cpu`` controller (mounted as ``cpu,cpuacct`` or
    ``cpu``) or the v2 ``cpu.max``; smallest over the cgroup and its ancestors.
    """
    version, dirs = _cgroup_dirs(root, "cpu", ("cpu,cpuacct", "cpuacct,cpu", "cpu"))
    best, source = None, None
    for directory in dirs:
        cpus, path = _quota_in(root, version, directory)
        if cpus is not None and (best is None or cpus < best):
            best, source = cpus, f"cgroup {version} CPU quota ({path})"
    return best, source


def usable_cpus(root: str = "/") -> tuple:
    """Usable CPUs as ``(cpus, online_cpus, source)``.

    The smallest of the online CPUs, the cpuset, the scheduler affinity (real
    host only) and the CFS quota. Fractional because of the quota: rounded to
    2 decimals and never below 0.01.
    """
    online, source = online_cpus(root)
    best = float(online)
    candidates = [cgroup_cpuset(root), cgroup_cpu_quota(root)]
    if _is_real(root) and hasattr(os, "sched_getaffinity"):
        candidates.append((len(os.sched_getaffinity(0)), "sched_getaffinity"))
    for value, value_source in candidates:
        if value is not None and value < best:
            best, source = float(value), value_source
    return max(0.01, round(best, 2)), online, source


# --------------------------------------------------------------------------
# storage


def _unescape_mount(field: str) -> str:
    r"""Undo mountinfo's octal escapes (``\040`` is a space)."""
    out, i = [], 0
    while i < len(field):
        chunk = field[i + 1 : i + 4]
        if field[i] == "\\" and len(chunk) == 3 and chunk.isdigit():
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _under(path: str, mount_point: str) -> bool:
    """True when ``path`` is ``mount_point`` or lies below it."""
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def find_mount(path: str, root: str = "/") -> dict | None:
    """The /proc/self/mountinfo entry whose mount point is the longest prefix of ``path``.

    Returns ``{"mount_point", "dev", "fstype", "source"}`` or None. On equal
    mount points the later line wins (it is mounted over the earlier one).
    """
    best = None
    for line in (_read(root, "/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        mount_point = _unescape_mount(fields[4])
        if not _under(path, mount_point):
            continue
        if best is None or len(mount_point) >= len(best["mount_point"]):
            rest = [*fields[dash + 1 :], "", ""]
            best = {
                "mount_point": mount_point,
                "dev": fields[2],
                "fstype": rest[0],
                "source": rest[1],
            }
    return best


def _resolve_link(root: str, link: str) -> str | None:
    """Resolve one sysfs symlink inside ``root`` (absolute targets stay in ``root``)."""
    try:
        target = os.readlink(link)
    except OSError:
        return link if os.path.isdir(link) else None
    if os.path.isabs(target):
        return os.path.normpath(_host_path(root, target))
    return os.path.normpath(os.path.join(os.path.dirname(link), target))


def _disk_dir(device_dir: str) -> str:
    """A partition's sysfs dir is inside its disk's dir: step up to the disk."""
    if os.path.exists(os.path.join(device_dir, "partition")):
        return os.path.dirname(device_dir)
    return device_dir


def _device_dir(root: str, mount: dict) -> str | None:
    """The sysfs dir of the disk behind a mount, or None for overlay/tmpfs/unknown.

    Tries ``/sys/dev/block/MAJ:MIN`` and then the mount source ``/dev/NAME``
    (btrfs reports an anonymous 0:N device number).
    """
    candidates = []
    if not mount["dev"].startswith("0:"):  # major 0 = no block device
        candidates.append("/sys/dev/block/" + mount["dev"])
    source = mount["source"]
    if source.startswith("/dev/"):
        if _is_real(root):
            source = os.path.realpath(source)  # /dev/mapper/x -> /dev/dm-0
        candidates.append("/sys/class/block/" + os.path.basename(source))
    for candidate in candidates:
        resolved = _resolve_link(root, _host_path(root, candidate))
        if resolved and os.path.isdir(resolved):
            return _disk_dir(resolved)
    return None


def _slave_dirs(root: str, disk: str) -> list:
    """The disks under a device-mapper / md device (its ``slaves`` entries)."""
    try:
        names = sorted(os.listdir(os.path.join(disk, "slaves")))
    except OSError:
        return []
    dirs = [_resolve_link(root, os.path.join(disk, "slaves", name)) for name in names]
    return [_disk_dir(d) for d in dirs if d and os.path.isdir(d)]


def classify_disk(disk: str, root: str = "/", depth: int = 0) -> tuple:
    """Classify a sysfs disk dir as ``(kind, detail)``.

    Name ``nvme*`` -> nvme; ``queue/rotational`` 1 -> hdd, except on paravirtual
    disks (``vd*``, ``xvd*``, driver virtio_blk or Xen's), which report 1 whatever
    backs them and are taken as ssd; else ssd. LVM, LUKS
    and md devices take their kind from the disks below them: hdd if any is
    rotational, nvme if all are nvme, else ssd.
    """
    name = os.path.basename(disk)
    slaves = _slave_dirs(root, disk) if depth < 8 else []
    if slaves:
        kinds = [classify_disk(slave, root, depth + 1)[0] for slave in slaves]
        kind = "hdd" if "hdd" in kinds else "nvme" if set(kinds) == {"nvme"} else "ssd"
        names = ",".join(os.path.basename(s) for s in slaves)
        return kind, f"{name} over {names}"
    if name.startswith("nvme"):
        return "nvme", name
    rotational = _read_file(os.path.join(disk, "queue", "rotational"))
    if rotational == "1":
        virtual = _virtual_disk(disk, name)
        if virtual:
            # Paravirtual disks report rotational=1 whatever backs them (most cloud
            # volumes are SSD); planning them as HDD would make index scans look 4x dearer.
            return "ssd", f"{name} queue/rotational=1 ignored: {virtual}"
        return "hdd", f"{name} queue/rotational=1"
    return "ssd", f"{name} queue/rotational={rotational or '?'}"


VIRTUAL_DISK_PREFIXES = ("vd", "xvd")
VIRTUAL_DISK_DRIVERS = ("virtio_blk", "vbd", "xen-blkfront")


def _virtual_disk(disk: str, name: str) -> str:
    """Why the disk is paravirtual (virtio/Xen), or '' when it does not look so."""
    if name.startswith(VIRTUAL_DISK_PREFIXES):
        return f"a virtual disk ({name[:3] if name.startswith('xvd') else name[:2]}*)"
    driver = os.path.realpath(os.path.join(disk, "device", "driver"))
    if os.path.basename(driver) in VIRTUAL_DISK_DRIVERS:
        return f"a virtual disk (driver {os.path.basename(driver)})"
    return ""


def _check_override(override: str | None) -> None:
    """Raise InspectError unless ``override`` is None or a known storage kind."""
    if override is not None and override not in STORAGE_KINDS:
        raise InspectError(
            f"storage override {override!r} is not one of: {', '.join(STORAGE_KINDS)}"
        )


def default_data_path(root: str = "/") -> str:
    """The PostgreSQL data dir if one exists, else "/"."""
    for path in PG_DATA_DIRS:
        if os.path.isdir(_host_path(root, path)):
            return path
    return "/"


def storage_kind(path: str | None = None, root: str = "/", override: str | None = None) -> tuple:
    """The kind of storage holding ``path`` as ``(kind, source)``.

    An override wins. Otherwise the device of the mount holding ``path`` is
    classified; an overlay/tmpfs/unknown device (containers) falls back to the
    device holding "/", and failing that ssd is assumed.
    """
    _check_override(override)
    if override is not None:
        return override, "override"
    path = path or default_data_path(root)
    # normpath keeps a leading "//" (POSIX allows it a meaning): reduce to "/"
    path = os.path.realpath(path) if _is_real(root) else os.path.normpath(path)
    path = "/" + path.lstrip("/")
    mount = find_mount(path, root)
    disk = _device_dir(root, mount) if mount else None
    if disk is not None:
        kind, detail = classify_disk(disk, root)
        return kind, f"{detail} (holds {mount['mount_point']})"
    what = f"{mount['fstype'] or '?'} on {mount['mount_point']}" if mount else path
    root_mount = find_mount("/", root) if mount and mount["mount_point"] != "/" else None
    root_disk = _device_dir(root, root_mount) if root_mount else None
    if root_disk is not None:
        kind, detail = classify_disk(root_disk, root)
        return kind, f"{what}: unknown device; used the device holding / ({detail})"
    return "ssd", f"{what}: unknown device; assumed ssd"


# --------------------------------------------------------------------------
# OS and container


def _unquote(value: str) -> str:
    """Undo os-release's shell quoting; tolerate broken quotes."""
    try:
        return " ".join(shlex.split(value, comments=False))
    except ValueError:
        return value.strip("\"'")


def os_release(root: str = "/") -> dict:
    """All ``KEY=value`` pairs of /etc/os-release (or /usr/lib/os-release), unquoted.

    Returns {} when neither file is readable.
    """
    text = _read(root, "/etc/os-release")
    if text is None:
        text = _read(root, "/usr/lib/os-release") or ""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        fields[key.strip()] = _unquote(value.strip())
    return fields


def in_container(root: str = "/") -> bool:
    """True inside a container.

    Signs: /.dockerenv, /run/.containerenv (podman), /run/systemd/container,
    docker/kubepods/lxc in /proc/1/cgroup, or (real host only) $container.
    """
    for marker in ("/.dockerenv", "/run/.containerenv", "/run/systemd/container"):
        if os.path.exists(_host_path(root, marker)):
            return True
    init_cgroup = _read(root, "/proc/1/cgroup") or ""
    if any(word in init_cgroup for word in CONTAINER_MARKERS):
        return True
    # systemd and podman spell it lowercase: $container.
    return _is_real(root) and bool(os.environ.get("container"))  # noqa: SIM112


# --------------------------------------------------------------------------
# packages (read from dpkg's database, so a run needs no package_facts call)


def installed_packages(root: str = "/") -> dict:
    """Packages dpkg lists as installed, in package_facts' shape.

    Returns {name: [{"name", "version", "arch", "source": "apt"}]}: the roles ask
    ``name in ansible_facts.packages``, and reading the status file here saves a
    module call (and python-apt's cache) per run.
    """
    text = _read(root, "/var/lib/dpkg/status") or ""
    packages: dict = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        name = fields.get("Package")
        # "install ok installed": config-files, half-installed and the like are not.
        if not name or fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        packages.setdefault(name, []).append({
            "name": name, "version": fields.get("Version", ""),
            "arch": fields.get("Architecture", ""), "source": "apt"})
    return packages


def apt_lists_age_seconds(root: str = "/", now: float | None = None) -> float | None:
    """Seconds since the package index was last refreshed; None when there is none.

    An index file keeps its mtime (the archive's date) when a refresh finds it unchanged,
    so a refresh of an index the archive has not changed since is seen in lists/partial/,
    where apt downloads during every refresh.
    """
    lists = _host_path(root, "/var/lib/apt/lists")
    try:
        mtimes = [entry.stat().st_mtime for entry in os.scandir(lists)
                  if "_Packages" in entry.name and entry.is_file()]
    except OSError:
        return None
    if not mtimes:
        return None
    with contextlib.suppress(OSError):
        mtimes.append(os.stat(os.path.join(lists, "partial")).st_mtime)
    return max(0.0, (time.time() if now is None else now) - max(mtimes))


# --------------------------------------------------------------------------
# everything


def inspect_host(
    root: str = "/", data_path: str | None = None, storage_override: str | None = None
) -> dict:
    """Inspect the host: usable memory and CPUs, storage kind, OS, container.

    Returns {"memory_bytes": int, "cpus": float, "storage": "ssd"|"hdd"|"nvme"|"san",
    "physical_memory_bytes": int, "online_cpus": int, "memory_source": str,
    "cpu_source": str, "storage_source": str, "os_id": str, "os_version": str,
    "in_container": bool}. Raises InspectError.
    """
    _check_override(storage_override)  # fail before any work
    memory, physical, memory_source = usable_memory(root)
    cpus, online, cpu_source = usable_cpus(root)
    storage, storage_source = storage_kind(data_path, root, storage_override)
    release = os_release(root)
    return {
        "memory_bytes": int(memory),
        "cpus": float(cpus),
        "storage": storage,
        "physical_memory_bytes": int(physical),
        "online_cpus": int(online),
        "memory_source": memory_source,
        "cpu_source": cpu_source,
        "storage_source": storage_source,
        "os_id": release.get("ID", "unknown"),
        "os_version": release.get("VERSION_ID", ""),
        "in_container": in_container(root),
    }
