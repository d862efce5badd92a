#!/usr/bin/python3
"""s3gate: a reverse proxy that checks AWS Signature V4 like real S3 does.

It sits in front of s3rver (which accepts any V4 signature) so that tests of
an S3 client fail when the client signs a request wrongly. Every request is
verified against botocore's signer (the reference implementation), then
re-signed for s3rver's built-in S3RVER/S3RVER account and forwarded. A fault
file can make selected requests fail with S3 5xx errors.

usage: s3gate.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
                 --credentials FILE --region REGION [--fault-file FILE]
"""

import argparse
import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import signal
import sys
import tempfile
import threading
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.credentials import Credentials

import multipart_admin

ALGORITHM = 'AWS4-HMAC-SHA256'
UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
STREAMING_SIGNED_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
HEX_SHA256 = re.compile(r'[0-9a-fA-F]{64}')
SIGV4_TIME_FORMAT = '%Y%m%dT%H%M%SZ'
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

IO_BLOCK = 64 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024
MAX_CHUNK_HEADER = 4096
UPSTREAM_TIMEOUT = 300

# Query parameters of a presigned URL: verified here, never forwarded.
PRESIGN_PARAMS = {
    'x-amz-algorithm', 'x-amz-credential', 'x-amz-date', 'x-amz-expires',
    'x-amz-signedheaders', 'x-amz-signature', 'x-amz-security-token',
}
HOP_BY_HOP_HEADERS = {
    'connection', 'keep-alive', 'proxy-authorization', 'proxy-connection',
    'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect',
}
# Client headers that belong to the client's signature or framing; the gate
# replaces them with its own when it forwards to s3rver.
NOT_FORWARDED_HEADERS = HOP_BY_HOP_HEADERS | {
    'host', 'content-length', 'authorization', 'x-amz-date', 'date',
    'x-amz-security-token', 'x-amz-content-sha256',
    'x-amz-decoded-content-length', 'x-amz-trailer',
}
UPSTREAM_CREDENTIALS = Credentials('S3RVER', 'S3RVER')
UPSTREAM_SIGNING_CONFIG = Config(s3={'payload_signing_enabled': False})

FAULT_ERRORS = {
    503: ('SlowDown', 'Please reduce your request rate.'),
    500: ('InternalError',
          'We encountered an internal error. Please try again.'),
}


class S3Error(Exception):
    """An S3 error response; `close` drops the connection after sending it."""

    def __init__(self, status, code, message, close=False, **details):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        self.details = details


def access_denied(message='Access Denied'):
    """The 403 AccessDenied S3 returns for missing or unusable auth."""
    return S3Error(403, 'AccessDenied', message)


def header_malformed(detail, **details):
    """The 400 for an Authorization header S3 cannot parse."""
    return S3Error(400, 'AuthorizationHeaderMalformed',
                   'The authorization header is malformed; ' + detail,
                   **details)


def query_malformed(detail):
    """The 400 for presigned-URL parameters S3 cannot parse."""
    return S3Error(400, 'AuthorizationQueryParametersError', detail)


def incomplete_body():
    """The 400 for a body that ends early or is framed wrongly."""
    return S3Error(400, 'IncompleteBody',
                   'You did not provide the number of bytes specified by '
                   'the Content-Length HTTP header.', close=True)


def unsupported_auth_mechanism():
    """The 400 S3 sends for Signature Version 2 (header or query)."""
    return S3Error(400, 'InvalidRequest',
                   'The authorization mechanism you have provided is not '
                   'supported. Please use AWS4-HMAC-SHA256.')


