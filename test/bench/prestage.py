#!/usr/bin/python3
"""test/bench/prestage.py -- staging files made without the extension.

    prestage.py stage PREFIX     CSV on stdin -> s3://$S3_BUCKET/PREFIX/part-NNNN.csv.zst
                                  and PREFIX/manifest (a COPY ... MANIFEST)
    prestage.py delete PREFIX    remove them again

The materialization benchmark times a Redshift COPY of these files next to
the first sync: what loading the same rows costs when staging costs
nothing, so the run shows how far the extension's own work is from that
ceiling.  Files are cut at line ends every PART_BYTES of CSV and compressed
with zstd level 1, as the extension stages (about 2 MB per file for the
benchmark's rows); one part is in memory at a time.  Uses the test bed's
S3 endpoint and keys (test/testbed env) through boto3.
"""

import json
import os
import sys

import boto3
import botocore.config
import zstandard

PART_BYTES = 12 * 1024 * 1024
READ_BYTES = 1024 * 1024


def client():
    """An S3 client for the test bed's endpoint, path-style."""
    return boto3.client(
        "s3", endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ.get("S3_REGION", "us-east-1"),
        config=botocore.config.Config(s3={"addressing_style": "path"}))


def stage(s3, bucket, prefix):
    """Upload stdin's CSV as zstd parts cut at line ends, then a manifest
    naming them; prints the manifest's s3:// URL."""
    compressor = zstandard.ZstdCompressor(level=1)
    urls, pending, eof = [], bytearray(), False

    def put(data):
        key = "%s/part-%04d.csv.zst" % (prefix, len(urls))
        s3.put_object(Bucket=bucket, Key=key, Body=compressor.compress(data))
        urls.append("s3://%s/%s" % (bucket, key))

    while not eof:
        chunk = sys.stdin.buffer.read(READ_BYTES)
        eof = not chunk
        pending += chunk
        while pending and (len(pending) >= PART_BYTES or eof):
            # the last line end within PART_BYTES, else the first after it
            cut = (pending.rfind(b"\n", 0, PART_BYTES) + 1 or
                   pending.find(b"\n", PART_BYTES) + 1)
            if eof and (cut == 0 or len(pending) <= PART_BYTES):
                cut = len(pending)
            if cut == 0:
                break  # a line longer than PART_BYTES: read on
            put(bytes(pending[:cut]))
            del pending[:cut]
    manifest = {"entries": [{"url": u, "mandatory": True} for u in urls]}
    key = "%s/manifest" % prefix
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    print("s3://%s/%s" % (bucket, key))


def delete(s3, bucket, prefix):
    """Remove every object under prefix/."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("stage", "delete"):
        sys.exit(__doc__.split("\n\n")[1])
    action, prefix = sys.argv[1], sys.argv[2].strip("/")
    s3, bucket = client(), os.environ["S3_BUCKET"]
    if action == "stage":
        stage(s3, bucket, prefix)
    else:
        delete(s3, bucket, prefix)


if __name__ == "__main__":
    main()
