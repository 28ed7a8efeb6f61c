#!/usr/bin/env python3
"""Build the GPG-signed RPM repositories of the EL package scenario (molecule/el).

Every package carries the real name, epoch, version, release and the Requires/Conflicts/
Provides/Obsoletes that decide what dnf may install together (taken from Docker's and NVIDIA's
spec files and repositories, and CentOS 7 extras). Payloads are minimal: a few shell scripts
that answer ``--version`` and a systemd unit, so services start; no real engine or runtime.
Requirements on the base OS (libseccomp, iptables, tar, systemd-units, ...) are left out: the
test host's rpm database holds only what these repositories provide.

One throw-away key signs every package and every repomd.xml (real vendors each have their own);
the public key is published at each URL the roles fetch a key from.

Usage: build_repo.py OUTDIR   (needs rpmbuild, rpmsign, createrepo_c, gpg: tests/el/build-repo.sh)
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent

# Payload scripts. dockerd stays in the foreground like the real one, so systemd sees it running.
DOCKERD = """#!/bin/sh
# Test payload of {name}-{evr} (tests/el/build_repo.py): not a Docker engine.
if [ "$1" = "--version" ] || [ "$1" = "-v" ]; then echo "Docker version {docker_version}, build {name}"; exit 0; fi
exec sleep infinity
"""
DOCKER_CLI = """#!/bin/sh
# Test payload of {name}-{evr} (tests/el/build_repo.py): not a Docker client.
echo "Docker version {docker_version}, build {name}"
"""
TOOL = """#!/bin/sh
# Test payload of {name}-{evr} (tests/el/build_repo.py).
echo "{tool} version {version} ({name}-{evr}, test payload)"
"""
DOCKER_UNIT = """[Unit]
Description=Docker Application Container Engine (test payload of {name}-{evr})
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/bin/dockerd
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

NVIDIA_DAEMON_JSON = """{
    "runtimes": {
        "nvidia": {
            "path": "nvidia-container-runtime",
            "runtimeArgs": []
        }
    }
}
"""

DOCKER_CE_CONFLICTS = ["docker", "docker-io", "docker-engine-cs", "docker-ee"]


def docker_ce(version, release, dist, epoch=None, cli=True, containerd=">= 1.2.2-3"):
    """docker-ce as Docker's repository builds it: legacy builds bundle the CLI and containerd."""
    requires = ["container-selinux >= 2:2.74"] if epoch else ["container-selinux >= 2.9"]
    if cli:
        requires += ["docker-ce-cli", f"containerd.io {containerd}"]
    upstream = version.replace(".ce", "-ce")
    files = {"/usr/bin/dockerd": ("script", DOCKERD, {"docker_version": upstream}),
             "/usr/lib/systemd/system/docker.service": ("unit", DOCKER_UNIT, {})}
    if not cli:
        files["/usr/bin/docker"] = ("script", DOCKER_CLI, {"docker_version": upstream})
    return dict(name="docker-ce", epoch=epoch, version=version, release=f"{release}.{dist}", arch="x86_64",
                requires=requires, conflicts=DOCKER_CE_CONFLICTS, obsoletes=["docker-ce-selinux"],
                provides=[], files=files)


def docker_ce_cli(version, release, dist):
    return dict(name="docker-ce-cli", epoch="1", version=version, release=f"{release}.{dist}", arch="x86_64",
                requires=[], conflicts=[], obsoletes=[], provides=[],
                files={"/usr/bin/docker": ("script", DOCKER_CLI, {"docker_version": version})})


def containerd_io(version, release, dist):
    return dict(name="containerd.io", epoch=None, version=version, release=f"{release}.{dist}", arch="x86_64",
                requires=["container-selinux >= 2:2.74"], conflicts=["containerd", "runc"],
                obsoletes=["containerd", "runc"], provides=["containerd", "runc"],
                files={"/usr/bin/containerd": ("script", TOOL, {"tool": "containerd", "version": version})})


