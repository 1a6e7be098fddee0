"""RabbitMQ nodes of the tests' own, on loopback: the three-node cluster,
the single node the alarm tests raise resource alarms on.

They run beside the machine's broker and never touch it: the nodes have
their own names (``gp<label><pid>n<i>@localhost``), AMQP and distribution
ports, configuration, plugin list, pid files, data and log directories,
all under one temporary directory (``greenpools-rabbit-<label>-*``).
Every ``rabbitmqctl`` call names one of our nodes with ``-n``, and a node
is only ever killed by the pid that node wrote into its own pid file,
after checking that the process's environment points at our data
directory.

The nodes run as the ``rabbitmq`` user when the tests run as root (the
machine's Erlang cookie in ``/var/lib/rabbitmq`` is then shared with the
command-line tools); otherwise as the current user with its own cookie.

A test process gets a set of nodes with :func:`session_nodes`, booted on
first use.  ``tests/runner.py`` shares each set between its backend
processes: it names a directory in ``GREENPOOLS_TEST_NODES_SHARED``; the
first session that needs a set boots it and records it there, later ones
reuse it, and the runner stops them all at the end (:func:`stop_recorded`).
Sessions running side by side take turns (:meth:`RabbitCluster.turn`): a
scenario stops nodes, or raises alarms, under the feet of any other.

Nodes never outlive the run that made them: each set's directory records
its owner (the runner, or the pytest session that booted it), which stops
it on any exit it can see, SIGTERM and SIGHUP included (``tests/
termination.py``); and whoever starts nodes first stops the sets of owners
that died without doing so (:func:`stop_abandoned`).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

#: Where the Debian/Ubuntu package keeps the real scripts (``/usr/sbin``
#: holds wrappers that ``su`` and redirect output).
RABBITMQ_BIN = os.environ.get("GREENPOOLS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin")
#: The runner's directory of shared node sets (one state file per label).
SHARED_ENV = "GREENPOOLS_TEST_NODES_SHARED"
#: In the temporary directory, every node set's directory starts so, and every runner's.
BASE_PREFIX = "greenpools-rabbit-"
SHARED_PREFIX = "greenpools-runner-nodes-"
#: In each set's directory: its nodes and owner (what :func:`stop_abandoned` reads).
STATE_FILE = "nodes.json"
#: In a runner's directory: the runner, owner of the sets its passes boot.
OWNER_FILE = "owner.json"
NODE_PREFIX = "gp"  # every node name of ours starts so; the machine's is rabbit@...
HOST = "localhost"
#: Ports the CLI tools' own distribution uses, and the well-known ones.
_RESERVED_PORTS = {*range(35672, 35683), 4369, 5672, 5671, 25672, 15672}
BOOT_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

#: Small configuration: our port on loopback only, quiet file logs.
_CONFIG = """\
listeners.tcp.default = 127.0.0.1:{port}
log.file.level = warning
log.console = false
"""


class ClusterError(RuntimeError):
    """The test cluster could not be started, stopped or queried."""


def missing_reason() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    server = os.path.join(RABBITMQ_BIN, "rabbitmq-server")
    if not os.access(server, os.X_OK):
        return f"rabbitmq-server is not installed ({server} not found)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("rabbitmq")
        except KeyError:
            return "running as root but there is no 'rabbitmq' user to run the nodes as"
    return None


def _free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED_PORTS and port + 20000 not in _RESERVED_PORTS:
            return port


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` from the state on (none if the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _state(pid: int) -> str:
    fields = _stat(pid)
    return fields[0] if fields else "X"


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None if it is
    gone or a zombie: with the pid, it names one process even after pid reuse."""
    fields = _stat(pid)
    return int(fields[19]) if fields and fields[0] not in ("Z", "X") else None


@dataclass(frozen=True)
class ProcessIdentity:
    """One process, told apart from a later one that reuses its pid (a node
    set's owner: while it lives, the set is in use)."""

    pid: int
    started: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid, _start_ticks(pid))

    def alive(self) -> bool:
        return self.started is not None and _start_ticks(self.pid) == self.started


@dataclass
class Node:
    """One node of the test cluster."""

    name: str
    port: int
    dist_port: int
    directory: str

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def pid_file(self) -> str:
        return os.path.join(self.directory, "node.pid")

    @property
    def mnesia_base(self) -> str:
        return os.path.join(self.directory, "mnesia")

    def __post_init__(self) -> None:
        if not self.name.startswith(NODE_PREFIX) or self.port in _RESERVED_PORTS:
            raise ClusterError(f"node {self.name} on port {self.port} is not one of ours")

    def __str__(self) -> str:
        return self.name


