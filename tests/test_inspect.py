"""Tests for stacktune.inspect, on fake filesystem trees built under tmp_path."""

from __future__ import annotations

import ast
import os
import sys

import pytest

from stacktune import inspect as hi

GIB = 1024**3
MEMTOTAL_KB = 8 * 1024 * 1024  # an 8 GiB host
V1_UNLIMITED = "9223372036854771712"
CONTAINER_ID = "4f1c2a9b7d3e"


def write(root, path, text):
    """Create ``<root>/<path>`` (and its parents) holding ``text``."""
    full = root / path.lstrip("/")
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)
    return full


def make_host(root, cpus="0-3", memtotal_kb=MEMTOTAL_KB):
    """The files every fake host has: meminfo and the online CPU list."""
    write(root, "/proc/meminfo", f"MemTotal:       {memtotal_kb} kB\nMemFree:  1000 kB\n")
    write(root, "/sys/devices/system/cpu/online", cpus + "\n")
    return str(root)


def v1_cgroup_file(path):
    """/proc/self/cgroup of a process in cgroup v1 at ``path`` for every controller."""
    return (
        f"12:memory:{path}\n11:cpuset:{path}\n4:cpu,cpuacct:{path}\n1:name=systemd:{path}\n0::/\n"
    )


def v1_controllers(root, path, limit=None, quota=None, period="100000", cpuset=None):
    """cgroup v1 controller files for ``path`` (cpu,cpuacct mounted together)."""
    base = "/sys/fs/cgroup"
    (root / "sys/fs/cgroup/memory").mkdir(parents=True, exist_ok=True)
    (root / "sys/fs/cgroup/cpu,cpuacct").mkdir(parents=True, exist_ok=True)
    (root / "sys/fs/cgroup/cpuset").mkdir(parents=True, exist_ok=True)
    sub = path.rstrip("/")
    if limit is not None:
        write(root, f"{base}/memory{sub}/memory.limit_in_bytes", f"{limit}\n")
    if quota is not None:
        write(root, f"{base}/cpu,cpuacct{sub}/cpu.cfs_quota_us", f"{quota}\n")
        write(root, f"{base}/cpu,cpuacct{sub}/cpu.cfs_period_us", f"{period}\n")
    if cpuset is not None:
        write(root, f"{base}/cpuset{sub}/cpuset.cpus", f"{cpuset}\n")


# --------------------------------------------------------------------------
# memory and CPUs


def test_cgroup_v1_docker_limits(tmp_path):
    """docker run --memory 2g --cpus 1.5 on a cgroup v1 host."""
    root = make_host(tmp_path)
    path = f"/docker/{CONTAINER_ID}"
    write(tmp_path, "/proc/self/cgroup", v1_cgroup_file(path))
    v1_controllers(tmp_path, "/", limit=V1_UNLIMITED, quota=-1, cpuset="0-3")
    v1_controllers(tmp_path, path, limit=2 * GIB, quota=150000, cpuset="0-3")

    memory, physical, source = hi.usable_memory(root)
    assert (memory, physical) == (2 * GIB, MEMTOTAL_KB * 1024)
    assert source == (
        f"cgroup v1 memory.limit_in_bytes (/sys/fs/cgroup/memory{path}/memory.limit_in_bytes)"
    )
    cpus, online, cpu_source = hi.usable_cpus(root)
    assert (cpus, online) == (1.5, 4)
    assert cpu_source == (
        f"cgroup v1 CPU quota (/sys/fs/cgroup/cpu,cpuacct{path}/cpu.cfs_quota_us)"
    )


def test_cgroup_v1_private_namespace_uses_mount_root(tmp_path):
    """With a private cgroup namespace the container sees itself at "/"."""
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", v1_cgroup_file("/"))
    v1_controllers(tmp_path, "/", limit=2 * GIB, quota=50000)

    memory, _, source = hi.usable_memory(root)
    assert memory == 2 * GIB
    assert "/sys/fs/cgroup/memory/memory.limit_in_bytes" in source
    assert hi.usable_cpus(root)[0] == 0.5


def test_cgroup_v1_missing_path_falls_back_to_mount_root(tmp_path):
    """/proc/self/cgroup names /docker/<id> but only the mount root is visible."""
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", v1_cgroup_file(f"/docker/{CONTAINER_ID}"))
    v1_controllers(tmp_path, "/", limit=3 * GIB, quota=200000)

    assert hi.usable_memory(root)[0] == 3 * GIB
    assert hi.usable_cpus(root)[0] == 2.0


