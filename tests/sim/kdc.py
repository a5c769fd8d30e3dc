"""A throwaway MIT Kerberos realm on loopback for tests: database, KDC process, keytab, ccache.

Everything lives in one directory the caller owns (a pytest ``tmp_path``): the database and
its stash, ``kdc.conf``, a private ``krb5.conf``, the service keytab, the ticket cache, the
replay cache and the logs. ``/etc`` is never read for the realm nor written: the programs and
libraries find the files through ``KRB5_CONFIG``, ``KRB5_KDC_PROFILE``, ``KRB5CCNAME``,
``KRB5_KTNAME`` and ``KRB5RCACHEDIR``, which ``KdcRealm.env`` lists for the caller to set (e.g.
with ``monkeypatch.setenv``) and which every subprocess here gets explicitly.

The KDC listens on 127.0.0.1 only, on one free port for both UDP and TCP; clients are told to
use TCP (``udp_preference_limit = 1``). Secrets (the database master key, the user password)
are random per realm and reach the tools only on stdin, never on a command line or in a log.

    realm = KdcRealm.create(tmp_path, hosts=["ws-krb1"])   # about 0.1 s
    try:
        for name, value in realm.env().items():
            monkeypatch.setenv(name, value)
        realm.kinit()                                          # TGT for realm.user
        ...
    finally:
        realm.stop()
"""

from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")
DEFAULT_REALM = "FLEET.TEST"
DEFAULT_USER = "fleet-ecs-krb"
SERVICES = ("host", "HTTP")
_TOOL_TIMEOUT = 10.0
_START_TIMEOUT = 5.0
_PORT_ATTEMPTS = 20
_START_ATTEMPTS = 3


class KdcError(RuntimeError):
    """The realm could not be created or the KDC did not come up."""


# Every started realm, so that a test run that dies half-way leaves no KDC behind.
_running: weakref.WeakSet[KdcRealm] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for realm in list(_running):
        realm.stop()


