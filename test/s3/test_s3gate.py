#!/usr/bin/python3
"""Tests for s3gate.py: SigV4 verification, proxying to s3rver, faults.

Starts s3rver (node s3rver-run.js) and the gate on free loopback ports,
runs boto3 and hand-made requests against the gate, and stops both.
Run from anywhere: /usr/bin/python3 test/s3/test_s3gate.py
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = 'us-west-2'
BUCKET = 'gate-test'
GOOD_KEY = 'AKIDGATETEST'
GOOD_SECRET = 'good-secret-' + secrets.token_hex(12)
SESSION_KEY = 'ASIAGATETEST'
SESSION_SECRET = 'session-secret-' + secrets.token_hex(12)
SESSION_TOKEN = 'session-token-' + secrets.token_hex(24)
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
MIB = 1024 * 1024

# Filled in by setUpModule.
STATE = {}
# boto3 clients made by client(), closed by tearDownModule.
CLIENTS = {}


def free_port():
    """Asks the kernel for a currently unused loopback port."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def wait_for_line(path, text, process, timeout=20):
    """Waits until a started process has printed its readiness line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, encoding='utf-8', errors='replace') as handle:
            if text in handle.read():
                return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, encoding='utf-8', errors='replace') as handle:
        output = handle.read()
    raise RuntimeError(f'{text!r} not printed; output so far:\n{output}')


def ensure_node_modules():
    """Installs the pinned s3rver with `npm ci` if it is not there yet."""
    if not os.path.isdir(os.path.join(HERE, 'node_modules', 's3rver')):
        subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=HERE,
                       check=True, stdout=subprocess.DEVNULL)


def setUpModule():
    ensure_node_modules()
    workdir = tempfile.mkdtemp(prefix='s3gate-test-')
    STATE['workdir'] = workdir
    STATE['processes'] = []
    s3rver_port, gate_port = free_port(), free_port()
    credentials = os.path.join(workdir, 'credentials.json')
    with open(credentials, 'w', encoding='utf-8') as handle:
        json.dump([
            {'access_key_id': GOOD_KEY, 'secret_access_key': GOOD_SECRET,
             'session_token': None},
            {'access_key_id': SESSION_KEY,
             'secret_access_key': SESSION_SECRET,
             'session_token': SESSION_TOKEN},
        ], handle)
    STATE['fault_file'] = os.path.join(workdir, 'faults.json')
    STATE['s3rver_log'] = os.path.join(workdir, 's3rver.log')
    STATE['gate_log'] = os.path.join(workdir, 'gate.log')

    s3rver = start(['node', os.path.join(HERE, 's3rver-run.js'),
                    '--address', '127.0.0.1', '--port', str(s3rver_port),
                    '--directory', os.path.join(workdir, 'data'),
                    '--bucket', BUCKET], STATE['s3rver_log'])
    wait_for_line(STATE['s3rver_log'], 's3rver listening on', s3rver)
    gate = start(['/usr/bin/python3', os.path.join(HERE, 's3gate.py'),
                  '--listen', f'127.0.0.1:{gate_port}',
                  '--upstream', f'127.0.0.1:{s3rver_port}',
                  '--credentials', credentials, '--region', REGION,
                  '--fault-file', STATE['fault_file']], STATE['gate_log'])
    STATE['gate'] = gate
    wait_for_line(STATE['gate_log'], f's3gate listening on 127.0.0.1:'
                  f'{gate_port}', gate)
    STATE['port'] = gate_port
    STATE['endpoint'] = f'http://127.0.0.1:{gate_port}'
    with urllib.request.urlopen(STATE['endpoint'] + '/__gate/health') as r:
        assert r.read() == b'ok'


def start(command, log_path):
    """Starts a helper process with stdout+stderr going to a log file."""
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(command, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    STATE['processes'].append(process)
    return process


def tearDownModule():
    for s3 in CLIENTS.values():
        s3.close()
    CLIENTS.clear()
    for process in reversed(STATE.get('processes', [])):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    shutil.rmtree(STATE.get('workdir', ''), ignore_errors=True)
    gate = STATE.get('gate')
    if gate is not None and gate.returncode != 0:
        raise RuntimeError(f's3gate exited with {gate.returncode} on SIGTERM')


def client(access_key=GOOD_KEY, secret=GOOD_SECRET, token=None,
           region=REGION, **s3_options):
    """A boto3 S3 client for the gate: SigV4, path style, no retries.

    Clients are cached so their connection pools are reused (and closed
    once, at the end)."""
    cache_key = (access_key, secret, token, region,
                 tuple(sorted(s3_options.items())))
    if cache_key not in CLIENTS:
        CLIENTS[cache_key] = boto3.client(
            's3', endpoint_url=STATE['endpoint'], region_name=region,
            aws_access_key_id=access_key, aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(signature_version='s3v4',
                          s3={'addressing_style': 'path', **s3_options},
                          retries={'total_max_attempts': 1,
                                   'mode': 'standard'}))
    return CLIENTS[cache_key]


def error_code(body):
    """The <Code> of an S3 error document."""
    return ElementTree.fromstring(body).findtext('Code')


def amz_now(offset=datetime.timedelta()):
    """The current time (plus offset) in SigV4 format."""
    now = datetime.datetime.now(datetime.timezone.utc) + offset
    return now.strftime('%Y%m%dT%H%M%SZ')


def sign(method, path, headers, payload_hash, access_key=GOOD_KEY,
         secret=GOOD_SECRET, token=None, region=REGION, amz_date=None):
    """Adds SigV4 auth headers for a request to the gate (via botocore)."""
    amz_date = amz_date or amz_now()
    signed = dict(headers)
    signed['X-Amz-Date'] = amz_date
    signed['X-Amz-Content-SHA256'] = payload_hash
    if token:
        signed['X-Amz-Security-Token'] = token
    request = AWSRequest(method=method, url=STATE['endpoint'] + path,
                         headers=signed)
    request.context['timestamp'] = amz_date
    signer = S3SigV4Auth(Credentials(access_key, secret, token), 's3', region)
    string_to_sign = signer.string_to_sign(
        request, signer.canonical_request(request))
    signature = signer.signature(string_to_sign, request)
    signed['Authorization'] = (
        f'AWS4-HMAC-SHA256 Credential={access_key}/'
        f'{signer.credential_scope(request)}, SignedHeaders='
        f'{signer.signed_headers(signer.headers_to_sign(request))}, '
        f'Signature={signature}')
    return signed


def raw_request(method, path, body=b'', headers=None, connection=None,
                payload_hash=None, **sign_options):
    """Sends one signed request with http.client; returns status, headers,
    body. Pass `payload_hash=None` to sign the real body hash."""
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    signed = sign(method, path, headers or {}, payload_hash, **sign_options)
    own = connection is None
    connection = connection or http.client.HTTPConnection(
        '127.0.0.1', STATE['port'], timeout=30)
    try:
        connection.request(method, path, body=body, headers=signed)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        if own:
            connection.close()


def signing_key(secret, date, region=REGION):
    """The SigV4 signing key, derived independently of botocore."""
    key = ('AWS4' + secret).encode()
    for part in (date, region, 's3', 'aws4_request'):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class RefusalTests(unittest.TestCase):
    """Requests the gate must refuse, with the error S3 would send."""

    def assert_client_error(self, call, status, code):
        with self.assertRaises(ClientError) as caught:
            call()
        response = caught.exception.response
        self.assertEqual(response['ResponseMetadata']['HTTPStatusCode'],
                         status)
        self.assertEqual(response['Error']['Code'], code)

    def test_wrong_secret_is_signature_does_not_match(self):
        s3 = client(secret='not-the-secret')
        self.assert_client_error(lambda: s3.list_objects_v2(Bucket=BUCKET),
                                 403, 'SignatureDoesNotMatch')

    def test_unknown_access_key_is_invalid_access_key_id(self):
        s3 = client(access_key='AKIDUNKNOWN')
        self.assert_client_error(lambda: s3.list_objects_v2(Bucket=BUCKET),
                                 403, 'InvalidAccessKeyId')

    def test_unsigned_request_is_access_denied(self):
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{STATE['endpoint']}/{BUCKET}/anything")
        self.assertEqual(caught.exception.code, 403)
        self.assertEqual(error_code(caught.exception.read()), 'AccessDenied')
        self.assertEqual(caught.exception.headers['Content-Type'],
                         'application/xml')

    def test_wrong_region_is_400(self):
        status, _, body = raw_request('GET', f'/{BUCKET}?list-type=2',
                                      region='eu-central-1')
        self.assertEqual(status, 400)
        self.assertEqual(error_code(body), 'AuthorizationHeaderMalformed')

    def test_skewed_clock_is_request_time_too_skewed(self):
        status, _, body = raw_request(
            'GET', f'/{BUCKET}?list-type=2',
            amz_date=amz_now(-datetime.timedelta(minutes=20)))
        self.assertEqual(status, 403)
        self.assertEqual(error_code(body), 'RequestTimeTooSkewed')

    def test_payload_hash_mismatch_keeps_connection_usable(self):
        connection = http.client.HTTPConnection('127.0.0.1', STATE['port'],
                                                timeout=30)
        try:
            status, _, body = raw_request(
                'PUT', f'/{BUCKET}/mismatch', body=b'actual body',
                payload_hash=hashlib.sha256(b'other body').hexdigest(),
                connection=connection)
            self.assertEqual(status, 400)
            self.assertEqual(error_code(body), 'XAmzContentSHA256Mismatch')
            status, _, _ = raw_request('GET', f'/{BUCKET}?list-type=2',
                                       connection=connection)
            self.assertEqual(status, 200)
        finally:
            connection.close()

    def test_content_md5_mismatch_is_bad_digest(self):
        body = b'body with a checksum'
        wrong_md5 = base64.b64encode(hashlib.md5(b'other').digest()).decode()
        status, _, response = raw_request(
            'PUT', f'/{BUCKET}/md5.txt', body=body,
            payload_hash='UNSIGNED-PAYLOAD',
            headers={'Content-MD5': wrong_md5})
        self.assertEqual((status, error_code(response)), (400, 'BadDigest'))
        right_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, _, _ = raw_request(
            'PUT', f'/{BUCKET}/md5.txt', body=body,
            payload_hash='UNSIGNED-PAYLOAD',
            headers={'Content-MD5': right_md5})
        self.assertEqual(status, 200)

    def test_delete_objects_without_content_md5_is_invalid_request(self):
        body = (b'<Delete><Object><Key>md5.txt</Key></Object></Delete>')
        status, _, response = raw_request('POST', f'/{BUCKET}?delete',
                                          body=body)
        self.assertEqual((status, error_code(response)),
                         (400, 'InvalidRequest'))

    def test_unsigned_amz_header_is_access_denied(self):
        signed = sign('GET', f'/{BUCKET}?list-type=2', {}, EMPTY_SHA256)
        signed['x-amz-meta-sneaky'] = 'added after signing'
        connection = http.client.HTTPConnection('127.0.0.1', STATE['port'],
                                                timeout=30)
        try:
            connection.request('GET', f'/{BUCKET}?list-type=2',
                               headers=signed)
            response = connection.getresponse()
            self.assertEqual(response.status, 403)
            self.assertEqual(error_code(response.read()), 'AccessDenied')
        finally:
            connection.close()

    def test_expect_continue_rejected_before_body_is_sent(self):
        path = f'/{BUCKET}/never-sent'
        body_hash = hashlib.sha256(b'x' * 1000).hexdigest()
        headers = sign('PUT', path, {'Content-Length': '1000'}, body_hash,
                       secret='wrong-secret')
        headers['Expect'] = '100-continue'
        response = send_head_only('PUT', path, headers)
        self.assertTrue(response.startswith(b'HTTP/1.1 403'), response)
        self.assertIn(b'SignatureDoesNotMatch', response)
        self.assertIn(b'Connection: close', response)


def send_head_only(method, path, headers):
    """Sends only the request head and returns everything the gate sends
    back before closing the connection."""
    lines = [f'{method} {path} HTTP/1.1', f"Host: 127.0.0.1:{STATE['port']}"]
    lines += [f'{name}: {value}' for name, value in headers.items()]
    with socket.create_connection(('127.0.0.1', STATE['port']),
                                  timeout=10) as sock:
        sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        received = b''
        while True:
            data = sock.recv(65536)
            if not data:
                return received
            received += data


class RoundTripTests(unittest.TestCase):
    """Correctly signed requests must reach s3rver and come back intact."""

    def setUp(self):
        self.s3 = client()

    def test_put_get_head_list_delete(self):
        key = 'round trip/+plus~tilde=equals&amp;(paren)!.txt'
        self.s3.head_bucket(Bucket=BUCKET)
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=b'hello gate',
                                 Metadata={'origin': 'test'})
        got = self.s3.get_object(Bucket=BUCKET, Key=key)
        self.assertEqual(got['Body'].read(), b'hello gate')
        self.assertEqual(got['ETag'], put['ETag'])
        self.assertEqual(got['Metadata'], {'origin': 'test'})
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        self.assertEqual(head['ContentLength'], 10)
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix='round trip/')
        self.assertEqual([item['Key'] for item in listed['Contents']], [key])
        self.s3.delete_object(Bucket=BUCKET, Key=key)
        with self.assertRaises(ClientError) as caught:
            self.s3.get_object(Bucket=BUCKET, Key=key)
        self.assertEqual(caught.exception.response['Error']['Code'],
                         'NoSuchKey')

    def test_non_ascii_key(self):
        key = 'unicode/ümlaut €.txt'
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b'utf-8 key')
        got = self.s3.get_object(Bucket=BUCKET, Key=key)
        self.assertEqual(got['Body'].read(), b'utf-8 key')
        self.s3.delete_object(Bucket=BUCKET, Key=key)

    def test_multipart_upload_and_range_get(self):
        key = 'multipart/big.bin'
        data = os.urandom(12 * MIB)
        upload = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)
        parts = []
        for number, offset in enumerate(range(0, len(data), 5 * MIB), 1):
            part = self.s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload['UploadId'],
                PartNumber=number, Body=data[offset:offset + 5 * MIB])
            parts.append({'PartNumber': number, 'ETag': part['ETag']})
        self.assertEqual(len(parts), 3)
        self.s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=upload['UploadId'],
            MultipartUpload={'Parts': parts})
        got = self.s3.get_object(Bucket=BUCKET, Key=key)
        self.assertEqual(hashlib.sha256(got['Body'].read()).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        ranged = self.s3.get_object(Bucket=BUCKET, Key=key,
                                    Range=f'bytes={5 * MIB}-{5 * MIB + 99}')
        self.assertEqual(ranged['ResponseMetadata']['HTTPStatusCode'], 206)
        self.assertEqual(ranged['ContentRange'],
                         f'bytes {5 * MIB}-{5 * MIB + 99}/{len(data)}')
        self.assertEqual(ranged['Body'].read(), data[5 * MIB:5 * MIB + 100])
        self.s3.delete_object(Bucket=BUCKET, Key=key)

    def test_list_v2_continuation_and_delete_objects(self):
        keys = [f'listing/key-{index}' for index in range(5)]
        for key in keys:
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
        seen, pages, token = [], 0, None
        while True:
            options = {'ContinuationToken': token} if token else {}
            page = self.s3.list_objects_v2(Bucket=BUCKET, Prefix='listing/',
                                           MaxKeys=2, **options)
            pages += 1
            seen += [item['Key'] for item in page['Contents']]
            if not page['IsTruncated']:
                break
            token = page['NextContinuationToken']
        self.assertEqual(seen, keys)
        self.assertEqual(pages, 3)
        deleted = self.s3.delete_objects(
            Bucket=BUCKET, Delete={'Objects': [{'Key': k} for k in keys]})
        self.assertEqual(sorted(d['Key'] for d in deleted['Deleted']), keys)
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix='listing/')
        self.assertEqual(listed['KeyCount'], 0)

    def test_unsigned_payload_upload(self):
        s3 = client(payload_signing_enabled=False)
        s3.put_object(Bucket=BUCKET, Key='unsigned.bin', Body=b'u' * 100000)
        got = self.s3.get_object(Bucket=BUCKET, Key='unsigned.bin')
        self.assertEqual(got['Body'].read(), b'u' * 100000)

    def test_chunked_transfer_encoding_upload(self):
        path = f'/{BUCKET}/chunked.bin'
        headers = sign('PUT', path, {'Transfer-Encoding': 'chunked'},
                       'UNSIGNED-PAYLOAD')
        pieces = [b'a' * 70000, b'b' * 3, b'c' * 100000]
        connection = http.client.HTTPConnection('127.0.0.1', STATE['port'],
                                                timeout=30)
        try:
            connection.request('PUT', path, body=iter(pieces),
                               headers=headers, encode_chunked=True)
            response = connection.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
        finally:
            connection.close()
        got = self.s3.get_object(Bucket=BUCKET, Key='chunked.bin')
        self.assertEqual(got['Body'].read(), b''.join(pieces))

    def test_expect_continue_upload(self):
        path = f'/{BUCKET}/expect.bin'
        body = b'e' * 5000
        headers = sign('PUT', path, {'Content-Length': str(len(body))},
                       hashlib.sha256(body).hexdigest())
        headers['Expect'] = '100-continue'
        lines = [f'PUT {path} HTTP/1.1',
                 f"Host: 127.0.0.1:{STATE['port']}", 'Connection: close']
        lines += [f'{name}: {value}' for name, value in headers.items()]
        with socket.create_connection(('127.0.0.1', STATE['port']),
                                      timeout=10) as sock:
            sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
            interim = sock.recv(4096)
            self.assertTrue(interim.startswith(b'HTTP/1.1 100'), interim)
            sock.sendall(body)
            final = b''
            while b'\r\n\r\n' not in final:
                final += sock.recv(4096)
        self.assertTrue(final.startswith(b'HTTP/1.1 200'), final)
        got = self.s3.get_object(Bucket=BUCKET, Key='expect.bin')
        self.assertEqual(got['Body'].read(), body)

    def test_streaming_signed_payload(self):
        data = os.urandom(150000)
        status, body = self.streaming_upload('streamed.bin', data)
        self.assertEqual(status, 200, body)
        got = self.s3.get_object(Bucket=BUCKET, Key='streamed.bin')
        self.assertEqual(got['Body'].read(), data)

    def test_streaming_signed_payload_with_tampered_chunk(self):
        status, body = self.streaming_upload('tampered.bin', b'z' * 150000,
                                             tamper_chunk=1)
        self.assertEqual(status, 403)
        self.assertEqual(error_code(body), 'SignatureDoesNotMatch')
        with self.assertRaises(ClientError):
            self.s3.head_object(Bucket=BUCKET, Key='tampered.bin')

    def streaming_upload(self, key, data, tamper_chunk=None):
        """PUTs `data` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD in 64 KiB chunks,
        signing each chunk (optionally corrupting one after signing)."""
        path = f'/{BUCKET}/{key}'
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        chunks.append(b'')
        frame_sizes = [len(f'{len(c):x};chunk-signature=') + 64 + 4 + len(c)
                       for c in chunks]
        headers = sign('PUT', path, {
            'Content-Encoding': 'aws-chunked',
            'x-amz-decoded-content-length': str(len(data)),
            'Content-Length': str(sum(frame_sizes))},
            'STREAMING-AWS4-HMAC-SHA256-PAYLOAD')
        amz_date = headers['X-Amz-Date']
        scope = f'{amz_date[:8]}/{REGION}/s3/aws4_request'
        key_bytes = signing_key(GOOD_SECRET, amz_date[:8])
        previous = headers['Authorization'].rsplit('Signature=', 1)[1]
        body = bytearray()
        for index, chunk in enumerate(chunks):
            string_to_sign = '\n'.join([
                'AWS4-HMAC-SHA256-PAYLOAD', amz_date, scope, previous,
                EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()])
            previous = hmac.new(key_bytes, string_to_sign.encode(),
                                hashlib.sha256).hexdigest()
            if index == tamper_chunk:
                chunk = b'!' + chunk[1:]
            body += f'{len(chunk):x};chunk-signature={previous}\r\n'.encode()
            body += chunk + b'\r\n'
        connection = http.client.HTTPConnection('127.0.0.1', STATE['port'],
                                                timeout=30)
        try:
            connection.request('PUT', path, body=bytes(body), headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def test_streaming_unsigned_payload_with_trailer(self):
        path = f'/{BUCKET}/trailer.txt'
        body = (b'5\r\nhello\r\n6\r\n world\r\n0\r\n'
                b'x-amz-checksum-crc32:DUoRhQ==\r\n\r\n')
        status, _, response = raw_request(
            'PUT', path, body=body,
            payload_hash='STREAMING-UNSIGNED-PAYLOAD-TRAILER',
            headers={'Content-Encoding': 'aws-chunked',
                     'x-amz-decoded-content-length': '11',
                     'x-amz-trailer': 'x-amz-checksum-crc32'})
        self.assertEqual(status, 200, response)
        got = self.s3.get_object(Bucket=BUCKET, Key='trailer.txt')
        self.assertEqual(got['Body'].read(), b'hello world')
        self.assertNotIn('ContentEncoding', got)

    def test_keep_alive_connection_serves_many_requests(self):
        connection = http.client.HTTPConnection('127.0.0.1', STATE['port'],
                                                timeout=30)
        try:
            for index in range(5):
                status, _, _ = raw_request(
                    'PUT', f'/{BUCKET}/keepalive-{index}', body=b'k' * index,
                    connection=connection)
                self.assertEqual(status, 200)
                status, headers, body = raw_request(
                    'HEAD', f'/{BUCKET}/keepalive-{index}',
                    connection=connection)
                self.assertEqual((status, body), (200, b''))
                self.assertEqual(headers['Content-Length'], str(index))
        finally:
            connection.close()


class SessionTokenTests(unittest.TestCase):
    """Temporary credentials need their exact session token."""

    def test_with_token_works(self):
        s3 = client(SESSION_KEY, SESSION_SECRET, SESSION_TOKEN)
        s3.put_object(Bucket=BUCKET, Key='session.txt', Body=b'token ok')
        got = s3.get_object(Bucket=BUCKET, Key='session.txt')
        self.assertEqual(got['Body'].read(), b'token ok')

    def test_without_token_is_invalid_token(self):
        s3 = client(SESSION_KEY, SESSION_SECRET)
        with self.assertRaises(ClientError) as caught:
            s3.list_objects_v2(Bucket=BUCKET)
        self.assertEqual(caught.exception.response['Error']['Code'],
                         'InvalidToken')
        self.assertEqual(caught.exception.response['ResponseMetadata']
                         ['HTTPStatusCode'], 403)

    def test_wrong_token_is_invalid_token(self):
        s3 = client(SESSION_KEY, SESSION_SECRET, SESSION_TOKEN + 'x')
        with self.assertRaises(ClientError) as caught:
            s3.list_objects_v2(Bucket=BUCKET)
        self.assertEqual(caught.exception.response['Error']['Code'],
                         'InvalidToken')


class PresignedUrlTests(unittest.TestCase):
    """Query-string (presigned URL) authentication."""

    @classmethod
    def setUpClass(cls):
        cls.s3 = client()
        cls.s3.put_object(Bucket=BUCKET, Key='presigned.txt',
                          Body=b'presigned body')

    def presign(self, expires=300, **extra):
        return self.s3.generate_presigned_url(
            'get_object', Params={'Bucket': BUCKET, 'Key': 'presigned.txt',
                                  **extra}, ExpiresIn=expires)

    def fetch_error(self, url):
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url)
        return caught.exception.code, error_code(caught.exception.read())

    def test_presigned_get_works(self):
        with urllib.request.urlopen(self.presign()) as response:
            self.assertEqual(response.read(), b'presigned body')

    def test_presigned_response_header_override(self):
        url = self.presign(ResponseContentType='text/x-gate-test')
        with urllib.request.urlopen(url) as response:
            self.assertEqual(response.headers['Content-Type'],
                             'text/x-gate-test')

    def test_tampered_signature_fails(self):
        url = self.presign()
        last = url[-1]
        tampered = url[:-1] + ('0' if last != '0' else '1')
        self.assertEqual(self.fetch_error(tampered),
                         (403, 'SignatureDoesNotMatch'))

    def test_tampered_key_fails(self):
        url = self.presign().replace('presigned.txt', 'presigned.txx')
        self.assertEqual(self.fetch_error(url),
                         (403, 'SignatureDoesNotMatch'))

    def test_expired_url_fails(self):
        url = self.presign(expires=1)
        time.sleep(2.1)
        self.assertEqual(self.fetch_error(url), (403, 'AccessDenied'))


class FaultInjectionTests(unittest.TestCase):
    """The fault file makes chosen requests fail with S3 5xx errors."""

    def setUp(self):
        self.s3 = client()

    def tearDown(self):
        if os.path.exists(STATE['fault_file']):
            os.remove(STATE['fault_file'])

    def write_faults(self, faults):
        staging = STATE['fault_file'] + '.tmp'
        with open(staging, 'w', encoding='utf-8') as handle:
            json.dump({'faults': faults}, handle)
        os.replace(staging, STATE['fault_file'])

    def error_of(self, call):
        """The error code a call fails with, or None if it succeeds."""
        try:
            call()
            return None
        except ClientError as error:
            return (error.response['ResponseMetadata']['HTTPStatusCode'],
                    error.response['Error']['Code'])

    def test_second_request_gets_slow_down(self):
        self.write_faults([
            {'kind': 'postgres_crash', 'nth': 1},
            {'kind': 's3_error', 'nth': 2, 'status': 503, 'count': 1,
             'method': None, 'key_contains': None}])
        results = [
            self.error_of(lambda: self.s3.put_object(
                Bucket=BUCKET, Key='fault.txt', Body=b'f')),
            self.error_of(lambda: self.s3.get_object(
                Bucket=BUCKET, Key='fault.txt')),
            self.error_of(lambda: self.s3.get_object(
                Bucket=BUCKET, Key='fault.txt')),
            self.error_of(lambda: self.s3.list_objects_v2(Bucket=BUCKET)),
        ]
        self.assertEqual(results, [None, (503, 'SlowDown'), None, None])

    def test_filters_and_bad_signatures_are_not_counted(self):
        self.s3.put_object(Bucket=BUCKET, Key='flaky.txt', Body=b'f')
        self.write_faults([
            {'kind': 's3_error', 'nth': 1, 'status': 500, 'count': 2,
             'method': 'GET', 'key_contains': 'flaky'}])
        wrong_secret = client(secret='wrong')
        results = [
            self.error_of(lambda: wrong_secret.get_object(
                Bucket=BUCKET, Key='flaky.txt')),
            self.error_of(lambda: self.s3.put_object(
                Bucket=BUCKET, Key='flaky.txt', Body=b'g')),
            self.error_of(lambda: self.s3.list_objects_v2(Bucket=BUCKET)),
            self.error_of(lambda: self.s3.get_object(
                Bucket=BUCKET, Key='flaky.txt')),
            self.error_of(lambda: self.s3.get_object(
                Bucket=BUCKET, Key='flaky.txt')),
            self.error_of(lambda: self.s3.get_object(
                Bucket=BUCKET, Key='flaky.txt')),
        ]
        self.assertEqual(results, [
            (403, 'SignatureDoesNotMatch'), None, None,
            (500, 'InternalError'), (500, 'InternalError'), None])

    def test_rewriting_the_file_restarts_counting(self):
        fault = {'kind': 's3_error', 'nth': 1, 'status': 503, 'count': 1,
                 'method': None, 'key_contains': None}
        self.write_faults([fault])
        first = self.error_of(lambda: self.s3.list_objects_v2(Bucket=BUCKET))
        second = self.error_of(lambda: self.s3.list_objects_v2(Bucket=BUCKET))
        self.write_faults([fault])
        third = self.error_of(lambda: self.s3.list_objects_v2(Bucket=BUCKET))
        self.assertEqual([first, second, third],
                         [(503, 'SlowDown'), None, (503, 'SlowDown')])


class OutputTests(unittest.TestCase):
    """The gate must never print secrets, even when refusing requests."""

    def test_gate_output_has_no_secrets(self):
        for refused in (client(secret='wrong-secret'),
                        client(SESSION_KEY, SESSION_SECRET)):
            with self.assertRaises(ClientError):
                refused.list_objects_v2(Bucket=BUCKET)
        session = client(SESSION_KEY, SESSION_SECRET, SESSION_TOKEN)
        session.list_objects_v2(Bucket=BUCKET)
        url = session.generate_presigned_url(
            'list_objects_v2', Params={'Bucket': BUCKET})
        with urllib.request.urlopen(url) as response:
            response.read()
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url + '&prefix=tampered')
        caught.exception.close()
        with open(STATE['gate_log'], encoding='utf-8') as handle:
            output = handle.read()
        self.assertIn('SignatureDoesNotMatch', output)
        self.assertIn('InvalidToken', output)
        for secret in (GOOD_SECRET, SESSION_SECRET, SESSION_TOKEN):
            self.assertNotIn(secret, output)


if __name__ == '__main__':
    unittest.main(verbosity=2)