class RabbitCluster:
    """Start, break, mend and stop a set of our own RabbitMQ nodes (a cluster
    when there are several)."""

    def __init__(self, base: str, nodes: list[Node], owner: ProcessIdentity | None = None) -> None:
        self.base = base
        self.nodes = nodes
        self.owner = owner
        #: The runner's state file when its passes share this set, else None.
        self.shared_state: str | None = None
        self._servers: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped = False

    # -- making ----------------------------------------------------------

    @classmethod
    def create(cls, size: int = 3, label: str = "cluster",
               owner: ProcessIdentity | None = None) -> RabbitCluster:
        """Pick names, ports and directories, and record them with the owner
        (this process unless given) in the set's directory; nothing runs yet."""
        if not label.isalnum():
            raise ValueError(f"label must be letters and digits, got {label!r}")
        base = tempfile.mkdtemp(prefix=f"{BASE_PREFIX}{label}-")
        os.chmod(base, 0o755)  # the rabbitmq user must reach its directories
        tag = f"{NODE_PREFIX}{label}{os.getpid()}"
        nodes = []
        taken: set[int] = set()
        for i in range(1, size + 1):
            ports: list[int] = []
            while len(ports) < 2:
                port = _free_port()
                if port not in taken:
                    taken.add(port)
                    ports.append(port)
            nodes.append(Node(f"{tag}n{i}@{HOST}", ports[0], ports[1],
                              os.path.join(base, f"n{i}")))
        made = cls(base, nodes, owner or ProcessIdentity.of(os.getpid()))
        made.save(os.path.join(base, STATE_FILE))
        return made

    @classmethod
    def from_state(cls, path: str) -> RabbitCluster:
        with open(path) as fh:
            state = json.load(fh)
        owner = state.get("owner")
        return cls(state["base"], [Node(**node) for node in state["nodes"]],
                   ProcessIdentity(**owner) if owner else None)

    def save(self, path: str) -> None:
        state = {"base": self.base, "nodes": [vars(node) for node in self.nodes],
                 "owner": vars(self.owner) if self.owner else None}
        with open(path + ".tmp", "w") as fh:
            json.dump(state, fh)
        os.replace(path + ".tmp", path)

    @property
    def url(self) -> str:
        """All nodes as one kombu URL with alternates."""
        return ";".join(node.url for node in self.nodes)

    def turn(self) -> contextlib.AbstractContextManager[None]:
        """Hold the set alone while in the block, if the runner's passes share it."""
        return turn(self.shared_state) if self.shared_state else contextlib.nullcontext()

    def node(self, name_or_port: str | int) -> Node:
        for node in self.nodes:
            if name_or_port in (node.name, node.port):
                return node
        raise KeyError(f"no node {name_or_port!r} in the test cluster")

    # -- running ---------------------------------------------------------

    def start(self) -> None:
        """Boot every node (in parallel), then join the others to the first."""
        for node in self.nodes:
            self._prepare(node)
            self._spawn(node)
        for node in self.nodes:
            self.wait_booted(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        running = self.running_nodes()
        if sorted(running) != sorted(n.name for n in self.nodes):
            raise ClusterError(f"cluster did not form: running nodes {running}")

    def _prepare(self, node: Node) -> None:
        os.makedirs(node.mnesia_base, exist_ok=True)
        os.makedirs(os.path.join(node.directory, "log"), exist_ok=True)
        with open(os.path.join(node.directory, "rabbitmq.conf"), "w") as fh:
            fh.write(_CONFIG.format(port=node.port))
        with open(os.path.join(node.directory, "enabled_plugins"), "w") as fh:
            fh.write("[].\n")
        # An empty env file instead of /etc/rabbitmq/rabbitmq-env.conf,
        # which names the machine's own node.
        open(os.path.join(node.directory, "rabbitmq-env.conf"), "w").close()
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("rabbitmq")
            for root, dirs, files in os.walk(node.directory):
                for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.chown(name, user.pw_uid, user.pw_gid)

    def _env(self, node: Node | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("RABBITMQ_", "ERL_"))}
        if os.geteuid() == 0:
            import pwd

            env["HOME"] = pwd.getpwnam("rabbitmq").pw_dir  # its Erlang cookie
        if node is not None:
            d = node.directory
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_MNESIA_BASE": node.mnesia_base,
                "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
                "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
                "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),
                "RABBITMQ_PID_FILE": node.pid_file,
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                    "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_CRASH_DUMP": os.path.join(d, "erl_crash.dump"),
            })
        return env

    def _user(self) -> str | None:
        return "rabbitmq" if os.geteuid() == 0 else None

    def _spawn(self, node: Node) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(node.pid_file)  # a stale one would look booted
        with open(os.path.join(node.directory, "console.log"), "ab") as out:
            # Niced: a booting node takes every core for seconds, and the
            # shared broker (and the other backend's pass, run alongside)
            # must keep answering within the tests' sub-second timeouts.
            self._servers[node.name] = subprocess.Popen(
                ["nice", "-n", "10", os.path.join(RABBITMQ_BIN, "rabbitmq-server")],
                env=self._env(node), cwd=node.directory, user=self._user(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the tests is not the node's
            )

    def wait_booted(self, node: Node, timeout: float = BOOT_TIMEOUT) -> None:
        """Return once ``node`` runs RabbitMQ (it has rejoined the cluster by then)."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(node.pid_file):
            server = self._servers.get(node.name)
            if server is not None and server.poll() is not None:
                raise ClusterError(f"node {node} exited while booting: {self._tail(node)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node} wrote no pid file in {timeout}s")
            time.sleep(0.1)
        left = max(1, int(deadline - time.monotonic()))
        self.ctl(node, "wait", node.pid_file, "--timeout", str(left), timeout=left + 15)

    def _tail(self, node: Node) -> str:
        try:
            with open(os.path.join(node.directory, "console.log"), "rb") as fh:
                return fh.read()[-2000:].decode(errors="replace")
        except OSError:
            return "(no console log)"

    def ctl(self, node: Node, *args: str, tool: str = "rabbitmqctl",
            timeout: float = 60.0, check: bool = True) -> str:
        """Run a RabbitMQ CLI tool against ``node`` (always with ``-n``)."""
        try:
            done = subprocess.run(
                [os.path.join(RABBITMQ_BIN, tool), "-n", node.name, *args],
                env=self._env(), user=self._user(), stdin=subprocess.DEVNULL,
                capture_output=True, timeout=timeout, cwd=self.base,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{tool} -n {node} {' '.join(args)}: no answer in "
                               f"{timeout}s") from exc
        if check and done.returncode != 0:
            raise ClusterError(
                f"{tool} -n {node} {' '.join(args)} exited {done.returncode}: "
                f"{(done.stdout + done.stderr).decode(errors='replace')[-1500:]}"
            )
        return done.stdout.decode(errors="replace")

    def vm_pid(self, node: Node) -> int:
        """The Erlang VM's pid, as ``node`` reported it, checked to be ours."""
        with open(node.pid_file) as fh:
            pid = int(fh.read().strip())
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError as exc:
            raise ProcessLookupError(f"node {node}'s VM (pid {pid}) is not running") from exc
        if f"RABBITMQ_MNESIA_BASE={node.mnesia_base}".encode() not in environ:
            raise ClusterError(f"pid {pid} from {node.pid_file} is not our node's VM")
        return pid

    def kill(self, node: Node) -> None:
        """``kill -9`` the node's Erlang VM and wait until it is gone."""
        pid = self.vm_pid(node)
        os.kill(pid, signal.SIGKILL)
        self._await_exit(node, pid)

    def _await_exit(self, node: Node, pid: int, timeout: float = STOP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node}'s VM (pid {pid}) still runs after {timeout}s")
            time.sleep(0.05)
        server = self._servers.pop(node.name, None)
        if server is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=max(0.1, deadline - time.monotonic()))

    def stop_node(self, node: Node) -> None:
        """Stop ``node`` gracefully (its clients are told), killing it if it will not."""
        try:
            pid = self.vm_pid(node)
        except (OSError, ProcessLookupError):
            return
        try:
            self.ctl(node, "stop", timeout=STOP_TIMEOUT)
            self._await_exit(node, pid)
        except ClusterError:
            with contextlib.suppress(OSError, ClusterError):
                if self.vm_pid(node) == pid:
                    os.kill(pid, signal.SIGKILL)
                    self._await_exit(node, pid)

    def restart(self, node: Node) -> None:
        """Start a stopped or killed node again and wait until it runs."""
        self._spawn(node)
        self.wait_booted(node)

    def stop(self) -> None:
        """Stop every node and delete every file of the cluster (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for node in self.nodes:
            with contextlib.suppress(OSError, ClusterError):
                pid = self.vm_pid(node)
                os.kill(pid, signal.SIGKILL)  # its data is deleted anyway
                self._await_exit(node, pid)
        for server in self._servers.values():  # scripts whose VM never started
            with contextlib.suppress(OSError):
                os.killpg(server.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=5)
        self._servers.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- looking ---------------------------------------------------------

    def running_nodes(self, via: Node | None = None) -> list[str]:
        """Names of the cluster's running nodes, as a running node sees them."""
        for node in [via] if via else self.nodes:
            try:
                out = self.ctl(node, "eval", "rabbit_nodes:all_running().", timeout=30)
            except ClusterError:
                continue
            return [name.strip(" '\n") for name in out.strip().strip("[]").split(",")
                    if name.strip()]
        return []

    def connections_per_node(self) -> dict[str, int]:
        """How many client connections each node holds, as the broker lists them."""
        for node in self.nodes:
            try:
                # The server-side port tells the node (there is no node column).
                out = self.ctl(node, "list_connections", "--no-table-headers", "--quiet",
                               "port", timeout=30)
            except ClusterError:
                continue
            counts = {n.name: 0 for n in self.nodes}
            for port in out.split():
                name = self.node(int(port)).name
                counts[name] += 1
            return counts
        raise ClusterError("no node of the cluster answers list_connections")

    def await_quorum_plus_one(self, node: Node, timeout: float = 60.0) -> None:
        """Wait until stopping ``node`` would leave every quorum queue a majority."""
        self.ctl(node, "await_online_quorum_plus_one", "-t", str(int(timeout)),
                 tool="rabbitmq-upgrade", timeout=timeout + 15)


