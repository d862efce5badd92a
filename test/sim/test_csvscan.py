#!/usr/bin/python3
"""csvscan.c's scan against the COPY fast path's regular expressions (no
server): for random records, fields and column rules, where the run of
regular records ends and where one loosely regular record ends must be
what FastPlan.strict and FastPlan.loose say.  Needs the library the test
bed builds (RS_SIM_CSVSCAN, from test/testbed env)."""

import os
import random
import types
import unittest

import s3load

LIBRARY = os.environ.get("RS_SIM_CSVSCAN")


def options(delimiter, quote):
    return types.SimpleNamespace(
        format="csv", blanksasnull=False, delimiter=delimiter, quote=quote,
        null_as=None, emptyasnull=False)


@unittest.skipUnless(LIBRARY and os.path.exists(LIBRARY),
                     "csvscan is not built: run test/testbed up")
class CsvScanTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        s3load.use_csvscan(LIBRARY)

    @classmethod
    def tearDownClass(cls):
        s3load.csv_regular_run = None

    def pattern_ends(self, plan, buf, pos):
        skeleton = buf.translate(plan.skeleton_table)
        strict = plan.strict.match(skeleton, pos).end()
        loose = plan.loose.match(skeleton, pos)
        return strict, loose.end() if loose else pos

    def scan_ends(self, plan, buf, pos):
        return (plan.regular_run(buf, pos),
                plan.regular_run(buf, pos, loose=True))

    def random_field(self, rng, d, q):
        """A field that is often regular and sometimes not: quoted or not,
        with doubled or stray quotes, delimiters, line ends, UTF-8."""
        pieces = [b"a", b"bc", "é".encode(), "€".encode(), d, q + q, b"\n",
                  b" ", b"x" * rng.randint(1, 12)]
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        kind = rng.random()
        if kind < 0.45:
            return q + body + q
        if kind < 0.9:
            return body.replace(q, b"").replace(d, b"").replace(b"\n", b"")
        return body  # anything: stray quotes, a quote inside, ...

    def test_random_blocks(self):
        rng = random.Random(20261122)
        for case in range(1500):
            d, q = rng.choice([(",", '"'), ("|", "'"), ("\t", '"'), (";", "~")])
            ncols = rng.randint(1, 4)
            cols = []
            for i in range(ncols):
                typname = rng.choice(["varchar", "int8", "text", "bpchar"])
                maxlen = rng.choice([None, 1, 2, 3, 5, 8]) \
                    if typname in ("varchar", "bpchar") else None
                cols.append(s3load.Column("c%d" % i, typname, maxlen, i + 1))
            opts = options(d, q)
            opts.emptyasnull = rng.random() < 0.3
            if rng.random() < 0.3:
                opts.null_as = rng.choice(["N", "\\N", "null"])
            plan = s3load.FastPlan(opts, cols)
            db, qb = d.encode(), q.encode()
            records = []
            for _ in range(rng.randint(0, 8)):
                fields = [self.random_field(rng, db, qb)
                          for _ in range(ncols + rng.choice([0, 0, 0, 0, -1, 1]))]
                records.append(db.join(fields) + b"\n")
            buf = b"".join(records)
            if rng.random() < 0.3 and buf:
                buf = buf[:rng.randint(0, len(buf))]  # a record cut short
            buf = buf.replace(b"\r", b"")
            for pos in sorted({0, rng.randint(0, len(buf))}):
                with self.subTest(case=case, pos=pos, buf=buf,
                                  rules=[(c.typname, c.maxlen) for c in cols]):
                    self.assertEqual(self.scan_ends(plan, buf, pos),
                                     self.pattern_ends(plan, buf, pos))

    def test_fast_path_block(self):
        """checked() gives the same data either way, a rewritten record
        included (with NULL AS 'N', an empty field due to become NULL)."""
        cols = [s3load.Column("id", "int8", None, 1),
                s3load.Column("v", "varchar", 4, 2)]
        opts = options(",", '"')
        opts.null_as = "N"
        plan = s3load.FastPlan(opts, cols)
        feed = s3load.FastFeed(None, [], plan, opts)
        buf = b'1,abc\n2,"a""b"\n,x\n4,"d\ne"\n5,ab'
        with_scan = feed.checked(buf)
        run, s3load.csv_regular_run = s3load.csv_regular_run, None
        try:
            with_patterns = feed.checked(buf)
        finally:
            s3load.csv_regular_run = run
        self.assertEqual(with_scan, with_patterns)
        self.assertIn(b'"x"', with_scan[0])  # the record was rewritten
        self.assertEqual(with_scan[1], buf.rindex(b"\n") + 1)


if __name__ == "__main__":
    unittest.main()