def test_cgroup_v1_unlimited(tmp_path):
    root = make_host(tmp_path)
    path = f"/docker/{CONTAINER_ID}"
    write(tmp_path, "/proc/self/cgroup", v1_cgroup_file(path))
    v1_controllers(tmp_path, path, limit=V1_UNLIMITED, quota=-1, cpuset="0-3")

    assert hi.usable_memory(root) == (MEMTOTAL_KB * 1024, MEMTOTAL_KB * 1024, "/proc/meminfo")
    cpus, online, source = hi.usable_cpus(root)
    assert (cpus, online) == (4.0, 4)
    assert source == "online CPUs (/sys/devices/system/cpu/online)"


def test_cgroup_v1_separate_cpu_mount(tmp_path):
    """Some hosts mount cpu and cpuacct apart: /sys/fs/cgroup/cpu/<path>."""
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "3:cpu:/box\n2:cpuacct:/box\n")
    write(tmp_path, "/sys/fs/cgroup/cpu/box/cpu.cfs_quota_us", "25000")
    write(tmp_path, "/sys/fs/cgroup/cpu/box/cpu.cfs_period_us", "100000")
    assert hi.usable_cpus(root)[:2] == (0.25, 4)


def test_cgroup_v2_limits(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/system.slice/app.service\n")
    write(tmp_path, "/sys/fs/cgroup/system.slice/app.service/memory.max", "2147483648\n")
    write(tmp_path, "/sys/fs/cgroup/system.slice/app.service/cpu.max", "150000 100000\n")

    memory, physical, source = hi.usable_memory(root)
    assert (memory, physical) == (2 * GIB, MEMTOTAL_KB * 1024)
    assert source == ("cgroup v2 memory.max (/sys/fs/cgroup/system.slice/app.service/memory.max)")
    cpus, online, cpu_source = hi.usable_cpus(root)
    assert (cpus, online) == (1.5, 4)
    assert cpu_source.startswith("cgroup v2 CPU quota (")


def test_cgroup_v2_max_means_no_limit(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/app\n")
    write(tmp_path, "/sys/fs/cgroup/app/memory.max", "max\n")
    write(tmp_path, "/sys/fs/cgroup/app/cpu.max", "max 100000\n")

    assert hi.usable_memory(root) == (MEMTOTAL_KB * 1024, MEMTOTAL_KB * 1024, "/proc/meminfo")
    assert hi.usable_cpus(root)[:2] == (4.0, 4)


def test_cgroup_v2_parent_slice_is_tighter(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/limited.slice/app.service\n")
    write(tmp_path, "/sys/fs/cgroup/limited.slice/memory.max", str(1 * GIB))
    write(tmp_path, "/sys/fs/cgroup/limited.slice/cpu.max", "50000 100000")
    write(tmp_path, "/sys/fs/cgroup/limited.slice/app.service/memory.max", str(4 * GIB))
    write(tmp_path, "/sys/fs/cgroup/limited.slice/app.service/cpu.max", "300000 100000")

    memory, _, source = hi.usable_memory(root)
    assert memory == 1 * GIB
    assert "/sys/fs/cgroup/limited.slice/memory.max" in source
    assert hi.usable_cpus(root)[0] == 0.5


def test_cgroup_v2_private_namespace_reads_root(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/\n")
    write(tmp_path, "/sys/fs/cgroup/memory.max", str(512 * 1024**2))
    write(tmp_path, "/sys/fs/cgroup/cpu.max", "100000 100000")

    memory, _, source = hi.usable_memory(root)
    assert memory == 512 * 1024**2
    assert source == "cgroup v2 memory.max (/sys/fs/cgroup/memory.max)"
    assert hi.usable_cpus(root)[0] == 1.0


def test_no_cgroup_at_all_uses_physical_figures(tmp_path):
    root = make_host(tmp_path, cpus="0-7")
    assert hi.usable_memory(root) == (MEMTOTAL_KB * 1024, MEMTOTAL_KB * 1024, "/proc/meminfo")
    assert hi.usable_cpus(root) == (8.0, 8, "online CPUs (/sys/devices/system/cpu/online)")


def test_cpuset_only(tmp_path):
    root = make_host(tmp_path, cpus="0-3")
    write(tmp_path, "/proc/self/cgroup", "0::/pinned\n")
    write(tmp_path, "/sys/fs/cgroup/pinned/cpuset.cpus.effective", "0-1\n")

    cpus, online, source = hi.usable_cpus(root)
    assert (cpus, online) == (2.0, 4)
    assert source == (
        "cgroup v2 cpuset.cpus.effective (/sys/fs/cgroup/pinned/cpuset.cpus.effective)"
    )


def test_cpuset_v1_and_quota_smallest_wins(tmp_path):
    root = make_host(tmp_path, cpus="0-7")
    path = f"/docker/{CONTAINER_ID}"
    write(tmp_path, "/proc/self/cgroup", v1_cgroup_file(path))
    v1_controllers(tmp_path, path, quota=400000, cpuset="2,5")
    cpus, _, source = hi.usable_cpus(root)
    assert cpus == 2.0
    assert source.startswith("cgroup v1 cpuset.cpus (")


def test_tiny_quota_is_at_least_one_hundredth(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/\n")
    write(tmp_path, "/sys/fs/cgroup/cpu.max", "333 100000")
    assert hi.usable_cpus(root)[0] == 0.01


def test_limit_above_physical_memory_loses(tmp_path):
    root = make_host(tmp_path, memtotal_kb=1024 * 1024)  # 1 GiB host
    write(tmp_path, "/proc/self/cgroup", "0::/app\n")
    write(tmp_path, "/sys/fs/cgroup/app/memory.max", str(64 * GIB))
    assert hi.usable_memory(root) == (GIB, GIB, "/proc/meminfo")


def test_online_cpus_falls_back_to_cpuinfo(tmp_path):
    write(tmp_path, "/proc/cpuinfo", "processor\t: 0\nflags: x\n\nprocessor\t: 1\n")
    assert hi.online_cpus(str(tmp_path)) == (2, "online CPUs (/proc/cpuinfo)")


def test_unreadable_meminfo_raises(tmp_path):
    with pytest.raises(hi.InspectError, match="meminfo"):
        hi.usable_memory(str(tmp_path))
    write(tmp_path, "/proc/meminfo", "MemFree: 12 kB\n")
    with pytest.raises(hi.InspectError, match="MemTotal"):
        hi.usable_memory(str(tmp_path))


def test_no_cpu_information_raises(tmp_path):
    with pytest.raises(hi.InspectError, match="CPUs"):
        hi.online_cpus(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "count"),
    [("0", 1), ("0-3", 4), ("0-3,5", 5), ("0-1,4-5,8", 5), ("", 0), ("0-63\n", 64)],
)
def test_parse_cpu_list(text, count):
    assert hi.parse_cpu_list(text) == count


def test_cgroup_membership_parses_joined_controllers(tmp_path):
    write(tmp_path, "/proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/\n")
    groups = hi.cgroup_membership(str(tmp_path))
    assert groups["v2"] == "/"
    assert groups["v1"] == {
        "cpu": ("cpu,cpuacct", "/docker/abc"),
        "cpuacct": ("cpu,cpuacct", "/docker/abc"),
    }


# --------------------------------------------------------------------------
# storage


def mountinfo_line(mount_point, dev, fstype="ext4", source="/dev/sda1"):
    """One /proc/self/mountinfo line."""
    return f"30 1 {dev} / {mount_point} rw,relatime shared:1 - {fstype} {source} rw\n"


def make_disk(root, name, dev, rotational="0", partition=None, part_dev=None):
    """A sysfs disk (and optionally one partition) reachable via /sys/dev/block."""
    disk = root / "sys/devices/pci0000:00/block" / name
    write(root, str(disk.relative_to(root)) + "/queue/rotational", rotational + "\n")
    links = root / "sys/dev/block"
    links.mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../devices/pci0000:00/block/{name}", links / dev)
    if partition:
        write(root, str(disk.relative_to(root)) + f"/{partition}/partition", "1\n")
        os.symlink(f"../../devices/pci0000:00/block/{name}/{partition}", links / part_dev)


@pytest.mark.parametrize(
    ("name", "rotational", "kind"),
    [("sda", "1", "hdd"), ("sda", "0", "ssd"), ("nvme0n1", "0", "nvme"),
     # Cloud VMs: virtio/Xen disks report rotational=1 whatever backs them.
     ("vda", "1", "ssd"), ("xvdb", "1", "ssd")],
)
def test_storage_kind_by_device(tmp_path, name, rotational, kind):
    make_disk(tmp_path, name, "8:0", rotational=rotational)
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "8:0", source=f"/dev/{name}"))
    got, source = hi.storage_kind("/var/lib/postgresql", str(tmp_path))
    assert got == kind
    assert name in source and "holds /" in source


def test_storage_kind_partition_uses_parent_disk(tmp_path):
    make_disk(tmp_path, "sdb", "8:16", rotational="1", partition="sdb1", part_dev="8:17")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/srv", "8:17"))
    assert hi.storage_kind("/srv/pg", str(tmp_path))[0] == "hdd"


def test_storage_kind_nvme_partition(tmp_path):
    make_disk(tmp_path, "nvme0n1", "259:0", partition="nvme0n1p2", part_dev="259:2")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "259:2"))
    assert hi.storage_kind("/", str(tmp_path)) == ("nvme", "nvme0n1 (holds /)")