#: This process's node sets, by label (see :func:`session_nodes`).
_session: dict[str, RabbitCluster] = {}


def session_nodes(label: str, size: int) -> RabbitCluster:
    """The running node set ``label`` of this test process, booted on first use.

    Under ``tests/runner.py`` the runner's passes share it: the first to
    ask boots it, the others wait for that (:func:`turn`) and reuse it, and
    the runner stops it.  Otherwise it is this process's own, stopped at
    its exit.  Either way, sets left by dead owners are stopped first.
    """
    made = _session.get(label)
    if made is not None:
        return made
    shared = os.environ.get(SHARED_ENV)
    if shared:
        state = os.path.join(shared, f"{label}.json")
        with turn(state):  # the runner's other processes wait while it boots
            if os.path.exists(state):
                made = RabbitCluster.from_state(state)
            else:
                stop_abandoned()
                made = RabbitCluster.create(size, label, _read_owner(shared))
                made.save(state)  # first, so that the runner stops it whatever happens
                _boot(made)
        made.shared_state = state
    else:
        stop_abandoned()
        made = RabbitCluster.create(size, label)
        atexit.register(made.stop)
        _boot(made)
    _session[label] = made
    return made


def share_nodes() -> str:
    """Make the directory through which this process's children (the runner's
    passes) share the node sets they boot, owned by this process, and name it
    in the environment they inherit; return it (see :func:`stop_recorded`)."""
    shared = tempfile.mkdtemp(prefix=SHARED_PREFIX)
    with open(os.path.join(shared, OWNER_FILE), "w") as fh:
        json.dump(vars(ProcessIdentity.of(os.getpid())), fh)
    os.environ[SHARED_ENV] = shared
    return shared


