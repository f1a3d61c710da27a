"""The steady-jwt token: a JWS Portcullis and HAProxy accept, made with the
openssl command; here checked against openssl itself."""

import base64
import json
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness.jwt import AUDIENCE, ISSUER, Jwt, der_ints, jws_signature


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signature(unittest.TestCase):
    def test_der_integers_become_32_byte_halves(self):
        # r with a leading zero (high bit set), s short
        r, s = b"\x00" + b"\x80" * 32, b"\x01" * 31
        der = bytes([0x30, 4 + len(r) + len(s), 0x02, len(r)]) + r + bytes([0x02, len(s)]) + s
        self.assertEqual(der_ints(der), [r, s])
        sig = jws_signature(der)
        self.assertEqual(sig, b"\x80" * 32 + b"\x00" + b"\x01" * 31)

    def test_not_der_is_refused(self):
        with self.assertRaises(ValueError):
            der_ints(b"\x31\x00")


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command (bench/run installs it)")
class Token(unittest.TestCase):
    def test_the_token_verifies_with_the_public_key_and_carries_the_claims(self):
        with tempfile.TemporaryDirectory() as tmp:
            jwt = Jwt(shutil.which("openssl"), Path(tmp) / "jwt")
            header, claims, sig = jwt.token.split(".")
            self.assertEqual(json.loads(unb64(header))["alg"], "ES256")
            body = json.loads(unb64(claims))
            self.assertEqual((body["iss"], body["aud"]), (ISSUER, AUDIENCE))
            raw = unb64(sig)
            self.assertEqual(len(raw), 64)
            # back to DER and through openssl's own verification
            def der_int(b):
                b = b.lstrip(b"\0")
                return b"\x02" + bytes([len(b) + (b[0] >> 7)]) + (b"\0" if b[0] >> 7 else b"") + b
            seq = der_int(raw[:32]) + der_int(raw[32:])
            (Path(tmp) / "sig").write_bytes(b"\x30" + bytes([len(seq)]) + seq)
            ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(jwt.public), "-signature",
                                 str(Path(tmp) / "sig")], input=f"{header}.{claims}".encode(),
                                capture_output=True)
            self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
            jwk = json.loads(jwt.jwks.read_text())["keys"][0]
            self.assertEqual((jwk["kty"], jwk["crv"], jwk["alg"]), ("EC", "P-256", "ES256"))


if __name__ == "__main__":
    unittest.main()
