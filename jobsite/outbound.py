"""Requests that the service makes to addresses its users choose (webhooks), made safely.

A user's URL is hostile: it may name the service's own database, a cloud metadata endpoint or a
host on the private network, directly, through a host name that resolves there, or through a
name that resolves somewhere harmless when checked and somewhere else when connected to (DNS
rebinding). So:

- `check_url` refuses what is wrong with a URL on its face: a scheme other than http(s), no host,
  credentials in it, a literal address that is not public, the service's own host names;
- `resolve` resolves the host and refuses it unless every address it resolves to is public
  (loopback, private, link-local, multicast, reserved and unspecified addresses are not, nor an
  IPv6 form of one: IPv4-mapped, 6to4, NAT64 of a private v4 address);
- `post` resolves at send time, checks, and connects to the very address it checked (the Host
  header and the TLS name stay the URL's host, and the certificate is checked against it),
  follows no redirect, reads at most a little of the answer, and gives up when the whole try
  has taken its time-out, however slowly the receiver drips its answer.

Hosts in JOBSITE_WEBHOOK_ALLOWED_HOSTS skip the address rules (a site's own receivers on its
network; the tests' local receiver). Each refusal is an UnsafeURL naming the rule.

`download` GETs a file the same way, and only from the hosts and ports an operator lists for the
purpose (JOBSITE_OGC_HREF_HOSTS for the OGC API's inputs by reference), into a file, up to a size.
"""

import base64
import http.client
import ipaddress
import logging
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)
MAX_URL = 2000
ANSWER_HEAD = 500


class UnsafeURL(ValueError):
    """A URL the service will not send to; the message names the rule."""


@dataclass(frozen=True)
class Answer:
    status: int
    head: bytes  # the first ANSWER_HEAD bytes of the body
    seconds: float


def new_secret():
    """A signing secret in the Standard Webhooks form: whsec_ and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _allowed(host):
    return host.lower() in {h.lower() for h in settings.WEBHOOK_ALLOWED_HOSTS}


def _is_own(host):
    """Whether `host` is one the service answers to (ALLOWED_HOSTS; ".example.org" covers its
    sub-domains)."""
    host = host.lower()
    for allowed in settings.ALLOWED_HOSTS:
        allowed = allowed.lower().strip("[]").rstrip(".")
        if allowed in ("*", ""):
            continue
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return True
    return False


def _parts(url):
    """(scheme, host as DNS carries it, port, path with query) of an http(s) URL; UnsafeURL for
    what no request goes to: another scheme, no host, credentials, spaces or control characters."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("must be an http or https URL")
    if len(url) > MAX_URL:
        raise UnsafeURL(f"must be at most {MAX_URL} characters long")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("must be an http or https URL")
    host = _dns_name(parts.hostname or "")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("must not hold a user name or password")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def _dns_name(host):
    """The name as DNS and the Host header carry it: IDNA-encoded, lower case, without the final dot
    (which the encoding may make of a full stop of another script)."""
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".") if host.strip(".") else ""
    except UnicodeError:
        raise UnsafeURL(f"has a host name that is not a valid international name ({host})") from None
    if not name:
        raise UnsafeURL("must name a host")
    return name


def check_url(url):
    """The URL's (scheme, host, port, path with query); UnsafeURL if it is refused on its face."""
    scheme, host, port, path = _parts(url)
    if not _allowed(host):
        if _is_own(host):
            raise UnsafeURL(f"must not point to the service itself ({host})")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            _check_address(address, host)
    return scheme, host, port, path


def listed(url, entries):
    """Whether the host and port of `url` are among `entries`: "host" stands for the default port of
    the URL's scheme, "host:port" for that port only. Names compare as DNS carries them."""
    try:
        scheme, host, port, _ = _parts(url)
    except UnsafeURL:
        return False
    for entry in entries:
        try:
            named = urlsplit(f"//{entry.strip()}")
            if _dns_name(named.hostname or "") == host and (named.port or (443 if scheme == "https" else 80)) == port:
                return True
        except (ValueError, UnsafeURL):
            continue
    return False