def test_storage_kind_longest_mount_prefix_wins(tmp_path):
    make_disk(tmp_path, "sda", "8:0", rotational="0")
    make_disk(tmp_path, "sdb", "8:16", rotational="1")
    write(
        tmp_path,
        "/proc/self/mountinfo",
        mountinfo_line("/", "8:0")
        + mountinfo_line("/var/lib/postgresql", "8:16")
        + mountinfo_line("/var/lib/postgres", "8:0"),  # a prefix of the string only
    )
    assert hi.storage_kind("/var/lib/postgresql/16/main", str(tmp_path))[0] == "hdd"
    assert hi.storage_kind("/var/lib/other", str(tmp_path))[0] == "ssd"


def test_storage_kind_mount_point_with_space(tmp_path):
    make_disk(tmp_path, "sdc", "8:32", rotational="1")
    write(
        tmp_path,
        "/proc/self/mountinfo",
        mountinfo_line("/", "0:40", "overlay", "overlay") + mountinfo_line("/my\\040data", "8:32"),
    )
    assert hi.storage_kind("/my data/pg", str(tmp_path))[0] == "hdd"


def test_storage_kind_overlay_falls_back_to_root_device(tmp_path):
    make_disk(tmp_path, "sda", "8:0", rotational="1")
    write(
        tmp_path,
        "/proc/self/mountinfo",
        mountinfo_line("/", "8:0")
        + mountinfo_line("/var/lib/postgresql", "0:52", "tmpfs", "tmpfs"),
    )
    kind, source = hi.storage_kind("/var/lib/postgresql", str(tmp_path))
    assert kind == "hdd"
    assert "unknown device; used the device holding /" in source


