#!/usr/bin/python3
"""Cross-checks src/sigv4.c against botocore's S3 signer.

Generates varied S3 requests from a fixed seed (awkward keys, unicode, bare
and repeated query parameters, session tokens, extra signed headers,
several methods, dates and regions), signs each with
botocore.auth.S3SigV4Auth and with the C signer (sigv4_driver), and
requires the same Authorization header and the same encoded request target
for every one.

    /usr/bin/python3 crosscheck.py [--count N] [--seed S] DRIVER [ARG...]

DRIVER [ARG...] is the command to run, e.g. ./sigv4_driver, or the driver
under valgrind.  Exits 1 on any difference.
"""

import argparse
import hashlib
import random
import subprocess
import sys
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY_PIECES = [
    'data.csv', 'my key.txt', 'caf\u00e9', '\u65e5\u672c', 'a=b', 'c+d',
    '~tilde', '%41', "!*'()", '', '.', '..', 'a;b', '#frag', '?q', '[x]',
    'sp  ace', 'a&b', '$dollar', '@at', 'semi:colon', 'comma,', 'quote"',
    'emoji\U0001F600', 'back\\slash', 'caret^', 'pipe|', 'plus+equals=',
]
QUERY_SHAPES = [
    [('uploads', None)],
    [('delete', None)],
    [('acl', None)],
    [('lifecycle', '')],
    [('list-type', '2'), ('continuation-token', 'TOKEN'), ('prefix', 'a/b')],
    [('list-type', '2'), ('prefix', 'PIECE'), ('delimiter', '/')],
    [('partNumber', 'N'), ('uploadId', 'TOKEN')],
    [('uploadId', 'TOKEN')],
    [('max-keys', '2'), ('prefix', 'J')],
    [('versionId', 'TOKEN')],
    [('a', '2'), ('a', '1'), ('A', '0')],
    [('PIECE', 'PIECE')],
    [('PIECE', None), ('x-id', 'PutObject')],
]
HOSTS = ['examplebucket.s3.amazonaws.com', 's3.us-west-2.amazonaws.com',
         '127.0.0.1:59000', 'localhost:9000', 'bucket.s3.eu-west-1.amazonaws.com']
REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-southeast-2', 'cn-north-1']
METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD']
TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/='


def random_token(rng, length):
    return ''.join(rng.choice(TOKEN_CHARS) for _ in range(length))


def random_key(rng):
    return '/'.join(rng.choice(KEY_PIECES) for _ in range(rng.randint(1, 4)))


def random_headers(rng):
    """Extra headers to sign, with blanks to trim and collapse."""
    candidates = [
        ('Content-Type', rng.choice(['text/plain', 'application/octet-stream',
                                     ' text/csv;   charset=utf-8 '])),
        ('Content-MD5', random_token(rng, 22) + '=='),
        ('Range', 'bytes=%d-%d' % (rng.randint(0, 99), rng.randint(100, 999))),
        ('content-encoding', 'gzip'),
        ('X-Amz-Meta-Note', rng.choice(['  two  spaces ', 'tab\there',
                                        'caf\u00e9 \u65e5\u672c', ''])),
        ('x-amz-storage-class', 'REDUCED_REDUNDANCY'),
        ('Date', 'Fri, 24 May 2013 00:00:00 GMT'),
        ('If-None-Match', '"%s"' % random_token(rng, 8)),
    ]
    return rng.sample(candidates, rng.randint(0, 4))


def random_query(rng):
    if rng.random() < 0.3:
        return []
    params = []
    for name, value in rng.choice(QUERY_SHAPES):
        if name == 'PIECE':
            name = rng.choice(KEY_PIECES) or 'n'
        if value == 'TOKEN':
            value = random_token(rng, rng.randint(8, 60))
        elif value == 'N':
            value = str(rng.randint(1, 10000))
        elif value == 'PIECE':
            value = random_key(rng)
        params.append((name, value))
    return params