def centos_docker(version, release):
    """CentOS 7 extras' own docker: epoch 2, split into docker, docker-client and docker-common."""
    evr = f"2:{version}-{release}"
    common = dict(epoch="2", version=version, release=release, arch="x86_64", conflicts=[], obsoletes=[])
    return [
        dict(name="docker", requires=[f"docker-common = {evr}", f"docker-client = {evr}",
                                      "container-selinux >= 2:2.51"],
             conflicts=["docker-ce", "docker-ee"], obsoletes=["docker-io"], provides=["docker-io"],
             files={"/usr/bin/dockerd-current": ("script", DOCKERD, {"docker_version": version}),
                    "/usr/bin/dockerd": ("script", DOCKERD, {"docker_version": version}),
                    "/usr/lib/systemd/system/docker.service": ("unit", DOCKER_UNIT, {})},
             **{k: v for k, v in common.items() if k != "conflicts" and k != "obsoletes"}),
        dict(name="docker-client", requires=[f"docker-common = {evr}"], provides=[],
             files={"/usr/bin/docker-current": ("script", DOCKER_CLI, {"docker_version": version}),
                    "/usr/bin/docker": ("script", DOCKER_CLI, {"docker_version": version})}, **common),
        dict(name="docker-common", requires=[], provides=[], files={}, **common),
    ]


def pkg(name, version, release, arch="x86_64", epoch=None, requires=(), conflicts=(), obsoletes=(),
        provides=(), files=None):
    return dict(name=name, epoch=epoch, version=version, release=release, arch=arch, requires=list(requires),
                conflicts=list(conflicts), obsoletes=list(obsoletes), provides=list(provides), files=files or {})


def legacy_nvidia(docker, release, requirement):
    """nvidia-docker2 2.0.3 and nvidia-container-runtime 2.0.0 built for one Docker release."""
    runtime_rel = f"{release}.docker{docker}"
    return [
        # NVIDIA/nvidia-docker rpm/SPECS/nvidia-docker2.spec (2.0.x)
        pkg("nvidia-docker2", "2.0.3", f"{release}.docker{docker}" + (".ce" if "docker-ce" in requirement else ""),
            arch="noarch", requires=[f"nvidia-container-runtime >= 2.0.0-{runtime_rel}", requirement],
            conflicts=["nvidia-docker < 2.0.0"],
            files={"/usr/bin/nvidia-docker": ("script", TOOL, {"tool": "nvidia-docker", "version": "2.0.3"}),
                   # A plain file, not %config: installing the package overwrites daemon.json (as 2.0.3 did).
                   "/etc/docker/daemon.json": ("file", NVIDIA_DAEMON_JSON, {})}),
        pkg("nvidia-container-runtime", "2.0.0", runtime_rel,
            requires=["nvidia-container-runtime-hook < 2.0.0", requirement],
            files={"/usr/bin/nvidia-container-runtime": ("script", TOOL,
                                                         {"tool": "nvidia-container-runtime", "version": "2.0.0"})}),
    ]


def toolkit(version):
    rel = "1"
    return [
        pkg("nvidia-container-toolkit", version, rel,
            requires=[f"nvidia-container-toolkit-base = {version}-{rel}",
                      f"libnvidia-container-tools >= {version}-{rel}", "libnvidia-container-tools < 2.0.0"],
            obsoletes=["nvidia-container-runtime <= 3.5.0-1", "nvidia-container-runtime-hook <= 1.4.0-2"],
            provides=["nvidia-container-runtime", "nvidia-container-runtime-hook"],
            files={"/usr/bin/nvidia-container-runtime-hook": ("script", TOOL,
                                                              {"tool": "nvidia-container-runtime-hook",
                                                               "version": version})}),
        pkg("nvidia-container-toolkit-base", version, rel,
            files={"/usr/bin/nvidia-ctk": ("script", TOOL, {"tool": "nvidia-ctk", "version": version}),
                   "/usr/bin/nvidia-container-runtime": ("script", TOOL,
                                                         {"tool": "nvidia-container-runtime", "version": version})}),
        pkg("libnvidia-container-tools", version, rel, requires=[f"libnvidia-container1(x86-64) >= {version}-{rel}"],
            files={"/usr/bin/nvidia-container-cli": ("script", TOOL,
                                                     {"tool": "nvidia-container-cli", "version": version})}),
        pkg("libnvidia-container1", version, rel, provides=[f"libnvidia-container1(x86-64) = {version}-{rel}"]),
    ]


def libnvidia_legacy():
    return [
        pkg("nvidia-container-runtime-hook", "1.4.0", "2",
            requires=["libnvidia-container-tools >= 0.1.0", "libnvidia-container-tools < 2.0.0"],
            files={"/usr/bin/nvidia-container-runtime-hook": ("script", TOOL,
                                                              {"tool": "nvidia-container-runtime-hook",
                                                               "version": "1.4.0"})}),
        pkg("libnvidia-container-tools", "1.0.0", "1", requires=["libnvidia-container1(x86-64) >= 1.0.0-1"],
            files={"/usr/bin/nvidia-container-cli": ("script", TOOL,
                                                     {"tool": "nvidia-container-cli", "version": "1.0.0"})}),
        pkg("libnvidia-container1", "1.0.0", "1", provides=["libnvidia-container1(x86-64) = 1.0.0-1"]),
    ]


