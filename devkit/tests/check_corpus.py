#!/usr/bin/env python3
"""Independent check of a `hozon dev corpus` directory against its manifest.

Usage: check_corpus.py PKI_DIR CORPUS_DIR

Nothing here uses hozon's code. For every document of manifest.jsonl it decides a verdict
and an error code on its own and compares them with the manifest's `expect` and `error`:

- the signed bytes are recomputed as RFC 8785 (JCS) of the Bundle without `signature`
  (json.dumps with sorted keys and no whitespace equals JCS for this corpus: object keys are
  ASCII and every number is an integer);
- JWS (application/jose, detached payload): RS256 over BASE64URL(header) "." BASE64URL(payload)
  with the key of x5c[0], the x5c chain up to a root of PKI_DIR/trust, all with the
  `cryptography` package;
- CMS (application/pkcs7-signature): `openssl cms -verify` of the detached signature over the
  recomputed bytes at the signing time, against the roots;
- validity of the signer certificate at the signing time, revocation from the CAs' CRLs, and
  the usage restriction (a remote-signature certificate may sign only prescriptions and
  referral letters);
- the signature timestamp (CAdES-T attribute, or the JWS side file) with `openssl ts -verify`
  against the TSA root, over SHA-256 of the CMS signature octets or of the ASCII of the JWS
  signature part.

Prints one line per mismatch and a summary; exits 1 if anything disagrees.
"""
import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from asn1crypto import cms as a_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

REMOTE_POLICY = "1.3.6.1.4.1.32473.17090.2"
REMOTE_ALLOWED = {"57833-6", "57133-1"}  # prescription, referral letter


def utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    return utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)


def not_after(cert):
    return utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jcs(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Pki:
    def __init__(self, d):
        self.dir = d
        index = json.load(open(os.path.join(d, "pki.json"), encoding="utf-8"))
        self.roots = []
        for name in sorted(os.listdir(os.path.join(d, "trust"))):
            self.roots.append(x509.load_pem_x509_certificate(open(os.path.join(d, "trust", name), "rb").read()))
        self.roots_file = os.path.join(d, "roots-bundle.pem")
        with open(self.roots_file, "wb") as f:
            for name in sorted(os.listdir(os.path.join(d, "trust"))):
                f.write(open(os.path.join(d, "trust", name), "rb").read())
        self.crls = [x509.load_pem_x509_crl(open(os.path.join(d, c["file"]), "rb").read()) for c in index["crls"]]
        self.tsa_root = os.path.join(d, "trust", "tsa-root.pem")

    def verify_signed_by(self, cert, issuer):
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)

    def chain_ok(self, chain):
        """chain: EE first, then intermediates; must end under a root of trust/."""
        for child, parent in zip(chain, chain[1:]):
            if child.issuer != parent.subject:
                return False
            self.verify_signed_by(child, parent)
        top = chain[-1]
        for root in self.roots:
            if top.issuer == root.subject:
                self.verify_signed_by(top, root)
                return True
        return False

    def revoked_at(self, cert, when):
        for crl in self.crls:
            if crl.issuer != cert.issuer:
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                at = utc(getattr(entry, "revocation_date_utc", None) or entry.revocation_date)
                if at <= when:
                    return True
        return False


def openssl(args, stdin=None):
    p = subprocess.run(["openssl"] + args, input=stdin, capture_output=True)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def check_timestamp(pki, token_der, imprint, tmp):
    path = os.path.join(tmp, "token.der")
    open(path, "wb").write(token_der)
    rc, out = openssl(["ts", "-verify", "-in", path, "-token_in", "-digest", imprint.hex(), "-CAfile", pki.tsa_root])
    return rc == 0 and "Verification: OK" in out


def usage_error(cert, bundle):
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    remote = any(p.policy_identifier.dotted_string == REMOTE_POLICY for p in policies)
    codes = set()
    for e in bundle.get("entry", []):
        r = e.get("resource", {})
        if r.get("resourceType") == "Composition":
            codes = {c.get("code") for c in r.get("type", {}).get("coding", [])}
    if remote and not (codes & REMOTE_ALLOWED):
        return "usage-not-permitted"
    return None