def generate(seed, count):
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        payload = rng.choice([
            'UNSIGNED-PAYLOAD',
            hashlib.sha256(b'').hexdigest(),
            hashlib.sha256(random_token(rng, 30).encode()).hexdigest(),
        ])
        bucket = '' if rng.random() < 0.3 else '/bucket-%d' % rng.randint(0, 9)
        requests.append({
            'key_id': 'AKIA' + ''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')
                                       for _ in range(16)),
            'secret': random_token(rng, 40),
            'token': random_token(rng, rng.randint(20, 400)) if rng.random() < 0.3 else None,
            'region': rng.choice(REGIONS),
            'service': 's3',
            'method': rng.choice(METHODS),
            'host': rng.choice(HOSTS),
            'path': bucket + '/' + random_key(rng) if bucket or rng.random() < 0.8 else '/',
            'query': random_query(rng),
            'headers': random_headers(rng),
            'payload': payload,
            'date': '%04d%02d%02dT%02d%02d%02dZ' % (
                rng.randint(2013, 2030), rng.randint(1, 12), rng.randint(1, 28),
                rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
        })
    return requests


def hexfield(text):
    return 'x' + text.encode('utf-8').hex()


def driver_input(requests):
    lines = []
    for r in requests:
        credentials = [r['key_id'], r['secret'], r['region'], r['service']]
        if r['token'] is not None:
            credentials.append(r['token'])
        lines.append('credentials ' + ' '.join(hexfield(c) for c in credentials))
        lines.append('method ' + hexfield(r['method']))
        lines.append('host ' + hexfield(r['host']))
        lines.append('path ' + hexfield(r['path']))
        for name, value in r['query']:
            lines.append('query ' + hexfield(name) +
                         ('' if value is None else ' ' + hexfield(value)))
        for name, value in r['headers']:
            lines.append('header %s %s' % (hexfield(name), hexfield(value)))
        lines.append('payload ' + hexfield(r['payload']))
        lines.append('date ' + hexfield(r['date']))
        lines.append('end')
    return '\n'.join(lines) + '\n'


def request_target(r):
    """The path and query as S3 wants them on the wire, encoded here
    independently of the C code: each UTF-8 byte once, '/' kept in the path
    only, bare parameters without '='."""
    target = quote(r['path'], safe='/~')
    params = []
    for name, value in r['query']:
        encoded = quote(name, safe='~')
        if value is not None:
            encoded += '=' + quote(value, safe='~')
        params.append(encoded)
    return target + ('?' + '&'.join(params) if params else '')


def botocore_authorization(r, target):
    """Signs the request with botocore's S3 signer at the request's date.

    add_auth() would take the current time and recompute the payload hash,
    so the same steps are called directly with the fixed timestamp; the
    headers are set as add_auth() would set them."""
    auth = S3SigV4Auth(Credentials(r['key_id'], r['secret'], r['token']),
                       r['service'], r['region'])
    request = AWSRequest(method=r['method'], url='https://' + r['host'] + target)
    for name, value in r['headers']:
        request.headers[name] = value
    request.headers['Host'] = r['host']
    request.headers['X-Amz-Date'] = r['date']
    request.headers['X-Amz-Content-SHA256'] = r['payload']
    if r['token'] is not None:
        request.headers['X-Amz-Security-Token'] = r['token']
    request.context['timestamp'] = r['date']
    canonical_request = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical_request)
    signature = auth.signature(string_to_sign, request)
    auth._inject_signature_to_request(request, signature)
    return request.headers['Authorization']


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=500)
    parser.add_argument('--seed', type=int, default=20130524)
    parser.add_argument('driver', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not args.driver:
        parser.error('give the driver command')

    requests = generate(args.seed, args.count)
    run = subprocess.run(args.driver, input=driver_input(requests).encode(),
                         stdout=subprocess.PIPE, check=False)
    if run.returncode != 0:
        print('crosscheck: driver exited with %d' % run.returncode)
        return 1
    results = run.stdout.decode('utf-8').splitlines()
    if len(results) != len(requests):
        print('crosscheck: %d requests, %d results' % (len(requests), len(results)))
        return 1

    matched = 0
    for number, (r, result) in enumerate(zip(requests, results)):
        target = request_target(r)
        expected = botocore_authorization(r, target) + '\t' + target
        if result == expected:
            matched += 1
        else:
            # The secret is a random test value, but print no secrets anyway.
            print('request %d differs: %s %s%s' % (number, r['method'], r['host'], target))
            print('  botocore: %s' % expected)
            print('  sigv4.c:  %s' % result)
    bare = sum(1 for r in requests if any(v is None for _, v in r['query']))
    tokens = sum(1 for r in requests if r['token'] is not None)
    print('crosscheck: %d of %d requests signed identically to botocore '
          '(%d with bare query parameters, %d with session tokens)'
          % (matched, len(requests), bare, tokens))
    return 0 if matched == len(requests) else 1


if __name__ == '__main__':
    sys.exit(main())