def test_storage_kind_overlay_root_assumes_ssd(tmp_path):
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "0:40", "overlay", "overlay"))
    kind, source = hi.storage_kind("/var/lib/postgresql", str(tmp_path))
    assert kind == "ssd"
    assert source == "overlay on /: unknown device; assumed ssd"


def test_storage_kind_without_mountinfo_assumes_ssd(tmp_path):
    kind, source = hi.storage_kind("/", str(tmp_path))
    assert kind == "ssd"
    assert "unknown device; assumed ssd" in source


def test_storage_kind_device_mapper_over_hdd(tmp_path):
    make_disk(tmp_path, "sda", "8:0", rotational="1")
    make_disk(tmp_path, "dm-0", "253:0", rotational="0")
    slaves = tmp_path / "sys/devices/pci0000:00/block/dm-0/slaves"
    slaves.mkdir()
    os.symlink("../../sda", slaves / "sda")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "253:0", source="/dev/dm-0"))
    kind, source = hi.storage_kind("/", str(tmp_path))
    assert kind == "hdd"
    assert "dm-0 over sda" in source


def test_storage_kind_default_path_is_postgres_data_dir(tmp_path):
    make_disk(tmp_path, "sda", "8:0", rotational="0")
    make_disk(tmp_path, "sdb", "8:16", rotational="1")
    (tmp_path / "var/lib/postgresql").mkdir(parents=True)
    write(
        tmp_path,
        "/proc/self/mountinfo",
        mountinfo_line("/", "8:0") + mountinfo_line("/var/lib/postgresql", "8:16"),
    )
    assert hi.storage_kind(root=str(tmp_path))[0] == "hdd"
    (tmp_path / "var/lib/postgresql").rmdir()
    assert hi.storage_kind(root=str(tmp_path))[0] == "ssd"


