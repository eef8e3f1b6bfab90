"""TLS and HTTP-proxy servers on loopback for tests of the gateway's upstream client: a certificate authority and
server certificates (``cryptography``), a TLS relay in front of a plain upstream, and a small asyncio proxy that
forwards absolute-form requests and tunnels CONNECT, recording what it saw."""

import asyncio
import base64
import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# --- certificates ---


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Authority:
    """A certificate authority in ``folder``: its certificate in ca.pem, server certificates signed on demand."""

    folder: Path
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("test CA"))
            .issuer_name(_name("test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )  # key_cert_sign, crl_sign
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = self.folder / "ca.pem"
        self.ca_path.write_bytes(_pem(self.cert))

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server context with a certificate for ``names`` (IP addresses or DNS names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alt_names = []
        for name in names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt_names.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.folder / f"server-{x509.random_serial_number()}"
        key_path, cert_path = stem.with_suffix(".key"), stem.with_suffix(".pem")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cert_path.write_bytes(_pem(cert))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context


# --- servers ---


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _relay(reader, writer, host: str, port: int) -> None:
    up_reader, up_writer = await asyncio.open_connection(host, port)
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


class TlsRelay:
    """An https upstream: TLS on 127.0.0.1, each connection relayed to the fake upstream."""

    def __init__(self, context: ssl.SSLContext, upstream_port: int) -> None:
        self.context, self.upstream_port = context, upstream_port
        self.connections = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"https://127.0.0.1:{self.port}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        await _relay(reader, writer, "127.0.0.1", self.upstream_port)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[str]]:
    request_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    return request_line, [line for line in lines if line]


def header_value(lines: list[str], name: str) -> str | None:
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class RecordingProxy:
    """An HTTP proxy: absolute-form requests forwarded in origin form, CONNECT tunnelled. ``seen`` holds each
    request line with its headers; with ``credentials`` (user:password), others get 407."""

    def __init__(self, credentials: str | None = None) -> None:
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        self.seen: list[tuple[str, list[str]]] = []
        self.connections = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    def lines(self) -> list[str]:
        return [line for line, _ in self.seen]

    def _refuses(self, headers: list[str], writer: asyncio.StreamWriter) -> bool:
        if self.expected is None or header_value(headers, "proxy-authorization") == self.expected:
            return False
        writer.write(b'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="t"\r\n')
        writer.write(b"content-length: 0\r\nconnection: close\r\n\r\n")
        return True

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            line, headers = await _read_head(reader)
            self.seen.append((line, headers))
            if self._refuses(headers, writer):
                return
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            url = urlsplit(target)
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            answers = asyncio.ensure_future(_pipe(up_reader, writer))
            while True:  # each request of the kept-alive connection, rewritten to origin form
                kept = [h for h in headers if not h.lower().startswith("proxy-authorization")]
                path = urlsplit(line.split(" ")[1])
                up_writer.write(
                    f"{method} {path.path} HTTP/1.1\r\n".encode() + "".join(h + "\r\n" for h in kept).encode()
                )
                up_writer.write(b"\r\n" + await reader.readexactly(int(header_value(headers, "content-length") or 0)))
                line, headers = await _read_head(reader)
                self.seen.append((line, headers))
                if self._refuses(headers, writer):
                    break
            answers.cancel()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