def check_jws(pki, entry, bundle, data, corpus, tmp):
    try:
        jws = data.decode("ascii")
        header_b64, empty, sig_b64 = jws.split(".")
        if empty != "":
            return "malformed-signature"
        header = json.loads(b64url_decode(header_b64))
        sig = b64url_decode(sig_b64)
    except Exception:
        return "malformed-signature"
    if header.get("alg") != "RS256":
        return "unsupported-algorithm"
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    payload = jcs({k: v for k, v in bundle.items() if k != "signature"})
    signing_input = header_b64.encode() + b"." + base64.urlsafe_b64encode(payload).rstrip(b"=")
    try:
        chain[0].public_key().verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "signature-invalid"
    if not pki.chain_ok(chain):
        return "untrusted-chain"
    token = open(os.path.join(corpus, entry["timestamp"]), "rb").read()
    if not check_timestamp(pki, token, hashlib.sha256(sig_b64.encode()).digest(), tmp):
        return "timestamp-invalid"
    when = datetime.datetime.fromisoformat(header["sigT"].replace("Z", "+00:00"))
    return common_checks(pki, chain[0], when, bundle)


def common_checks(pki, cert, when, bundle):
    if not (not_before(cert) <= when <= not_after(cert)):
        return "certificate-expired"
    if pki.revoked_at(cert, when):
        return "certificate-revoked"
    return usage_error(cert, bundle)


def check_cms(pki, entry, bundle, data, tmp):
    try:
        info = a_cms.ContentInfo.load(data)
        sd = info["content"]
        si = sd["signer_infos"][0]
    except Exception:
        return "malformed-signature"
    payload = jcs({k: v for k, v in bundle.items() if k != "signature"})
    sig_path, payload_path = os.path.join(tmp, "sig.der"), os.path.join(tmp, "payload.json")
    open(sig_path, "wb").write(data)
    open(payload_path, "wb").write(payload)
    when = None
    for attr in si["signed_attrs"]:
        if attr["type"].native == "signing_time":
            when = attr["values"][0].native
    certs = [c.chosen.dump() for c in sd["certificates"]]
    sid = si["sid"].chosen
    signer_der = next(
        c for c in certs
        if a_cms.Certificate.load(c).serial_number == sid["serial_number"].native
    )
    cert = x509.load_der_x509_certificate(signer_der)
    rc, out = openssl([
        "cms", "-verify", "-binary", "-inform", "DER", "-in", sig_path, "-content", payload_path,
        "-CAfile", pki.roots_file, "-purpose", "any", "-auth_level", "0",
        "-attime", str(int(when.timestamp())), "-out", os.devnull,
    ])
    if rc != 0:
        # OpenSSL 3 checks the signature over the signed attributes first
        # (CMS_SignerInfo_verify), then the content against messageDigest.
        if "CMS_SignerInfo_verify:verification failure" in out:
            return "signature-invalid"
        if "content verify error" in out or "digest failure" in out:
            return "digest-mismatch"
        if "certificate has expired" in out or "not yet valid" in out:
            return "certificate-expired"
        return "openssl: " + out.strip().splitlines()[-1]
    token = None
    for attr in si["unsigned_attrs"] or []:
        if attr["type"].dotted == "1.2.840.113549.1.9.16.2.14":
            token = attr["values"][0].dump()
    if token is None or not check_timestamp(pki, token, hashlib.sha256(si["signature"].native).digest(), tmp):
        return "timestamp-invalid"
    return common_checks(pki, cert, when, bundle)


def main():
    pki_dir, corpus = sys.argv[1], sys.argv[2]
    pki = Pki(pki_dir)
    mismatches = 0
    checked = 0
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for line in open(os.path.join(corpus, "manifest.jsonl"), encoding="utf-8"):
            entry = json.loads(line)
            doc = json.load(open(os.path.join(corpus, entry["file"]), encoding="utf-8"))
            if doc.get("resourceType") != "Bundle":
                got = "not-a-bundle"
            else:
                sig = doc["signature"]
                try:
                    data = base64.b64decode(sig["data"], validate=True)
                except Exception:
                    data = None
                if data is None:
                    got = "malformed-signature"
                elif sig["sigFormat"] == "application/jose":
                    got = check_jws(pki, entry, doc, data, corpus, tmp)
                else:
                    got = check_cms(pki, entry, doc, data, tmp)
            checked += 1
            key = (entry["format"], entry["algorithm"], got or "valid")
            counts[key] = counts.get(key, 0) + 1
            want = entry["error"] if entry["expect"] == "invalid" else None
            if got != want:
                mismatches += 1
                print(f"MISMATCH {entry['file']}: manifest says {want or 'valid'}, found {got or 'valid'}")
    for key in sorted(counts):
        print("  %-5s %-24s %-22s %d" % (key[0], key[1], key[2], counts[key]))
    print(f"checked {checked} documents, {mismatches} mismatches")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
