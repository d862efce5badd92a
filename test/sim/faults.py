"""Fault rules shared by the Redshift simulator and the S3 gate.

Tests write a JSON file (test/sim/simctl does it) of the form
    {"faults": [{"kind": "...", ...}, ...]}
and the simulator re-reads it whenever it changes; counters restart at every
change, so "the Nth commit" counts from the moment the rule was written.
Kinds handled by the simulator:
    commit_1023      table, nth=1, count=1
    drop_connection  after_rows | after_bytes, count=1, match=None
                     (rows and bytes sent to the client); during="copy",
                     after_bytes=0: COPY data fed to the backend; at="commit",
                     table=None, nth=1: the commit succeeds, its reply is lost
    delay            match (regex), seconds, count=None (unlimited)
    copy_path        path="slow": COPY skips its fast path; path="fast":
                     COPY fails instead of falling back to the slow path
                     (tests use it to tell which path loaded)
The S3 gate handles kind s3_error (see test/s3/README.md).
"""

import json
import os
import threading


class FaultFile:
    """The current fault rules, reloaded when the file changes."""

    def __init__(self, path):
        self.path = path
        self.signature = None
        self.version = 0
        self.faults = []
        self.counters = {}
        self.lock = threading.Lock()

    def refresh(self):
        """Reload the rules if the file changed since the last look."""
        if not self.path:
            return
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = None
        with self.lock:
            if signature == self.signature:
                return
            self.signature = signature
            self.version += 1
            self.counters = {}
            self.faults = []
            if signature is not None:
                try:
                    with open(self.path) as f:
                        self.faults = json.load(f).get("faults", [])
                except (OSError, ValueError):
                    self.faults = []

    def rules(self, kind):
        """(key, rule) pairs of one kind; key identifies the rule within
        the current version of the file."""
        self.refresh()
        with self.lock:
            return [((self.version, i), rule)
                    for i, rule in enumerate(self.faults)
                    if rule.get("kind") == kind]

    def bump(self, key):
        """Count one more event for a rule and return the new count."""
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1
            return self.counters[key]

    def fires(self, key, rule):
        """Count an event for a rule with nth/count semantics and say
        whether this event is one that must fail."""
        n = self.bump(key)
        nth = int(rule.get("nth", 1))
        count = rule.get("count", 1)
        return n >= nth and (count is None or n < nth + int(count))
