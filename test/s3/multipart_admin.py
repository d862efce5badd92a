"""Multipart-upload operations s3rver 3.7.1 lacks, served by the gate.

s3rver implements CreateMultipartUpload, UploadPart and Complete, but not
ListMultipartUploads, ListParts or AbortMultipartUpload (it answers
NotImplemented / MethodNotAllowed).  Clients must be able to abort an
upload and tests must be able to see that no parts are left, so the gate
answers these three itself, after verifying the signature, from s3rver's
store: <store>/<bucket>/._S3rver_uploads/<uploadId>/{key, N, N.md5}.
"""

import os
import shutil
from xml.sax.saxutils import escape

UPLOADS_DIR = '._S3rver_uploads'
XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'


def uploads_root(store_dir, bucket):
    return os.path.join(store_dir, bucket, UPLOADS_DIR)


def read_key(upload_dir):
    try:
        with open(os.path.join(upload_dir, 'key'), encoding='utf-8') as f:
            return f.read()
    except OSError:
        return None


def list_uploads(store_dir, bucket, prefix):
    """(key, upload id) of the uploads in progress, sorted by key."""
    root = uploads_root(store_dir, bucket)
    result = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return result
    for upload_id in names:
        key = read_key(os.path.join(root, upload_id))
        if key is not None and key.startswith(prefix or ''):
            result.append((key, upload_id))
    return sorted(result)


def list_parts(store_dir, bucket, upload_id):
    """(number, size, md5) of an upload's parts, or None if unknown."""
    upload_dir = os.path.join(uploads_root(store_dir, bucket), upload_id)
    if not os.path.isdir(upload_dir):
        return None
    parts = []
    for name in os.listdir(upload_dir):
        if name.isdigit():
            path = os.path.join(upload_dir, name)
            try:
                with open(path + '.md5') as f:
                    md5 = f.read().strip()
            except OSError:
                md5 = ''
            parts.append((int(name), os.path.getsize(path), md5))
    return sorted(parts)


def abort_upload(store_dir, bucket, upload_id):
    """Remove an upload and its parts; False when it does not exist."""
    upload_dir = os.path.join(uploads_root(store_dir, bucket), upload_id)
    if os.sep in upload_id or upload_id in ('', '.', '..') or \
            not os.path.isdir(upload_dir):
        return False
    shutil.rmtree(upload_dir, ignore_errors=True)
    return True


def handle(method, bucket, key, params, store_dir):
    """Answer one of the three operations: (status, xml or None), or None
    when the request is not one of them."""
    if store_dir is None or not bucket:
        return None
    if method == 'DELETE' and key and 'uploadId' in params:
        if not abort_upload(store_dir, bucket, params['uploadId']):
            return 404, no_such_upload(params['uploadId'])
        return 204, None
    if method == 'GET' and not key and 'uploads' in params:
        uploads = list_uploads(store_dir, bucket, params.get('prefix'))
        items = ''.join(
            '<Upload><Key>%s</Key><UploadId>%s</UploadId></Upload>'
            % (escape(k), escape(u)) for k, u in uploads)
        return 200, ('<?xml version="1.0" encoding="UTF-8"?>'
                     '<ListMultipartUploadsResult xmlns="%s"><Bucket>%s'
                     '</Bucket><IsTruncated>false</IsTruncated>%s'
                     '</ListMultipartUploadsResult>'
                     % (XMLNS, escape(bucket), items))
    if method == 'GET' and key and 'uploadId' in params:
        parts = list_parts(store_dir, bucket, params['uploadId'])
        if parts is None:
            return 404, no_such_upload(params['uploadId'])
        items = ''.join(
            '<Part><PartNumber>%d</PartNumber><Size>%d</Size>'
            '<ETag>"%s"</ETag></Part>' % p for p in parts)
        return 200, ('<?xml version="1.0" encoding="UTF-8"?>'
                     '<ListPartsResult xmlns="%s"><Bucket>%s</Bucket>'
                     '<Key>%s</Key><UploadId>%s</UploadId>'
                     '<IsTruncated>false</IsTruncated>%s</ListPartsResult>'
                     % (XMLNS, escape(bucket), escape(key),
                        escape(params['uploadId']), items))
    return None


def no_such_upload(upload_id):
    return ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload'
            '</Code><Message>The specified upload does not exist. The upload '
            'ID may be invalid, or the upload may have been aborted or '
            'completed.</Message><UploadId>%s</UploadId></Error>'
            % escape(upload_id))
