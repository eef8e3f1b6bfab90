"""Where an upstream request goes: an origin (one base URL, its request-line prefix and Host header encoded once)
and, where HTTP_PROXY / HTTPS_PROXY / NO_PROXY say so, the HTTP proxy in front of it.

Decided once per base URL by the upstream client (``proxy.client``), so a request costs the same with or without a
proxy.
"""

import base64
import ipaddress
from urllib.parse import unquote, urlsplit


class Proxy:
    """An HTTP proxy (``http://[user:password@]host[:port]``): where to connect and how to authenticate."""

    __slots__ = ("authorization", "host", "key", "port", "url")

    def __init__(self, url: str) -> None:
        if "://" not in url:
            url = "http://" + url  # HTTP_PROXY=proxy:3128, as curl and requests read it
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            where = parts.netloc.rpartition("@")[2]
            raise ValueError(f"unsupported proxy {parts.scheme}://{where}: only http:// proxies are supported")
        self.host, self.port = parts.hostname, parts.port or 80
        self.url = f"http://{_authority(self.host, self.port)}"  # without credentials: for messages
        self.authorization = b""
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.authorization = b"Basic " + base64.b64encode(secret)
        self.key = (self.host, self.port, self.authorization)


class Origin:
    """Where requests for one base URL go, with the request line prefix and Host header encoded once.

    Through a proxy: an http upstream's requests go to the proxy in absolute form (the prefix carries the
    scheme and authority, the host lines the Proxy-Authorization); an https upstream is reached through a
    CONNECT tunnel (``tunnel``) and its requests look as they would without the proxy.
    """

    __slots__ = (
        "address",
        "authority",
        "host",
        "host_lines",
        "path_prefix",
        "pool_key",
        "port",
        "proxy",
        "tls",
        "tunnel",
    )

    def __init__(self, base_url: str, proxy: Proxy | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.authority = _authority(self.host, self.port)
        self.path_prefix = parts.path.rstrip("/").encode()
        host_header = parts.netloc.rpartition("@")[2].encode()
        self.host_lines = host_header  # the Host header's value, and any header lines every request here carries
        self.proxy, self.tunnel = proxy, proxy is not None and self.tls
        self.address = (self.host, self.port) if proxy is None else (proxy.host, proxy.port)  # where TCP goes
        if proxy is not None and not self.tls:
            self.path_prefix = b"http://" + host_header + self.path_prefix
            if proxy.authorization:
                self.host_lines += b"\r\nproxy-authorization: " + proxy.authorization
        # Base URLs on one server (through one proxy) share its connections.
        self.pool_key = (self.host, self.port, self.tls, proxy.key if proxy else None)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bypasses_proxy(no_proxy: str, host: str, port: int) -> bool:
    """Whether NO_PROXY exempts ``host``: the standard library's rules (``*``; a name covers itself and its
    subdomains, a leading dot or ``*.`` ignored; ``name:port`` only that port) plus IP addresses and CIDR
    networks, as curl and requests read them."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        name, entry_port = entry, ""
        if entry.startswith("["):  # [v6]:port
            name, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        name = name.removeprefix("*").lstrip(".")
        if not name or (entry_port and entry_port != str(port)):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
                continue
            except ValueError:
                pass
        if host == name or host.endswith("." + name):
            return True
    return False