def _read_owner(shared: str) -> ProcessIdentity:
    with open(os.path.join(shared, OWNER_FILE)) as fh:
        return ProcessIdentity(**json.load(fh))


def _boot(made: RabbitCluster) -> None:
    started = time.monotonic()
    try:
        made.start()
    except BaseException:  # a half-started set is no use to anyone
        made.stop()
        raise
    print(f"RabbitMQ nodes {', '.join(map(str, made.nodes))} booted in "
          f"{time.monotonic() - started:.1f}s")


def stop_abandoned(temp_dir: str | None = None) -> list[str]:
    """Stop the node sets whose owner has exited (a killed run's), and delete
    their directories; return those directories.

    Sets with a living owner, or with no owner recorded (one being made, or
    made by older code), are left alone.  The directories of dead runners
    go too.
    """
    temp_dir = temp_dir or tempfile.gettempdir()
    stopped = []
    for base in sorted(glob.glob(os.path.join(temp_dir, BASE_PREFIX + "*"))):
        try:
            found = RabbitCluster.from_state(os.path.join(base, STATE_FILE))
        except (OSError, ValueError, KeyError, TypeError, ClusterError):
            continue
        if found.base != base or found.owner is None or found.owner.alive():
            continue
        found.stop()
        stopped.append(base)
    for shared in glob.glob(os.path.join(temp_dir, SHARED_PREFIX + "*")):
        try:
            runner = _read_owner(shared)
        except (OSError, ValueError, TypeError):
            continue
        if not runner.alive():
            stop_recorded(shared)
    return stopped


@contextlib.contextmanager
def turn(state_path: str) -> Iterator[None]:
    """Hold the shared cluster alone: blocks while another process holds it."""
    import fcntl

    with open(state_path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def stop_recorded(shared: str) -> None:
    """Stop every node set recorded in the runner's directory ``shared``, and
    delete the directory."""
    try:
        for state in glob.glob(os.path.join(shared, "*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, ClusterError):
                RabbitCluster.from_state(state).stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