def error_document(error, request_id):
    """Renders an S3 error as the XML body S3 sends."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
             f'<Code>{escape(error.code)}</Code>',
             f'<Message>{escape(error.message)}</Message>']
    for name, value in error.details.items():
        parts.append(f'<{name}>{escape(str(value))}</{name}>')
    parts.append(f'<RequestId>{request_id}</RequestId></Error>')
    return ''.join(parts).encode('utf-8')


def redact(text):
    """Removes presigned-URL signatures and tokens from a log line."""
    return re.sub(r'(?i)(X-Amz-(?:Signature|Security-Token|Credential)=)'
                  r'[^&\s]*', r'\1REDACTED', text)


def log(message):
    """Writes one diagnostic line to stderr (never secrets)."""
    sys.stderr.write(f's3gate: {redact(message)}\n')
    sys.stderr.flush()


def parse_sigv4_time(value):
    """Parses an ISO 8601 basic timestamp (20240101T000000Z) or None."""
    try:
        return datetime.datetime.strptime(value, SIGV4_TIME_FORMAT).replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def split_query(raw_query):
    """Splits a raw query string into (raw key, raw value) pairs."""
    pairs = []
    for part in raw_query.split('&'):
        if part:
            key, _, value = part.partition('=')
            pairs.append((key, value))
    return pairs


def load_credentials(path):
    """Reads the credentials file into {access key id: Credentials}."""
    with open(path, encoding='utf-8') as handle:
        entries = json.load(handle)
    keys = {}
    for entry in entries:
        keys[entry['access_key_id']] = Credentials(
            entry['access_key_id'], entry['secret_access_key'],
            entry.get('session_token'))
    return keys


class ExactSignedHeaders:
    """Makes botocore canonicalise exactly the headers the client signed.

    botocore's own headers_to_sign() drops some headers (User-Agent, Expect)
    and adds Host; a verifier must use the client's SignedHeaders list as is.
    The verifying AWSRequest carries only the signed headers.
    """

    def headers_to_sign(self, request):
        return request.headers


class HeaderAuthVerifier(ExactSignedHeaders, S3SigV4Auth):
    """botocore's S3 header signer, used to recompute a client signature."""


class QueryAuthVerifier(ExactSignedHeaders, S3SigV4QueryAuth):
    """botocore's S3 presigned-URL signer, used to recompute a signature."""