def _die_with_parent() -> None:
    """In the KDC child: get SIGTERM when the test process dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def missing_tools() -> list[str]:
    """The MIT Kerberos programs this helper needs that are not installed."""
    return [tool for tool in TOOLS if _which(tool) is None]


def _which(tool: str) -> str | None:
    # krb5kdc, kdb5_util and kadmin.local live in sbin, which a non-root PATH may lack.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(tool, path=path)


def free_port() -> int:
    """A loopback port that is free for TCP and for UDP at the moment of asking."""
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise KdcError("no loopback port free for both TCP and UDP")


@dataclass(eq=False)  # compared and hashed by identity: kept in a WeakSet
class KdcRealm:
    """A realm, its KDC process and its files under ``root``."""

    root: Path
    realm: str = DEFAULT_REALM
    user: str = DEFAULT_USER  # the user principal's name, without the realm
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    hosts: list[str] = field(default_factory=list)
    _process: subprocess.Popen | None = field(default=None, repr=False)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path,
        hosts: Iterable[str] = (),
        realm: str = DEFAULT_REALM,
        user: str = DEFAULT_USER,
    ) -> KdcRealm:
        """Create the database, the user and ``hosts``' service principals; start the KDC."""
        missing = missing_tools()
        if missing:
            raise KdcError(f"MIT Kerberos tools missing: {', '.join(missing)}")
        self = cls(root=Path(root), realm=realm, user=user)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._write_configs()
        master = secrets.token_urlsafe(18)
        self._run(["kdb5_util", "create", "-s", "-W", "-r", realm], stdin=f"{master}\n{master}\n")
        self._kadmin(f"addprinc +requires_preauth {self.principal}",
                     stdin=f"{self.password}\n{self.password}\n")
        self.add_hosts(hosts)
        self.start()
        return self

    @property
    def principal(self) -> str:
        return f"{self.user}@{self.realm}"

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.root / "kdc.conf"

    @property
    def keytab(self) -> Path:
        """Service keys of every host added, as ``ktadd`` exported them."""
        return self.root / "service.keytab"

    @property
    def ccache(self) -> Path:
        return self.root / "ccache"

    def env(self) -> dict[str, str]:
        """The environment variables that point Kerberos programs and libraries here."""
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5CCNAME": f"FILE:{self.ccache}",
            "KRB5_KTNAME": f"FILE:{self.keytab}",
            "KRB5RCACHEDIR": str(self.root),  # the acceptor's replay cache, not /var/tmp
        }

    def _write_configs(self) -> None:
        root, realm, port = self.root, self.realm, self.port
        listen = f"127.0.0.1:{port}"
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f"    kdc_listen = {listen}\n"
            f"    kdc_tcp_listen = {listen}\n"
            "[realms]\n"
            f"    {realm} = {{\n"
            f"        database_name = {root}/principal\n"
            f"        key_stash_file = {root}/stash\n"
            f"        acl_file = {root}/kadm5.acl\n"
            f"        kdc_listen = {listen}\n"
            f"        kdc_tcp_listen = {listen}\n"
            "        max_life = 1h\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{root}/kdc.log\n"
            f"    admin_server = FILE:{root}/kadmin.log\n"
            f"    default = FILE:{root}/krb5lib.log\n",
            encoding="ascii",
        )
        # No DNS anywhere: host names are taken as given (qualify_shortname = "" stops MIT
        # from appending the resolver's search domain to short names like "ws-krb1").
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {realm}\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            '    qualify_shortname = ""\n'
            "    udp_preference_limit = 1\n"
            f"    default_ccache_name = FILE:{self.ccache}\n"
            f"    default_keytab_name = FILE:{self.keytab}\n"
            "[realms]\n"
            f"    {realm} = {{\n"
            f"        kdc = {listen}\n"
            "    }\n",
            encoding="ascii",
        )

    # -- principals ----------------------------------------------------------------------

    def add_hosts(self, names: Iterable[str]) -> None:
        """Register ``host/<name>`` and ``HTTP/<name>`` and export their keys to ``keytab``."""
        names = [n for n in names if n not in self.hosts]
        if not names:
            return
        spns = [f"{service}/{name}" for name in names for service in SERVICES]
        script = [f"addprinc -randkey {spn}" for spn in spns]
        script.append(f"ktadd -k {self.keytab} {' '.join(spns)}")
        self._kadmin_script(script)
        self.hosts.extend(names)

    def add_user(self, name: str, password: str) -> None:
        """Another user principal (``name`` without realm), preauthentication required."""
        self._kadmin(f"addprinc +requires_preauth {name}@{self.realm}",
                     stdin=f"{password}\n{password}\n")

    def _kadmin(self, query: str, stdin: str = "") -> None:
        self._run(["kadmin.local", "-r", self.realm, "-q", query], stdin=stdin)

    def _kadmin_script(self, commands: list[str]) -> None:
        self._run(["kadmin.local", "-r", self.realm], stdin="\n".join(commands + ["quit", ""]))

    # -- tickets -------------------------------------------------------------------------

    def kinit(self, principal: str | None = None, password: str | None = None
              ) -> subprocess.CompletedProcess:
        """Run ``kinit`` into ``ccache`` with the password on stdin; the result is returned,
        not checked (``returncode`` and ``stderr`` tell why a refused kinit failed)."""
        principal = principal or self.principal
        password = self.password if password is None else password
        return subprocess.run(
            [_which("kinit") or "kinit", principal], input=password + "\n", env=self._env(),
            capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False,
        )

    def kdestroy(self) -> None:
        self.ccache.unlink(missing_ok=True)

    # -- the KDC process -----------------------------------------------------------------

    def start(self) -> None:
        """Start ``krb5kdc`` in the foreground of a child process; wait until TCP answers."""
        if self._process is not None:
            return
        for attempt in range(_START_ATTEMPTS):
            if attempt:  # the port was taken between probing and binding: take another
                self.port = free_port()
                self._write_configs()
            log = open(self.root / "krb5kdc.out", "ab")
            try:
                self._process = subprocess.Popen(
                    [_which("krb5kdc") or "krb5kdc", "-n", "-r", self.realm],
                    env=self._env(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
                _running.add(self)
            finally:
                log.close()
            if self._wait_ready():
                return
            self.stop()
        raise KdcError(f"krb5kdc did not start; see {self.root}/kdc.log")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        """Stop the KDC (the files stay for the caller's temp dir to remove)."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> KdcRealm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.env()}

    def _run(self, argv: list[str], stdin: str = "") -> None:
        argv = [_which(argv[0]) or argv[0], *argv[1:]]
        result = subprocess.run(argv, input=stdin, env=self._env(), capture_output=True,
                                text=True, timeout=_TOOL_TIMEOUT, check=False)
        # kadmin.local reports a failed query on stderr but still exits 0.
        if result.returncode != 0 or " while " in result.stderr:
            raise KdcError(f"{Path(argv[0]).name} failed "
                           f"({result.returncode}): {result.stderr.strip()}")