def test_storage_override_wins(tmp_path):
    make_disk(tmp_path, "sda", "8:0", rotational="1")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "8:0"))
    assert hi.storage_kind("/", str(tmp_path), override="san") == ("san", "override")


def test_storage_bad_override_raises(tmp_path):
    with pytest.raises(hi.InspectError, match=r"'floppy'.*hdd, ssd, nvme, san"):
        hi.storage_kind("/", str(tmp_path), override="floppy")
    with pytest.raises(hi.InspectError, match="floppy"):
        hi.inspect_host(str(tmp_path), storage_override="floppy")


# --------------------------------------------------------------------------
# OS and container


def test_os_release_quotes(tmp_path):
    write(
        tmp_path,
        "/etc/os-release",
        '# comment\nPRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\n'
        'VERSION_ID=\'11\'\nNAME="Say \\"hi\\""\n\nBROKEN="oops\n',
    )
    release = hi.os_release(str(tmp_path))
    assert release["ID"] == "debian"
    assert release["VERSION_ID"] == "11"
    assert release["PRETTY_NAME"] == "Debian GNU/Linux 11 (bullseye)"
    assert release["NAME"] == 'Say "hi"'
    assert release["BROKEN"] == "oops"


def test_os_release_fallback_and_missing(tmp_path):
    assert hi.os_release(str(tmp_path)) == {}
    write(tmp_path, "/usr/lib/os-release", 'ID=ubuntu\nVERSION_ID="24.04"\n')
    assert hi.os_release(str(tmp_path)) == {"ID": "ubuntu", "VERSION_ID": "24.04"}


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (None, None, False),
        ("/.dockerenv", "", True),
        ("/run/systemd/container", "lxc\n", True),
        ("/proc/1/cgroup", "11:memory:/kubepods/burstable/pod1/abc\n", True),
        ("/proc/1/cgroup", "0::/init.scope\n", False),
    ],
)
def test_in_container(tmp_path, path, text, expected):
    if path:
        write(tmp_path, path, text)
    assert hi.in_container(str(tmp_path)) is expected


def test_in_container_ignores_env_for_fake_root(tmp_path, monkeypatch):
    monkeypatch.setenv("container", "podman")
    assert hi.in_container(str(tmp_path)) is False


# --------------------------------------------------------------------------
# everything


def test_inspect_host_on_fake_tree(tmp_path):
    root = make_host(tmp_path)
    write(tmp_path, "/proc/self/cgroup", "0::/\n")
    write(tmp_path, "/sys/fs/cgroup/memory.max", str(2 * GIB))
    write(tmp_path, "/sys/fs/cgroup/cpu.max", "150000 100000")
    write(tmp_path, "/etc/os-release", 'ID=debian\nVERSION_ID="11"\n')
    write(tmp_path, "/.dockerenv", "")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "0:40", "overlay", "overlay"))

    assert hi.inspect_host(root) == {
        "memory_bytes": 2 * GIB,
        "cpus": 1.5,
        "storage": "ssd",
        "physical_memory_bytes": MEMTOTAL_KB * 1024,
        "online_cpus": 4,
        "memory_source": "cgroup v2 memory.max (/sys/fs/cgroup/memory.max)",
        "cpu_source": "cgroup v2 CPU quota (/sys/fs/cgroup/cpu.max)",
        "storage_source": "overlay on /: unknown device; assumed ssd",
        "os_id": "debian",
        "os_version": "11",
        "in_container": True,
    }
    assert hi.inspect_host(root, storage_override="nvme")["storage"] == "nvme"


def test_inspect_host_on_this_machine():
    facts = hi.inspect_host()
    assert set(facts) == {
        "memory_bytes", "cpus", "storage", "physical_memory_bytes", "online_cpus",
        "memory_source", "cpu_source", "storage_source", "os_id", "os_version",
        "in_container",
    }  # fmt: skip
    assert isinstance(facts["memory_bytes"], int)
    assert isinstance(facts["physical_memory_bytes"], int)
    assert isinstance(facts["cpus"], float)
    assert isinstance(facts["online_cpus"], int)
    assert isinstance(facts["in_container"], bool)
    for key in ("memory_source", "cpu_source", "storage_source", "os_id", "os_version"):
        assert isinstance(facts[key], str)
    assert 0 < facts["memory_bytes"] <= facts["physical_memory_bytes"]
    assert 0.01 <= facts["cpus"] <= facts["online_cpus"]
    assert facts["storage"] in hi.STORAGE_KINDS


