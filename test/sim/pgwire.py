"""PostgreSQL v3 wire-protocol helpers for the Redshift simulator.

The simulator sits between a libpq client and a PostgreSQL backing server.
This module knows only message framing: reading whole messages from a socket,
building the few messages the simulator synthesises, and decoding the fields
of the ones it inspects.  It has no Redshift knowledge.
"""

import socket
import struct

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class ConnectionClosed(Exception):
    """The peer closed the socket (or it broke) in the middle of a read."""


def recv_exact(sock, n):
    """Read exactly n bytes, raising ConnectionClosed on EOF."""
    chunks = []
    while n > 0:
        try:
            chunk = sock.recv(min(n, 1 << 20))
        except (ConnectionResetError, OSError) as exc:
            raise ConnectionClosed(str(exc))
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_startup(sock):
    """Read an untyped startup-phase packet; returns (code, payload)."""
    (length,) = struct.unpack("!I", recv_exact(sock, 4))
    if length < 8 or length > 10000:
        raise ConnectionClosed("invalid startup packet length")
    body = recv_exact(sock, length - 4)
    (code,) = struct.unpack("!I", body[:4])
    return code, body[4:]


def parse_startup_params(payload):
    """Decode the name/value pairs of a StartupMessage."""
    parts = payload.split(b"\x00")
    params = {}
    for i in range(0, len(parts) - 1, 2):
        if parts[i] == b"":
            break
        params[parts[i].decode()] = parts[i + 1].decode()
    return params


def build_startup(params):
    """Encode a StartupMessage for protocol 3.0."""
    body = struct.pack("!I", PROTOCOL_V3)
    for key, value in params.items():
        body += key.encode() + b"\x00" + value.encode() + b"\x00"
    body += b"\x00"
    return struct.pack("!I", len(body) + 4) + body


class MessageReader:
    """Buffered reader of typed messages from one socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        """Read whatever is available (blocking for at least one byte)."""
        try:
            chunk = self.sock.recv(1 << 18)
        except (ConnectionResetError, OSError) as exc:
            raise ConnectionClosed(str(exc))
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        self.buf += chunk

    def pop_buffered(self):
        """Return the next complete message already buffered, or None."""
        if len(self.buf) < 5:
            return None
        (length,) = struct.unpack_from("!I", self.buf, 1)
        if len(self.buf) < 1 + length:
            return None
        mtype = chr(self.buf[0])
        body = bytes(self.buf[5:1 + length])
        del self.buf[:1 + length]
        return mtype, body

    def read(self):
        """Block until one whole message is available and return it."""
        while True:
            msg = self.pop_buffered()
            if msg is not None:
                return msg
            self.fill()


def message(mtype, body=b""):
    """Frame a typed message."""
    return mtype.encode() + struct.pack("!I", len(body) + 4) + body


def cstr(value):
    return value.encode() + b"\x00"


def error_fields(body):
    """Decode an ErrorResponse/NoticeResponse body into a dict of fields."""
    fields = {}
    for part in body.split(b"\x00"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def build_error(fields, mtype="E"):
    """Encode an ErrorResponse (or NoticeResponse with mtype 'N')."""
    body = b""
    for code, value in fields.items():
        if value is not None:
            body += code.encode() + value.encode() + b"\x00"
    return message(mtype, body + b"\x00")


def error_message(sqlstate, text, detail=None, hint=None, severity="ERROR"):
    return build_error({"S": severity, "V": severity, "C": sqlstate,
                        "M": text, "D": detail, "H": hint})


def notice_message(text, severity="INFO"):
    return build_error({"S": severity, "V": severity, "C": "00000",
                        "M": text}, mtype="N")


def ready_for_query(status):
    return message("Z", status.encode())


def command_complete(tag):
    return message("C", cstr(tag))


def query_message(sql):
    return message("Q", cstr(sql))


def parse_parse(body):
    """Decode a Parse message: (statement name, query, param type oids)."""
    end = body.index(b"\x00")
    name = body[:end].decode()
    qend = body.index(b"\x00", end + 1)
    query = body[end + 1:qend].decode()
    (nparams,) = struct.unpack_from("!H", body, qend + 1)
    oids = list(struct.unpack_from("!%dI" % nparams, body, qend + 3))
    return name, query, oids


def build_parse(name, query, oids):
    body = cstr(name) + cstr(query) + struct.pack("!H", len(oids))
    body += struct.pack("!%dI" % len(oids), *oids)
    return message("P", body)


def parse_row_description(body):
    """Decode a RowDescription into a list of
    (name, type oid, offset of the type oid in body, table oid, attnum)."""
    (count,) = struct.unpack_from("!H", body, 0)
    pos = 2
    cols = []
    for _ in range(count):
        end = body.index(b"\x00", pos)
        name = body[pos:end].decode()
        pos = end + 1
        table_oid, attnum, type_oid, typlen, typmod, fmt = struct.unpack_from(
            "!IhIhih", body, pos)
        cols.append((name, type_oid, pos + 6, table_oid, attnum))
        pos += 18
    return cols


def parse_data_row(body):
    """Decode a DataRow into a list of bytes or None."""
    (count,) = struct.unpack_from("!H", body, 0)
    pos = 2
    values = []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if length < 0:
            values.append(None)
        else:
            values.append(body[pos:pos + length])
            pos += length
    return values


def build_data_row(values):
    body = struct.pack("!H", len(values))
    for value in values:
        if value is None:
            body += struct.pack("!i", -1)
        else:
            body += struct.pack("!i", len(value)) + value
    return message("D", body)


def send_all(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, OSError) as exc:
        raise ConnectionClosed(str(exc))


def connect(host, port, timeout=10):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