class Authorization:
    """The SigV4 parameters a request carries, from header or query."""

    def __init__(self, presigned, credential, signed_headers, signature,
                 amz_date, expires=None, token=None):
        self.presigned = presigned
        parts = credential.split('/')
        if len(parts) != 5:
            raise self.malformed(
                'the Credential is mal-formed; expecting '
                '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
        (self.access_key, self.scope_date, self.region, self.service,
         self.terminal) = parts
        self.signed_headers = signed_headers.split(';')
        self.signature = signature
        self.amz_date = amz_date
        self.expires = expires
        self.token = token

    def malformed(self, detail, **details):
        """The 400 error matching the auth form this request uses."""
        if self.presigned:
            return query_malformed('Error parsing the X-Amz-Credential '
                                   'parameter; ' + detail)
        return header_malformed(detail, **details)

    @classmethod
    def from_header(cls, value, headers):
        """Parses `Authorization: AWS4-HMAC-SHA256 Credential=...`."""
        scheme, _, rest = value.strip().partition(' ')
        if scheme != ALGORITHM:
            raise unsupported_auth_mechanism()
        fields = {}
        for component in rest.split(','):
            name, sep, field = component.strip().partition('=')
            if sep:
                fields[name] = field
        missing = [name for name in ('Credential', 'SignedHeaders',
                                     'Signature') if name not in fields]
        if missing:
            raise header_malformed(f'missing {missing[0]}.')
        amz_date = headers.get('x-amz-date')
        if amz_date is None and headers.get('date'):
            try:
                amz_date = email.utils.parsedate_to_datetime(
                    headers['date']).strftime(SIGV4_TIME_FORMAT)
            except (TypeError, ValueError):
                amz_date = None
        return cls(False, fields['Credential'], fields['SignedHeaders'],
                   fields['Signature'], amz_date,
                   token=headers.get('x-amz-security-token'))

    @classmethod
    def from_query(cls, params):
        """Parses the X-Amz-* parameters of a presigned URL."""
        if params.get('X-Amz-Algorithm') != ALGORITHM:
            raise query_malformed(
                'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
        needed = ('X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date',
                  'X-Amz-SignedHeaders', 'X-Amz-Expires')
        if any(name not in params for name in needed):
            raise query_malformed(
                'Query-string authentication version 4 requires the '
                'X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, '
                'X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires '
                'parameters.')
        try:
            expires = int(params['X-Amz-Expires'])
        except ValueError:
            expires = -1
        if not 0 <= expires <= MAX_PRESIGN_EXPIRES:
            raise query_malformed(
                'X-Amz-Expires must be non-negative and less than a week '
                '(in seconds)')
        return cls(True, params['X-Amz-Credential'],
                   params['X-Amz-SignedHeaders'], params['X-Amz-Signature'],
                   params['X-Amz-Date'], expires=expires,
                   token=params.get('X-Amz-Security-Token'))


class RequestBody:
    """The request body with its HTTP framing (length or chunked) removed.

    Reads lazily from the client socket; the first read sends the
    `100 Continue` a client may be waiting for.
    """

    def __init__(self, rfile, length, chunked, before_first_read):
        self.rfile = rfile
        self.chunked = chunked
        self.remaining = 0 if chunked else length
        self.finished = not chunked and length == 0
        self.after_chunk_data = False
        self.before_first_read = before_first_read

    def read(self, size=IO_BLOCK):
        """Returns up to `size` body bytes; b'' at the end of the body."""
        if self.before_first_read:
            self.before_first_read()
            self.before_first_read = None
        if self.finished:
            return b''
        if self.chunked and self.remaining == 0:
            self._start_next_chunk()
            if self.finished:
                return b''
        data = self.rfile.read(min(size, self.remaining))
        if not data:
            raise incomplete_body()
        self.remaining -= len(data)
        if not self.chunked and self.remaining == 0:
            self.finished = True
        return data

    def read_exactly(self, size):
        """Returns exactly `size` bytes or fails with IncompleteBody."""
        data = bytearray()
        while len(data) < size:
            piece = self.read(size - len(data))
            if not piece:
                raise incomplete_body()
            data += piece
        return bytes(data)

    def readline(self):
        """Returns one CRLF-terminated line (for aws-chunked framing)."""
        line = bytearray()
        while not line.endswith(b'\n'):
            if len(line) > MAX_CHUNK_HEADER:
                raise incomplete_body()
            byte = self.read(1)
            if not byte:
                raise incomplete_body()
            line += byte
        return bytes(line)

    def drain(self):
        """Reads and discards the rest so the connection can be reused."""
        while self.read():
            pass

    def _start_next_chunk(self):
        """Reads the next chunked-encoding size line (and final trailers)."""
        if self.after_chunk_data and self.rfile.readline(3) not in (
                b'\r\n', b'\n'):
            raise incomplete_body()
        size_line = self.rfile.readline(MAX_CHUNK_HEADER)
        try:
            size = int(size_line.split(b';')[0].strip(), 16)
        except ValueError:
            raise incomplete_body() from None
        self.after_chunk_data = True
        self.remaining = size
        if size == 0:
            while self.rfile.readline(MAX_CHUNK_HEADER) not in (
                    b'\r\n', b'\n', b''):
                pass
            self.finished = True


class ChunkSignatureVerifier:
    """Checks the per-chunk signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD.

    Each chunk signs the previous signature and the chunk's hash; the chain
    starts at the request (seed) signature. botocore computes the HMACs.
    """

    def __init__(self, verifier, request, seed_signature):
        self.verifier = verifier
        self.request = request
        self.previous = seed_signature

    def verify(self, provided, chunk_sha256):
        """Raises SignatureDoesNotMatch unless `provided` signs this chunk."""
        string_to_sign = '\n'.join([
            'AWS4-HMAC-SHA256-PAYLOAD', self.request.context['timestamp'],
            self.verifier.credential_scope(self.request), self.previous,
            EMPTY_SHA256, chunk_sha256])
        expected = self.verifier.signature(string_to_sign, self.request)
        if not hmac.compare_digest(expected, provided or ''):
            raise S3Error(403, 'SignatureDoesNotMatch',
                          'The request signature we calculated does not '
                          'match the signature you provided. Check your key '
                          'and signing method.',
                          StringToSign=string_to_sign,
                          SignatureProvided=provided or '')
        self.previous = expected


def decode_aws_chunked(body, spool, chunk_verifier):
    """Decodes an aws-chunked body into `spool`, checking chunk signatures
    when a verifier is given."""
    while True:
        header = body.readline().rstrip(b'\r\n').decode('latin-1')
        size_field, _, extension = header.partition(';')
        try:
            size = int(size_field, 16)
        except ValueError:
            raise incomplete_body() from None
        signature = None
        if extension.startswith('chunk-signature='):
            signature = extension[len('chunk-signature='):]
        digest = hashlib.sha256()
        remaining = size
        while remaining:
            data = body.read(min(IO_BLOCK, remaining))
            if not data:
                raise incomplete_body()
            digest.update(data)
            spool.write(data)
            remaining -= len(data)
        if chunk_verifier:
            chunk_verifier.verify(signature, digest.hexdigest())
        if size == 0:
            # Final chunk: optional trailer lines, then an empty line.
            while body.readline() not in (b'\r\n', b'\n'):
                pass
            return
        if body.read_exactly(2) != b'\r\n':
            raise incomplete_body()


class HashingSpool:
    """A temp file for a request body that hashes what is written to it.

    Small bodies stay in memory; large ones go to disk, never whole into
    memory.
    """

    def __init__(self):
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.length = 0

    def write(self, data):
        self.file.write(data)
        self.sha256.update(data)
        self.md5.update(data)
        self.length += len(data)

    def copy_from(self, body):
        """Writes the rest of a RequestBody into the spool."""
        for data in iter(body.read, b''):
            self.write(data)

    def rewind(self):
        """Prepares the spool for being forwarded from the start."""
        self.file.seek(0)

    def read(self, size):
        return self.file.read(size)

    def close(self):
        self.file.close()


class FaultInjector:
    """Fails selected requests with S3 5xx errors, as the fault file says.

    The file is stat'ed on every request and re-read when it changes; a
    change also restarts the request counting.
    """

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.file_state = None
        self.faults = []
        self.counts = []

    def check(self, method, key_path):
        """Raises the injected error if this request is one to fail."""
        if not self.path:
            return
        with self.lock:
            self._reload_if_changed()
            hit = None
            for index, fault in enumerate(self.faults):
                if fault.get('method') and fault['method'] != method:
                    continue
                if fault.get('key_contains') and \
                        fault['key_contains'] not in key_path:
                    continue
                self.counts[index] += 1
                nth = fault.get('nth') or 1
                count = fault.get('count') or 1
                if hit is None and \
                        nth <= self.counts[index] < nth + count:
                    hit = fault
        if hit is not None:
            status = hit.get('status') or 503
            code, message = FAULT_ERRORS.get(
                status, ('InternalError', 'Fault injected by s3gate.'))
            raise S3Error(status, code, message)

    def _reload_if_changed(self):
        """Re-reads the fault file when its mtime, size or inode changed."""
        try:
            stat = os.stat(self.path)
            state = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            state = None
        if state == self.file_state:
            return
        self.file_state = state
        self.faults = []
        if state is not None:
            try:
                with open(self.path, encoding='utf-8') as handle:
                    listed = json.load(handle).get('faults', [])
                self.faults = [fault for fault in listed
                               if fault.get('kind') == 's3_error']
            except (OSError, ValueError, AttributeError) as error:
                log(f'ignoring unreadable fault file: {error}')
        self.counts = [0] * len(self.faults)


class GateServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP server holding the gate's configuration."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, listen, credentials, region, upstream, faults,
                 store_dir=None):
        super().__init__(listen, GateHandler)
        self.store_dir = store_dir
        self.credentials = credentials
        self.region = region
        self.upstream = upstream
        self.faults = faults


class GateHandler(http.server.BaseHTTPRequestHandler):
    """Verifies one client request at a time and proxies it to s3rver."""

    protocol_version = 'HTTP/1.1'
    timeout = 300
    # Headers and body go out in separate writes; with Nagle's algorithm
    # the body then waits for the client's delayed ACK of the headers
    # (40 ms on Linux), as S3 itself never makes a client wait.
    disable_nagle_algorithm = True

    def parse_request(self):
        # Per-request state must be reset before the base class may call
        # handle_expect_100() while parsing the headers.
        self.continue_pending = False
        self.body = None
        return super().parse_request()

    def handle_expect_100(self):
        # Defer `100 Continue` until the request is authorised, as S3 does.
        self.continue_pending = True
        return True

    def send_continue(self):
        """Sends the deferred `100 Continue` right before the body is read."""
        if self.continue_pending:
            self.continue_pending = False
            super().handle_expect_100()

    def log_request(self, code='-', size='-'):
        # Requests are logged by handle_s3_request (without query strings).
        pass

    def log_message(self, format, *args):
        log(f'{self.address_string()}: {format % args}')

    def handle_s3_request(self):
        """Entry point for every method: verify, inject faults, forward."""
        self.request_id = os.urandom(8).hex().upper()
        raw_path, _, raw_query = self.path.partition('?')
        if self.command == 'GET' and raw_path == '/__gate/health':
            self.send_plain(200, b'ok')
            return
        try:
            try:
                self.body = self.open_body()
                query = split_query(raw_query)
                verified = self.authenticate(raw_path, query)
                path = self.path_style_path(raw_path)
                self.server.faults.check(self.command, unquote(path))
                spool = self.read_payload(verified)
                if not self.serve_multipart_admin(path, query):
                    self.forward(path, raw_query, spool)
            except S3Error as error:
                self.reject(error, raw_path)
        except OSError as error:
            log(f'{self.command} {raw_path}: connection error: {error}')
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = \
        handle_s3_request

    def path_style_path(self, raw_path):
        """The path-style form of the request path.  A virtual-hosted
        request names its bucket in the Host header, as
        <bucket>.localhost[:port] (curl and most clients resolve *.localhost
        to loopback); after the signature is checked against the request
        as sent, it is served like /<bucket><path>."""
        host = (self.headers.get('Host') or '').rsplit(':', 1)[0].lower()
        if host.endswith('.localhost') and host != '.localhost':
            return '/' + host[:-len('.localhost')] + raw_path
        return raw_path

    def serve_multipart_admin(self, raw_path, query):
        """Answers ListMultipartUploads, ListParts and AbortMultipartUpload,
        which s3rver lacks (see multipart_admin.py); False for anything
        else."""
        bucket, _, key = unquote(raw_path).lstrip('/').partition('/')
        params = {unquote(k): unquote(v) for k, v in query}
        answer = multipart_admin.handle(self.command, bucket, key, params,
                                        self.server.store_dir)
        if answer is None:
            return False
        status, xml = answer
        body = xml.encode() if xml else b''
        self.send_response_only(status)
        self.send_header('x-amz-request-id', self.request_id)
        if body:
            self.send_header('Content-Type', 'application/xml')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)
        log(f'{self.command} {raw_path}: {status} (served by the gate)')
        return True

    def open_body(self):
        """Sets up reading the body as framed by Content-Length/chunked."""
        transfer_encoding = self.headers.get('Transfer-Encoding')
        length_header = self.headers.get('Content-Length')
        if transfer_encoding is not None:
            if transfer_encoding.strip().lower() != 'chunked' or \
                    length_header is not None:
                raise S3Error(501, 'NotImplemented',
                              'A header you provided implies functionality '
                              'that is not implemented',
                              close=True, Header='Transfer-Encoding')
            return RequestBody(self.rfile, 0, True, self.send_continue)
        try:
            length = int(length_header or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            raise S3Error(400, 'BadRequest', 'Invalid Content-Length',
                          close=True) from None
        return RequestBody(self.rfile, length, False, self.send_continue)

    def authenticate(self, raw_path, query):
        """Verifies the SigV4 signature; returns the verification state.

        The returned (auth, verifier, aws_request) are needed again to
        verify aws-chunked chunk signatures.
        """
        params = {unquote(key): unquote(value) for key, value in query}
        header = self.headers.get('Authorization')
        if header is not None and 'X-Amz-Algorithm' in params:
            raise S3Error(400, 'InvalidArgument',
                          'Only one auth mechanism allowed; only the '
                          'X-Amz-Algorithm query parameter, Signature query '
                          'string parameter or the Authorization header '
                          'should be specified')
        if header is not None:
            auth = Authorization.from_header(header, self.headers)
        elif 'X-Amz-Algorithm' in params:
            auth = Authorization.from_query(params)
        elif 'Signature' in params:
            raise unsupported_auth_mechanism()
        else:
            raise access_denied()

        if auth.service != 's3' or auth.terminal != 'aws4_request':
            raise auth.malformed('incorrect service or terminal; expecting '
                                 '"s3/aws4_request".')
        if auth.region != self.server.region:
            raise auth.malformed(
                f"the region '{auth.region}' is wrong; expecting "
                f"'{self.server.region}'", Region=self.server.region)
        credentials = self.server.credentials.get(auth.access_key)
        if credentials is None:
            raise S3Error(403, 'InvalidAccessKeyId',
                          'The AWS Access Key Id you provided does not exist '
                          'in our records.', AWSAccessKeyId=auth.access_key)
        self.check_time(auth)
        if 'host' not in auth.signed_headers:
            raise auth.malformed('the Host header must be signed.')
        self.check_token(auth, credentials)
        unsigned = sorted({name.lower() for name in self.headers
                           if name.lower().startswith('x-amz-')}
                          - set(auth.signed_headers))
        if unsigned:
            raise S3Error(403, 'AccessDenied', 'There were headers present '
                          'in the request which were not signed',
                          HeadersNotSigned=', '.join(unsigned))
        if not auth.presigned and 'x-amz-content-sha256' not in self.headers:
            raise S3Error(400, 'InvalidRequest', 'Missing required header '
                          'for this request: x-amz-content-sha256')

        verifier_class = QueryAuthVerifier if auth.presigned \
            else HeaderAuthVerifier
        verifier = verifier_class(credentials, 's3', auth.region)
        aws_request = self.signed_request(raw_path, query, auth)
        canonical_request = verifier.canonical_request(aws_request)
        string_to_sign = verifier.string_to_sign(aws_request,
                                                 canonical_request)
        expected = verifier.signature(string_to_sign, aws_request)
        if not hmac.compare_digest(expected, auth.signature):
            raise S3Error(403, 'SignatureDoesNotMatch',
                          'The request signature we calculated does not '
                          'match the signature you provided. Check your key '
                          'and signing method.',
                          AWSAccessKeyId=auth.access_key,
                          StringToSign=string_to_sign,
                          SignatureProvided=auth.signature,
                          CanonicalRequest=canonical_request)
        self.check_body_headers(query)
        return auth, verifier, aws_request

    def check_body_headers(self, query):
        """Rejects bad x-amz-content-sha256 / Content-MD5 headers before
        the body is read, and DeleteObjects without Content-MD5."""
        payload_hash = self.headers.get('x-amz-content-sha256',
                                        UNSIGNED_PAYLOAD)
        if payload_hash not in (UNSIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD,
                                STREAMING_UNSIGNED_TRAILER) and \
                not HEX_SHA256.fullmatch(payload_hash):
            raise S3Error(400, 'InvalidArgument',
                          'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, '
                          'STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid '
                          'sha256 value.',
                          ArgumentName='x-amz-content-sha256',
                          ArgumentValue=payload_hash)
        content_md5 = self.headers.get('Content-MD5')
        if content_md5 is not None:
            try:
                valid = len(base64.b64decode(content_md5,
                                             validate=True)) == 16
            except ValueError:
                valid = False
            if not valid:
                raise S3Error(400, 'InvalidDigest', 'The Content-MD5 you '
                              'specified was not valid.')
        elif self.command == 'POST' and \
                any(unquote(key) == 'delete' for key, _ in query) and \
                not any(name.lower().startswith('x-amz-checksum-')
                        for name in self.headers):
            raise S3Error(400, 'InvalidRequest', 'Missing required header '
                          'for this request: Content-MD5')

    def check_time(self, auth):
        """Rejects stale or skewed requests and expired presigned URLs."""
        signed_at = parse_sigv4_time(auth.amz_date)
        if signed_at is None:
            if auth.presigned:
                raise query_malformed(
                    'X-Amz-Date must be in the ISO8601 Long Format '
                    '"yyyyMMdd\'T\'HHmmss\'Z\'"')
            raise access_denied('AWS authentication requires a valid Date '
                                'or x-amz-date header')
        if auth.scope_date != auth.amz_date[:8]:
            raise auth.malformed('Invalid credential date. Date is not the '
                                 'same as X-Amz-Date.')
        now = datetime.datetime.now(datetime.timezone.utc)
        if auth.presigned:
            if now > signed_at + datetime.timedelta(seconds=auth.expires):
                raise access_denied('Request has expired')
            if signed_at - now > MAX_CLOCK_SKEW:
                raise access_denied('Request is not valid yet')
        elif abs(now - signed_at) > MAX_CLOCK_SKEW:
            raise S3Error(403, 'RequestTimeTooSkewed',
                          'The difference between the request time and the '
                          'current time is too large.',
                          RequestTime=auth.amz_date,
                          ServerTime=now.strftime(SIGV4_TIME_FORMAT))

    def check_token(self, auth, credentials):
        """Requires exactly the key's session token, signed, and no other."""
        invalid = S3Error(403, 'InvalidToken', 'The provided token is '
                          'malformed or otherwise invalid.')
        if credentials.token is None:
            if auth.token is not None:
                raise invalid
            return
        if auth.token is None or not hmac.compare_digest(
                auth.token.encode(), credentials.token.encode()):
            raise invalid
        if not auth.presigned and \
                'x-amz-security-token' not in auth.signed_headers:
            raise invalid

    def signed_request(self, raw_path, query, auth):
        """Rebuilds the request as botocore would sign it.

        The path is decoded and re-encoded once per segment (S3 does no
        other normalisation), query parameters are decoded and left for
        botocore to encode, and only the signed headers are included.
        """
        canonical_path = quote(unquote(raw_path), safe='/~')
        params = [(unquote(key), unquote(value)) for key, value in query
                  if not (auth.presigned and key == 'X-Amz-Signature')]
        headers = HTTPHeaders()
        for name in auth.signed_headers:
            for value in self.headers.get_all(name) or []:
                headers[name] = value
        request = AWSRequest(method=self.command,
                             url='http://s3gate' + canonical_path,
                             headers=headers, params=params)
        request.context['timestamp'] = auth.amz_date
        return request

    def read_payload(self, verified):
        """Reads and verifies the body as its payload hash requires.

        Returns the verified body as a HashingSpool, or None when the body
        is streamed straight through to s3rver (UNSIGNED-PAYLOAD without
        Content-MD5: nothing to check before forwarding).
        """
        auth, verifier, aws_request = verified
        payload_hash = self.headers.get('x-amz-content-sha256',
                                        UNSIGNED_PAYLOAD)
        content_md5 = self.headers.get('Content-MD5')
        if payload_hash == UNSIGNED_PAYLOAD and content_md5 is None:
            return None
        spool = HashingSpool()
        try:
            if payload_hash in (STREAMING_SIGNED_PAYLOAD,
                                STREAMING_UNSIGNED_TRAILER):
                chunk_verifier = None
                if payload_hash == STREAMING_SIGNED_PAYLOAD:
                    chunk_verifier = ChunkSignatureVerifier(
                        verifier, aws_request, auth.signature)
                decode_aws_chunked(self.body, spool, chunk_verifier)
                declared = self.headers.get('x-amz-decoded-content-length')
                if declared not in (None, str(spool.length)):
                    raise incomplete_body()
            else:
                spool.copy_from(self.body)
                computed = spool.sha256.hexdigest()
                if payload_hash != UNSIGNED_PAYLOAD and \
                        computed != payload_hash.lower():
                    raise S3Error(400, 'XAmzContentSHA256Mismatch',
                                  "The provided 'x-amz-content-sha256' "
                                  "header does not match what was computed.",
                                  ClientComputedContentSHA256=payload_hash,
                                  S3ComputedContentSHA256=computed)
            if content_md5 is not None and \
                    base64.b64decode(content_md5) != spool.md5.digest():
                raise S3Error(400, 'BadDigest', 'The Content-MD5 you '
                              'specified did not match what we received.')
        except BaseException:
            spool.close()
            raise
        spool.rewind()
        return spool

    def upstream_headers(self):
        """The client's headers minus its own auth, signed for s3rver."""
        headers = HTTPHeaders()
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in NOT_FORWARDED_HEADERS:
                continue
            if lower == 'content-encoding':
                codings = [coding.strip() for coding in value.split(',')
                           if coding.strip().lower() != 'aws-chunked']
                if not codings:
                    continue
                value = ', '.join(codings)
            headers[name] = value
        host, port = self.server.upstream
        headers['Host'] = f'{host}:{port}'
        request = AWSRequest(method=self.command,
                             url=f'http://{host}:{port}{self.upstream_path}',
                             headers=headers)
        request.context['client_config'] = UPSTREAM_SIGNING_CONFIG
        S3SigV4Auth(UPSTREAM_CREDENTIALS, 's3', 'us-east-1').add_auth(request)
        return request.headers

    def forward(self, raw_path, raw_query, spool):
        """Sends the verified request to s3rver and relays the response.

        The body comes from `spool`, or straight from the client when
        `spool` is None (keeping the client's length or chunked framing).
        """
        kept = [part for part in raw_query.split('&') if part and
                unquote(part.partition('=')[0]).lower() not in PRESIGN_PARAMS]
        self.upstream_path = raw_path + ('?' + '&'.join(kept) if kept else '')
        streamed = spool is None
        rechunk = streamed and self.body.chunked
        length = None
        if not streamed:
            length = spool.length
        elif not rechunk and 'Content-Length' in self.headers:
            length = self.body.remaining
        headers = self.upstream_headers()
        host, port = self.server.upstream
        upstream = http.client.HTTPConnection(host, port,
                                              timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                upstream.putrequest(self.command, self.upstream_path,
                                    skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    upstream.putheader(name, value)
                if length is not None:
                    upstream.putheader('Content-Length', str(length))
                elif rechunk:
                    upstream.putheader('Transfer-Encoding', 'chunked')
                upstream.endheaders()
                self.send_body(upstream, self.body if streamed else spool,
                               rechunk)
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException) as error:
                log(f'{self.command} {raw_path}: upstream error: {error}')
                raise S3Error(503, 'ServiceUnavailable',
                              'The gate could not reach its upstream.',
                              close=True) from None
            finally:
                if spool is not None:
                    spool.close()
            self.relay_response(response, raw_path)
        finally:
            upstream.close()

    @staticmethod
    def send_body(upstream, source, chunked):
        """Copies a body to s3rver, re-chunking it if it came chunked."""
        for data in iter(lambda: source.read(IO_BLOCK), b''):
            if chunked:
                upstream.send(b'%x\r\n%s\r\n' % (len(data), data))
            else:
                upstream.send(data)
        if chunked:
            upstream.send(b'0\r\n\r\n')

    def relay_response(self, response, raw_path):
        """Passes s3rver's status, headers and body to the client as is."""
        log(f'{self.command} {raw_path} -> {response.status}')
        self.send_response_only(response.status, response.reason)
        length = response.getheader('Content-Length')
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP_HEADERS:
                self.send_header(name, value)
        has_body = self.command != 'HEAD' and response.status >= 200 and \
            response.status not in (204, 304)
        rechunk = has_body and length is None and \
            self.request_version == 'HTTP/1.1'
        if rechunk:
            self.send_header('Transfer-Encoding', 'chunked')
        elif has_body and length is None:
            self.send_header('Connection', 'close')
        self.end_headers()
        if not has_body:
            return
        for data in iter(lambda: response.read(IO_BLOCK), b''):
            if rechunk:
                self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
            else:
                self.wfile.write(data)
        if rechunk:
            self.wfile.write(b'0\r\n\r\n')

    def reject(self, error, raw_path):
        """Sends an S3 error, keeping the connection usable if possible."""
        log(f'{self.command} {raw_path} -> {error.status} {error.code}')
        close = error.close
        if not close and self.body is not None and not self.body.finished:
            if self.continue_pending:
                # The client is still waiting to send its body: it will not
                # send it after a final response, but only closing the
                # connection makes that unambiguous.
                close = True
            else:
                try:
                    self.body.drain()
                except S3Error:
                    close = True
        body = error_document(error, self.request_id)
        self.send_response_only(error.status)
        self.send_header('Content-Type', 'application/xml')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('x-amz-request-id', self.request_id)
        self.send_header('Date', self.date_time_string())
        if close:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def send_plain(self, status, body):
        """Sends a small text/plain response (health check)."""
        self.send_response_only(status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def host_port(value):
    """argparse type for HOST:PORT."""
    host, sep, port = value.rpartition(':')
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f'expected HOST:PORT, got {value!r}')
    return host, int(port)


def main():
    """Parses arguments, serves until SIGTERM/SIGINT, then shuts down."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--listen', type=host_port, required=True)
    parser.add_argument('--upstream', type=host_port, required=True)
    parser.add_argument('--credentials', required=True,
                        help='JSON list of {access_key_id, '
                             'secret_access_key, session_token}')
    parser.add_argument('--region', required=True)
    parser.add_argument('--fault-file')
    parser.add_argument('--store-dir',
                        help="s3rver's --directory, to serve the multipart "
                             "operations s3rver lacks")
    args = parser.parse_args()

    credentials = load_credentials(args.credentials)
    # Block the stop signals in every thread; the main thread waits for them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = GateServer(args.listen, credentials, args.region, args.upstream,
                        FaultInjector(args.fault_file), args.store_dir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    print(f's3gate listening on {host}:{port}', flush=True)
    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()


if __name__ == '__main__':
    main()
