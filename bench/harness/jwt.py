"""What the steady-jwt scenario needs: an ES256 key pair made with the openssl
command (Python's standard library has no elliptic curves), its public key as
PEM (HAProxy's jwt_verify) and as a JWKS (Portcullis), and one token signed
with it, valid for a day. ES256 because HAProxy 2.6's jwt_verify knows no
EdDSA."""

import base64
import json
import subprocess
import time

ISSUER = "https://idp.bench"
AUDIENCE = "bench"
SUBJECT = "bench-user"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_ints(der):
    """The two INTEGERs of a DER ECDSA-Sig-Value SEQUENCE, as bytes."""
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    ints = []
    while i < len(der):
        if der[i] != 0x02:
            raise ValueError("expected a DER INTEGER")
        n = der[i + 1]
        ints.append(der[i + 2:i + 2 + n])
        i += 2 + n
    return ints


def jws_signature(der):
    """DER (r, s) -> the 64-byte r||s a JWS ES256 signature is (RFC 7518 §3.4)."""
    r, s = der_ints(der)
    return r.lstrip(b"\0").rjust(32, b"\0") + s.lstrip(b"\0").rjust(32, b"\0")


class Jwt:
    """key.pem, public.pem and jwks.json in d, and `token`."""

    ISSUER_TEXT, AUDIENCE_TEXT = ISSUER, AUDIENCE

    def __init__(self, openssl, d):
        d.mkdir(parents=True, exist_ok=True)
        self.key, self.public, self.jwks = d / "key.pem", d / "public.pem", d / "jwks.json"
        run = lambda *args, **kw: subprocess.run([openssl, *args], check=True, capture_output=True, **kw)
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(self.key))
        run("ec", "-in", str(self.key), "-pubout", "-out", str(self.public))
        spki = run("ec", "-in", str(self.key), "-pubout", "-outform", "DER").stdout
        point = spki[-65:]  # 0x04 || X || Y closes the SubjectPublicKeyInfo
        if point[0] != 0x04:
            raise ValueError("unexpected public key encoding")
        jwk = {"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:]),
               "kid": "bench", "alg": "ES256", "use": "sig"}
        self.jwks.write_text(json.dumps({"keys": [jwk]}))
        now = int(time.time())
        header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench"}).encode())
        claims = b64url(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now,
                                    "exp": now + 86400}).encode())
        signing_input = f"{header}.{claims}".encode()
        der = run("dgst", "-sha256", "-sign", str(self.key), input=signing_input).stdout
        self.token = f"{header}.{claims}.{b64url(jws_signature(der))}"

    @property
    def header(self):
        return f"Authorization: Bearer {self.token}"
