"""GET /metrics: Prometheus text format, and rejected requests are counted; an attestation answer
is counted by its verdict, and the attestation request every enrollment now gets counts as no
rejection."""

import plistlib
import re

from harness import VouchTestCase

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE_RE = re.compile(
    rf"^({METRIC_NAME})(\{{(?:{LABEL}(?:,{LABEL})*,?)?\}})? "
    r"([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|[-+]?Inf))( -?[0-9]+)?$")
TYPE_RE = re.compile(rf"^# TYPE ({METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$")
HELP_RE = re.compile(rf"^# HELP ({METRIC_NAME}) .*$")
REJECTION_RE = re.compile(r"reject|refus|denied|deny|forbidden|invalid|error|fail|bad|"
                          r"unauth|malformed|40[03]|41[35]", re.I)


def parse_metrics(text):
    """Validate the exposition format; returns ({sample key: value}, {family: type})."""
    samples, types = {}, {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            m = TYPE_RE.match(line)
            if m:
                if m.group(1) in types:
                    raise AssertionError(f"line {n}: second TYPE for {m.group(1)}")
                types[m.group(1)] = m.group(2)
                continue
            if HELP_RE.match(line) or not line.startswith(("# TYPE", "# HELP")):
                continue
            raise AssertionError(f"line {n}: malformed comment: {line!r}")
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"line {n}: not a Prometheus sample: {line!r}")
        key = m.group(1) + (m.group(2) or "")
        if key in samples:
            raise AssertionError(f"line {n}: duplicate sample {key}")
        samples[key] = float(m.group(3))
    return samples, types


def family_of(sample_name, types):
    for suffix in ("", "_total", "_count", "_sum", "_bucket", "_created"):
        if suffix and sample_name.endswith(suffix):
            base = sample_name[: -len(suffix)]
            if base in types:
                return base
        elif sample_name in types:
            return sample_name
    return None


class MetricsTest(VouchTestCase):

    def scrape(self):
        r = self.vouchd.metrics()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.media_type(), "text/plain", f"Content-Type of /metrics: {r!r}")
        self.assertTrue(r.text().endswith("\n"), "the exposition must end with a newline")
        return parse_metrics(r.text())

    def rejection_counters(self, samples, types):
        out = {}
        for key, value in samples.items():
            name = key.split("{", 1)[0]
            fam = family_of(name, types)
            if fam is not None and types[fam] == "counter" and REJECTION_RE.search(key):
                out[key] = value
        return out

    def test_format(self):
        samples, types = self.scrape()
        self.assertTrue(samples, "/metrics has no samples")
        counters = [f for f, t in types.items() if t == "counter"]
        self.assertTrue(counters, "/metrics declares no counter")
        for key in samples:
            self.assertIsNotNone(family_of(key.split("{", 1)[0], types),
                                 f"sample {key} has no # TYPE line")

    def check_counted(self, what, send):
        before_samples, before_types = self.scrape()
        before = self.rejection_counters(before_samples, before_types)
        r = send()
        self.assertTrue(400 <= r.status < 500, f"{what}: {r!r}")
        after_samples, after_types = self.scrape()
        after = self.rejection_counters(after_samples, after_types)
        grown = {k: (before.get(k, 0.0), v) for k, v in after.items() if v > before.get(k, 0.0)}
        self.assertTrue(grown, f"{what} (HTTP {r.status}): no rejection/error counter grew; "
                               f"counters that look like ones: {sorted(after)}")
        for key, value in after_samples.items():
            fam = family_of(key.split("{", 1)[0], after_types)
            if fam is not None and after_types[fam] == "counter" and key in before_samples:
                self.assertGreaterEqual(value, before_samples[key], f"counter {key} went down")

    def test_rejections_are_counted(self):
        dev = self.enrolled_device()
        self.check_counted("Idle without a signature", lambda: dev.idle(signature=None))
        self.check_counted("malformed plist",
                           lambda: dev.connect_bytes(plistlib.dumps(dev.report_message("Idle"))
                                                     [:-25]))
        self.check_counted("wrong Content-Type",
                           lambda: dev.checkin_bytes(plistlib.dumps(dev.authenticate_message()),
                                                     content_type="text/plain"))
        stranger = self.new_device(ca=self.untrusted_ca)
        self.check_counted("untrusted CA", stranger.authenticate)
        self.check_counted("UserAuthenticate",
                           lambda: dev.checkin({"MessageType": "UserAuthenticate",
                                                "UDID": dev.udid, "Topic": dev.topic}))

    def counters(self, samples, types, pattern):
        out = {}
        for key, value in samples.items():
            fam = family_of(key.split("{", 1)[0], types)
            if fam is not None and types[fam] == "counter" and re.search(pattern, key, re.I):
                out[key] = value
        return out

    def test_attestation_exchange_is_no_rejection_and_is_counted(self):
        before_samples, before_types = self.scrape()
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        self.assertEqual(self.vouchd.device(dev.udid).json()["attestation"]["status"],
                         "unsupported")
        after_samples, after_types = self.scrape()
        before = self.rejection_counters(before_samples, before_types)
        after = self.rejection_counters(after_samples, after_types)
        grown = {k: (before.get(k, 0.0), v) for k, v in after.items() if v > before.get(k, 0.0)}
        self.assertEqual(grown, {}, "an enrollment and its attestation answer grew rejection "
                                    "counters")
        pattern = r'attest[^{]*\{[^}]*"unsupported"'
        before = self.counters(before_samples, before_types, pattern)
        after = self.counters(after_samples, after_types, pattern)
        self.assertTrue(after, "no attestation counter with an unsupported label; counters: "
                               f"{sorted(k for k in after_samples if 'attest' in k)}")
        self.assertEqual(sum(after.values()) - sum(before.values()), 1,
                         f"one unsupported answer: {before} -> {after}")