def versionlock_plugin(name, version, release):
    """The versionlock plugin under the EL name; its payload is Debian's dnf versionlock plugin (real code)."""
    # Its Requires on python3-dnf-plugins-core / dnf point at the base OS (Debian's dnf here): left out.
    return pkg(name, version, release, arch="noarch",
               files={"/usr/lib/python3/dist-packages/dnf-plugins/versionlock.py": ("copy", "versionlock.py", {}),
                      "/etc/dnf/plugins/versionlock.conf": ("config", "[main]\nenabled = 1\n"
                                                            "locklist = /etc/dnf/plugins/versionlock.list\n", {}),
                      "/etc/dnf/plugins/versionlock.list": ("config", "", {})})


def container_selinux(version, release, epoch="2"):
    return pkg("container-selinux", version, release, arch="noarch", epoch=epoch)


# Repository path (below OUTDIR) -> packages. The paths mirror download.docker.com/linux,
# nvidia.github.io and the distributions' own trees, so the roles' URL templates are used unchanged.
REPOS = {
    "docker-ce/linux/centos/7/x86_64/stable": [
        docker_ce("17.12.1.ce", "1", "el7.centos", cli=False),
        docker_ce("18.09.7", "3", "el7", epoch="3"), docker_ce_cli("18.09.7", "3", "el7"),
        docker_ce("19.03.15", "3", "el7", epoch="3"), docker_ce_cli("19.03.15", "3", "el7"),
        docker_ce("20.10.24", "3", "el7", epoch="3"), docker_ce_cli("20.10.24", "3", "el7"),
        containerd_io("1.2.13", "3.2", "el7"), containerd_io("1.6.28", "3.1", "el7"),
    ],
    **{f"docker-ce/linux/centos/{major}/x86_64/stable": [
        docker_ce("20.10.24", "3", f"el{major}", epoch="3"), docker_ce_cli("20.10.24", "3", f"el{major}"),
        docker_ce("24.0.9", "1", f"el{major}", epoch="3"), docker_ce_cli("24.0.9", "1", f"el{major}"),
        containerd_io("1.6.28", "3.1", f"el{major}"), containerd_io("1.6.31", "3.1", f"el{major}"),
    ] for major in ("8", "9")},
    # CentOS 7 base + extras in one tree: CentOS's docker builds, container-selinux, the yum plugin.
    "os/7/x86_64": [
        *centos_docker("1.13.1", "209.git7d71120.el7.centos"),
        *centos_docker("1.12.6", "71.git3e8e77d.el7.centos"),
        container_selinux("2.119.2", "1.911c772.el7_8"),
        versionlock_plugin("yum-plugin-versionlock", "1.1.31", "54.el7_8"),
    ],
    "os/8/x86_64": [container_selinux("2.205.0", "2.module+el8.8.0+1265+fa25dd7a", epoch="2"),
                    versionlock_plugin("python3-dnf-plugin-versionlock", "4.0.21", "25.el8")],
    "os/9/x86_64": [container_selinux("2.221.0", "1.el9", epoch="3"),
                    versionlock_plugin("python3-dnf-plugin-versionlock", "4.3.0", "16.el9")],
    "nvidia/libnvidia-container/centos7/x86_64": libnvidia_legacy()[1:],
    "nvidia/nvidia-container-runtime/centos7/x86_64": [
        *legacy_nvidia("17.12.1", "1", "docker-ce = 17.12.1.ce")[1:],
        *legacy_nvidia("18.09.7", "3", "docker-ce = 3:18.09.7")[1:],
        *legacy_nvidia("1.13.1", "1", "docker = 2:1.13.1")[1:],
        *legacy_nvidia("1.12.6", "1", "docker = 2:1.12.6")[1:],
        *libnvidia_legacy()[:1],
    ],
    "nvidia/nvidia-docker/centos7/x86_64": [
        *legacy_nvidia("17.12.1", "1", "docker-ce = 17.12.1.ce")[:1],
        *legacy_nvidia("18.09.7", "3", "docker-ce = 3:18.09.7")[:1],
        *legacy_nvidia("1.13.1", "1", "docker = 2:1.13.1")[:1],
        *legacy_nvidia("1.12.6", "1", "docker = 2:1.12.6")[:1],
    ],
    "nvidia/libnvidia-container/stable/rpm/x86_64": [*toolkit("1.17.7"), *toolkit("1.17.8")],
}
# Where the roles fetch keys: {docker_engine_repo_base_url}/centos/gpg, {nvidia base}/<project>/gpgkey.
KEY_PATHS = ["docker-ce/linux/centos/gpg", "nvidia/libnvidia-container/gpgkey",
             "nvidia/nvidia-container-runtime/gpgkey", "nvidia/nvidia-docker/gpgkey", "os/RPM-GPG-KEY-el"]


