"""Compiled reverse proxies as references for the gateway benchmark: nginx and HAProxy, where installed.

They show what a compiled proxy costs on this machine (keep-alive to the upstream, no features), beside the
Python floor (bench/python_floor_proxy.py) and the gateway, in the same run. Each runs one worker process or
thread, like the gateway's one-worker row. Neither is needed by the product or installed by ``make install``:
on Debian or Ubuntu ``apt-get install nginx-light haproxy`` adds their rows, and without them the rows are left
out.
"""

import shutil
from pathlib import Path

from llmops_cli.procs import free_port

NGINX = """
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream fake {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""

HAPROXY = """
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend bench
  bind 127.0.0.1:{port}
  default_backend fake
backend fake
  server upstream 127.0.0.1:{upstream_port}
"""


def commands(tmp: Path, upstream_port: int) -> dict[str, tuple[int, list[str]]]:
    """Each installed proxy by name: the port it will listen on and its command line (configuration in ``tmp``)."""
    found = {}
    if shutil.which("nginx"):
        port, conf = free_port(), tmp / "nginx.conf"
        conf.write_text(NGINX.format(d=tmp, port=port, upstream_port=upstream_port))
        # -e: nginx opens its default error log before reading the configuration; keep it in tmp.
        found["nginx"] = (port, ["nginx", "-c", str(conf), "-e", str(tmp / "nginx-error.log")])
    if shutil.which("haproxy"):
        port, conf = free_port(), tmp / "haproxy.cfg"
        conf.write_text(HAPROXY.format(port=port, upstream_port=upstream_port))
        found["haproxy"] = (port, ["haproxy", "-f", str(conf)])
    return found