# Ranges that ipaddress counts as global but that lead to no public host: local-use NAT64, the
# deprecated IPv4-compatible and IPv4-translated forms, and site-local addresses.
NOT_PUBLIC = [ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96", "fec0::/10")]


def _check_address(address, host):
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        _check_address(embedded, host)
    if not address.is_global or address.is_multicast or any(address in network for network in NOT_PUBLIC):
        kind = ("a loopback" if address.is_loopback else "a link-local" if address.is_link_local
                else "a multicast" if address.is_multicast else "a private" if address.is_private
                else "a reserved")
        shown = host if host == str(address) else f"{host}, which resolves to {address}"
        raise UnsafeURL(f"must not point to {kind} address ({shown}); only public addresses are allowed")


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), or None."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(host, port, exempt=True):
    """The address to connect to for `host`: its first address, once every address it resolves to
    has passed the rules (unless `exempt` and the host is in JOBSITE_WEBHOOK_ALLOWED_HOSTS);
    UnsafeURL otherwise."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"has a host that does not resolve ({host}: {exc})") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    if not addresses:
        raise UnsafeURL(f"has a host that does not resolve ({host})")
    if not (exempt and _allowed(host)):
        for address in addresses:
            _check_address(address, host)
    return str(addresses[0])


def check_url_and_host(url):
    """check_url, then the host resolved and checked, as at send time (for a refusal at submit)."""
    scheme, host, port, _ = check_url(url)
    resolve(host, port)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the URL's host name for SNI and the certificate check."""

    def __init__(self, address, port, hostname, timeout):
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self.hostname = hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.hostname)


def _connection(url, timeout, checked=None):
    """(a connection to the checked address of `url`'s host, its Host header, its path); `checked`:
    (scheme, host, port, path, address) checked already."""
    if checked is None:
        scheme, host, port, path = check_url(url)
        address = resolve(host, port)
    else:
        scheme, host, port, path, address = checked
    if scheme == "https":
        connection = _PinnedHTTPSConnection(address, port, host, timeout)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    default_port = 443 if scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host
    return connection, name if port == default_port else f"{name}:{port}", path


def post(url, body, headers, timeout):
    """POST `body` (bytes) to `url` at the address checked just now; an Answer, UnsafeURL for a
    refused URL, or OSError (http.client.HTTPException) for a try that failed: a time-out, a
    refused connection, a bad certificate, an answer that is not HTTP."""
    connection, host_header, path = _connection(url, timeout)
    watchdog = threading.Timer(timeout, _abort, [connection])
    started = time.monotonic()
    watchdog.start()
    try:
        connection.request("POST", path, body=body, headers={**headers, "Host": host_header,
                                                             "Content-Length": str(len(body))})
        response = connection.getresponse()
        head = response.read(ANSWER_HEAD)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() - started >= timeout:
            raise TimeoutError(f"no whole answer within {timeout:g} s") from None
        raise OSError(str(exc) or type(exc).__name__) from None
    finally:
        watchdog.cancel()
        connection.close()
    return Answer(response.status, head, time.monotonic() - started)


class DownloadFailed(OSError):
    """A download that did not bring the whole file; the message says why."""


class DownloadTooLarge(DownloadFailed):
    pass


def _download_address(url):
    """(scheme, host, port, path, address) of a listed URL. A host listed by its address is the
    operator's choice (a data server on the private network); a name must resolve to public
    addresses only, whatever JOBSITE_WEBHOOK_ALLOWED_HOSTS says, since its DNS may not be the
    operator's."""
    scheme, host, port, path = _parts(url)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _is_own(host):
            raise UnsafeURL(f"must not point to the service itself ({host})") from None
        return scheme, host, port, path, resolve(host, port, exempt=False)
    return scheme, host, port, path, host


def download(url, out, *, hosts, timeout, max_bytes):
    """GET `url` into the binary file `out`, following no redirect, if its host and port are listed
    in `hosts` (see `listed`; any other is an UnsafeURL) and a listed name resolves to public
    addresses only; the file's size. DownloadFailed for an answer other than 200, a try that fails or
    outlasts `timeout` in all, or more than `max_bytes` (DownloadTooLarge). Its messages say no
    more of what the host answered than its status."""
    if not listed(url, hosts):
        raise UnsafeURL(f"is not on a host and port this service reads from ({', '.join(hosts) or 'none'})")
    connection, host_header, path = _connection(url, timeout, _download_address(url))
    watchdog = threading.Timer(timeout, _abort, [connection])
    started, size = time.monotonic(), 0
    watchdog.start()
    try:
        connection.request("GET", path, headers={"Host": host_header, "Accept": "*/*", "User-Agent": "jobsite"})
        response = connection.getresponse()
        if response.status != 200:
            raise DownloadFailed(f"the host answered {response.status}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise DownloadTooLarge(f"the file is {declared} bytes; the limit is {max_bytes} bytes")
        while chunk := response.read(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise DownloadTooLarge(f"the file is more than the limit of {max_bytes} bytes")
            out.write(chunk)
    except DownloadFailed:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() - started >= timeout:
            raise DownloadFailed(f"the host did not send the whole file within {round(timeout, 1):g} s") from None
        logger.info("a download from %s failed: %r", urlsplit(url).netloc, exc)
        raise DownloadFailed("the host could not be reached, or did not answer as an HTTP server") from None
    finally:
        watchdog.cancel()
        connection.close()
    return size


def _abort(connection):
    """The try's time is up: shut its socket, so that whatever waits on it returns at once."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
