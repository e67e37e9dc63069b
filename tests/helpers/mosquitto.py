"""A real MQTT broker for tests: Debian's mosquitto on a free loopback port, plain or mutual TLS.

mosquitto started as root drops to the `mosquitto` user, so its config, certificates and log
live in a world-readable folder of their own (pytest's tmp_path is private to root).
Certificates come from a throw-away CA made here with the `cryptography` package.

Fixtures (imported by tests/conftest.py): ``mosquitto_broker`` (plain TCP) and
``mosquitto_tls_broker`` (mTLS: the client must present a certificate signed by the test CA).
``MqttCollector`` subscribes with awscrt's MQTT 5 client and keeps every message it gets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_test_pki(folder: Path, client_cn: str = "edgekit-test-client") -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=2)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("edgekit test CA"))
        .issuer_name(name("edgekit test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage, sans: list[x509.GeneralName] | None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = leaf(client_cn, ExtendedKeyUsageOID.CLIENT_AUTH, None)
    files = TlsFiles(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    files.client_cert.write_bytes(client_cert.public_bytes(pem))
    write_key(server_key, files.server_key)
    write_key(client_key, files.client_key)
    for path in folder.iterdir():
        path.chmod(0o644)  # the broker runs as `mosquitto` and must read them
    return files


@dataclass
class Broker:
    """One mosquitto process; ``stop()``/``start()`` restart it on the same port (outage tests)."""

    folder: Path
    port: int
    tls: TlsFiles | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.folder / "mosquitto.conf"

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # sessions and queued QoS 1 messages survive stop()/start(), so a collector with a
            # persistent session misses nothing published while it was reconnecting
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            "autosave_interval 0",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_inflight_messages 100",
            "max_queued_messages 10000",
        ]
        if self.tls:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        data.chmod(0o777)  # written by the mosquitto user
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config_path.chmod(0o644)
        log = self.folder / "mosquitto.log"
        log.touch()
        log.chmod(0o666)

    def start(self, timeout: float = 10.0) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed: run scripts/setup.sh")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}: {err}{self.log()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"mosquitto did not listen on {self.port} within {timeout}s: {self.log()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_broker(tls: bool = False) -> Iterator[Broker]:
    folder = Path(tempfile.mkdtemp(prefix="edgekit-mosquitto-"))
    folder.chmod(0o755)
    try:
        broker = Broker(folder, free_port(), make_test_pki(folder) if tls else None)
        broker.write_config()
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _require_mosquitto() -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def mosquitto_broker() -> Iterator[Broker]:
    """A fresh plain-TCP mosquitto on 127.0.0.1:<free port>, anonymous access."""
    _require_mosquitto()
    with running_broker() as broker:
        yield broker


@pytest.fixture
def mosquitto_tls_broker() -> Iterator[Broker]:
    """A fresh mosquitto that requires mutual TLS with the test CA (``broker.tls`` has the files)."""
    _require_mosquitto()
    with running_broker(tls=True) as broker:
        yield broker


@dataclass
class Message:
    topic: str
    payload: bytes
    received_at: float


class MqttCollector:
    """Subscribe with awscrt's MQTT 5 client and keep every message (for assertions)."""

    def __init__(self, broker: Broker, topic_filter: str, client_id: str = "edgekit-collector"):
        """A fixed client id and a clean session: after a broker restart it reconnects and
        subscribes again (``wait_subscribed`` says when); what was published before that is
        not queued for it."""
        from awscrt import io, mqtt5

        self.messages: list[Message] = []
        self._lock = threading.Condition()
        self._connected = threading.Event()
        self.subscriptions = 0  # SUBACKs received, one per connection
        tls_ctx = None
        if broker.tls:
            opts = io.TlsContextOptions.create_client_with_mtls_from_path(
                str(broker.tls.client_cert), str(broker.tls.client_key)
            )
            opts.override_default_trust_store_from_path(None, str(broker.tls.ca))
            tls_ctx = io.ClientTlsContext(opts)
        self._filter = topic_filter
        self.client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=broker.host,
                port=broker.port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=client_id, keep_alive_interval_sec=30
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                min_reconnect_delay_ms=100,
                max_reconnect_delay_ms=500,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connect,
                on_lifecycle_event_disconnection_fn=lambda _d: self._connected.clear(),
            )
        )

    def _on_connect(self, _data) -> None:
        from awscrt import mqtt5

        # Subscribe on every connection too (harmless when the session already has it).
        self.client.subscribe(
            mqtt5.SubscribePacket([mqtt5.Subscription(self._filter, mqtt5.QoS.AT_LEAST_ONCE)])
        ).add_done_callback(self._on_subscribed)

    def _on_subscribed(self, _future) -> None:
        with self._lock:
            self.subscriptions += 1
            self._lock.notify_all()
        self._connected.set()

    def wait_subscribed(self, count: int, timeout: float) -> bool:
        """Wait until the ``count``-th subscription (one per connection) was acknowledged: after
        a broker restart, ``subscriptions + 1`` is the reconnection. A fixed sleep instead lost
        messages on a loaded machine, where reconnecting can take longer than the sleep."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.subscriptions < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
            return True

    def _on_publish(self, data) -> None:
        packet = data.publish_packet
        with self._lock:
            self.messages.append(Message(packet.topic, bytes(packet.payload), time.time()))
            self._lock.notify_all()

    def start(self, timeout: float = 10.0) -> MqttCollector:
        self.client.start()
        if not self._connected.wait(timeout):
            raise TimeoutError("collector could not connect and subscribe")
        return self

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
            return True

    def stop(self) -> None:
        from awscrt import mqtt5

        self.client.stop(mqtt5.DisconnectPacket())

    def __enter__(self) -> MqttCollector:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