def test_module_is_self_contained():
    """It ships alone as Ansible module_utils: stdlib (and optional psutil) only."""
    with open(hi.__file__) as handle:
        tree = ast.parse(handle.read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            modules.add(node.module.split(".")[0])
    assert modules - {"psutil"} <= set(sys.stdlib_module_names)


def test_virtio_disk_by_driver_is_not_hdd(tmp_path):
    """A virtio-blk disk under another name (rotational=1) is planned as ssd."""
    make_disk(tmp_path, "sdq", "8:0", rotational="1")
    disk = tmp_path / "sys/devices/pci0000:00/block/sdq"
    driver = tmp_path / "sys/bus/virtio/drivers/virtio_blk"
    driver.mkdir(parents=True)
    (disk / "device").mkdir()
    os.symlink(driver, disk / "device" / "driver")
    write(tmp_path, "/proc/self/mountinfo", mountinfo_line("/", "8:0", source="/dev/sdq"))
    kind, source = hi.storage_kind("/", str(tmp_path))
    assert kind == "ssd" and "virtio_blk" in source



# --- packages: dpkg's status file instead of a package_facts call ----------------------

DPKG_STATUS = """Package: pgbouncer
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.18.0-1
Description: lightweight connection pooler for PostgreSQL
 PgBouncer is a lightweight connection pooler.
 .
 Status: a description line that must not count

Package: redis-server
Status: deinstall ok config-files
Architecture: amd64
Version: 5:7.0.15-1~deb12u1

Package: rsync
Status: install ok half-configured
Architecture: amd64
Version: 3.2.7-1

Package: libpq5
Status: install ok installed
Architecture: amd64
Version: 15.8-0+deb12u1
"""


def test_installed_packages_are_dpkgs_installed_ones_in_package_facts_shape(tmp_path):
    write(tmp_path, "/var/lib/dpkg/status", DPKG_STATUS)
    packages = hi.installed_packages(str(tmp_path))
    # Removed (config-files) and half-configured packages are not installed.
    assert sorted(packages) == ["libpq5", "pgbouncer"]
    assert packages["pgbouncer"] == [
        {"name": "pgbouncer", "version": "1.18.0-1", "arch": "amd64", "source": "apt"}]


def test_no_dpkg_database_means_no_packages(tmp_path):
    assert hi.installed_packages(str(tmp_path)) == {}


def test_apt_lists_age_is_the_newest_index_files(tmp_path):
    lists = "/var/lib/apt/lists/deb.debian.org_debian_dists_"
    old = write(tmp_path, lists + "bookworm_main_binary-amd64_Packages", "")
    new = write(tmp_path, lists + "bookworm-updates_main_binary-amd64_Packages.lz4", "")
    write(tmp_path, "/var/lib/apt/lists/lock", "")
    os.utime(old, (1000, 1000))
    os.utime(new, (5000, 5000))
    assert hi.apt_lists_age_seconds(str(tmp_path), now=5600) == 600


def test_apt_lists_age_counts_a_refresh_that_changed_no_file(tmp_path):
    """apt keeps an unchanged index file's date: its download directory shows the refresh."""
    lists = "/var/lib/apt/lists/"
    index = write(tmp_path, lists + "deb.debian.org_debian_dists_bookworm_main_binary-amd64_"
                  "Packages", "")
    os.utime(index, (1000, 1000))
    partial = tmp_path / lists.strip("/") / "partial"
    partial.mkdir()
    os.utime(partial, (5000, 5000))
    assert hi.apt_lists_age_seconds(str(tmp_path), now=5600) == 600


def test_apt_lists_age_without_an_index_is_none(tmp_path):
    write(tmp_path, "/var/lib/apt/lists/lock", "")
    assert hi.apt_lists_age_seconds(str(tmp_path), now=5600) is None
    assert hi.apt_lists_age_seconds(str(tmp_path / "nowhere"), now=5600) is None