def spec_text(p):
    lines = [f"Name: {p['name']}", f"Version: {p['version']}", f"Release: {p['release']}",
             f"Summary: {p['name']} (test package, minimal payload)", "License: Apache-2.0",
             f"BuildArch: {p['arch']}", "AutoReqProv: no"]
    if p["epoch"]:
        lines.append(f"Epoch: {p['epoch']}")
    for key in ("requires", "conflicts", "obsoletes", "provides"):
        lines += [f"{key.capitalize()}: {v}" for v in p[key]]
    lines += ["", "%description", f"Test package of the EL package scenario: {p['name']} with its real",
              "name, version and dependencies, and a minimal payload.", "", "%install"]
    files = []
    for path, (kind, _content, _vars) in sorted(p["files"].items()):
        lines.append(f"install -D -m {'0755' if kind == 'script' else '0644'} "
                     f"%{{_sourcedir}}/{p['name']}{path.replace('/', '__')} %{{buildroot}}{path}")
        files.append(f"%config(noreplace) {path}" if kind == "config" else path)
    lines += ["", "%files", *files, ""]
    return "\n".join(lines)


def evr(p):
    return (f"{p['epoch']}:" if p["epoch"] else "") + f"{p['version']}-{p['release']}"


def build(outdir: pathlib.Path):
    work = pathlib.Path(tempfile.mkdtemp(prefix="tfs-el-rpm."))
    gnupg = work / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    uid = "tfserving-ansible EL test repository <el-test@localhost>"
    subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", uid, "rsa2048", "sign", "never"], env=env, check=True)
    pub = subprocess.run(["gpg", "--armor", "--export", uid], env=env, check=True, capture_output=True).stdout
    plugin = pathlib.Path("/usr/lib/python3/dist-packages/dnf-plugins/versionlock.py").read_text()
    if outdir.exists():
        shutil.rmtree(outdir)
    for rel, packages in REPOS.items():
        repo = outdir / rel
        repo.mkdir(parents=True)
        for p in packages:
            top = work / "rpmbuild" / rel.replace("/", "_") / f"{p['name']}-{evr(p).replace(':', '_')}"
            src = top / "SOURCES"
            src.mkdir(parents=True)
            for path, (kind, content, extra) in p["files"].items():
                if kind == "copy":
                    text = plugin
                elif kind in ("config", "file"):
                    text = content
                else:
                    text = content.format(name=p["name"], evr=evr(p), **extra)
                (src / f"{p['name']}{path.replace('/', '__')}").write_text(text)
            spec = top / f"{p['name']}.spec"
            spec.write_text(spec_text(p))
            subprocess.run(["rpmbuild", "--quiet", "-bb", "--define", f"_topdir {top}",
                            "--define", "_build_id_links none", str(spec)],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            for rpm in (top / "RPMS").rglob("*.rpm"):
                shutil.copy(rpm, repo / rpm.name)
        rpms = sorted(str(r) for r in repo.glob("*.rpm"))
        sign = ["rpmsign", "--addsign", "--define", f"_gpg_name {uid}", "--define", f"_gpg_path {gnupg}",
                "--define", f"__gpg {shutil.which('gpg')}"]
        subprocess.run([*sign, *rpms], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True)
        repomd = repo / "repodata" / "repomd.xml"
        subprocess.run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "--local-user", uid,
                        "-o", f"{repomd}.asc", str(repomd)], check=True, env=env)
    for rel in KEY_PATHS:
        (outdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (outdir / rel).write_bytes(pub)
    shutil.rmtree(work)


def inputs_hash():
    return hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()[:16]


def main():
    outdir = pathlib.Path(sys.argv[1]).resolve()
    stamp = outdir / ".inputs"
    if stamp.exists() and stamp.read_text() == inputs_hash():
        print(f"el-repo: {outdir} is up to date")
        return
    build(outdir)
    stamp.write_text(inputs_hash())
    count = sum(len(v) for v in REPOS.values())
    print(f"el-repo: {count} signed packages in {len(REPOS)} repositories under {outdir}")


if __name__ == "__main__":
    main()
