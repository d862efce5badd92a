#!/usr/bin/env node
// Starts s3rver in the foreground for the test gate (s3gate.py) to sit in
// front of. s3rver does not verify SigV4 signatures, so it must only listen on
// an internal loopback port that nothing but the gate talks to.
//
// usage: node s3rver-run.js --address 127.0.0.1 --port P --directory D --bucket NAME
'use strict';

const crypto = require('crypto');
const fs = require('fs');

// s3rver encrypts ListObjectsV2 continuation tokens with single DES, which
// OpenSSL 3 only offers in its legacy provider (Node 20 fails with
// "Unsupported"). Triple DES with the 8-byte key repeated three times is
// the same cipher and is available by default, so map 'des' onto it.
function withDesAsTripleDes(create) {
  return (algorithm, key, iv, options) =>
    algorithm === 'des'
      ? create('des-ede3-cbc', Buffer.concat([key, key, key]), iv, options)
      : create(algorithm, key, iv, options);
}
crypto.createCipheriv = withDesAsTripleDes(crypto.createCipheriv);
crypto.createDecipheriv = withDesAsTripleDes(crypto.createDecipheriv);

const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

// DeleteObjects deletes its keys in parallel, and each deletion then removes
// its now-empty parent directories; two keys in one "directory" race and the
// loser fails with ENOENT (a 500 InternalError to the client) although its
// object is already gone. Treat that clean-up race as success.
const deleteObject = FilesystemStore.prototype.deleteObject;
FilesystemStore.prototype.deleteObject = async function (...args) {
  try {
    await deleteObject.apply(this, args);
  } catch (err) {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
  }
};

// Reads "--name value" pairs; every option is required.
function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) {
      throw new Error(`bad argument near '${name}'`);
    }
    options[name.slice(2)] = value;
  }
  for (const required of ['address', 'port', 'directory', 'bucket']) {
    if (!options[required]) {
      throw new Error(`missing --${required}`);
    }
  }
  return options;
}

// Starts the server, creates the bucket and announces readiness on stdout.
async function main() {
  const options = parseArgs(process.argv.slice(2));
  fs.mkdirSync(options.directory, { recursive: true });
  const server = new S3rver({
    address: options.address,
    port: Number(options.port),
    directory: options.directory,
    silent: true,
    vhostBuckets: false,
    configureBuckets: [{ name: options.bucket, configs: [] }],
  });
  const { address, port } = await server.run();
  console.log(`s3rver listening on ${address}:${port}`);

  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(`s3rver-run: ${err.message}`);
  process.exit(1);
});
